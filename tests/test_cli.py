"""The command line: help everywhere, the registry listing, schema export, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spuriverse.cli import build_parser, main
from spuriverse.schema import json_schemas

COMMANDS = ["eval", "score", "models", "schema", "leaderboard", "submit", "compare", "synth", "curate", "demo"]
REQUIRED_ALIASES = ["llava-1.5", "llava-1.6", "qwen2.5-vl-7b", "idefics3-8b", "smolvlm", "paligemma2-3b",
                    "llama-3.2-11b-vision", "gpt-4o", "gpt-4o-mini", "random", "frequent"]


CURATE_STAGES = ["mine", "judge", "review", "verify", "publish"]


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in COMMANDS]
                         + [["curate", s, "--help"] for s in CURATE_STAGES] + [["leaderboard", "init", "--help"],
                                                                            ["leaderboard", "render", "--help"]])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: spuriverse" in capsys.readouterr().out


def test_build_is_a_hidden_deprecated_alias_of_curate(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", "mine", "--help"])
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert "usage: spuriverse curate mine" in captured.out
    assert captured.err.count("\n") == 1 and "deprecated; use `spuriverse curate`" in captured.err
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "curate" in top and "build" not in top


def test_models_lists_every_required_alias(capsys):
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    for alias in REQUIRED_ALIASES:
        assert alias in listed
    assert listed["llava-1.5"]["checkpoint"] == "llava-hf/llava-1.5-7b-hf"
    assert listed["llava-1.6"]["checkpoint"] == "llava-hf/llava-v1.6-mistral-7b-hf"
    assert listed["gpt-4o"]["checkpoint"] == "gpt-4o-2024-08-06"


def test_committed_json_schemas_are_current(tmp_path):
    committed = Path(__file__).resolve().parents[1] / "spuriverse" / "schemas"
    for name, schema in json_schemas().items():
        path = committed / f"{name}.schema.json"
        assert path.exists(), f"run `spuriverse schema --out spuriverse/schemas` ({path.name} missing)"
        assert json.loads(path.read_text()) == schema, f"{path.name} is stale: re-export it"


def test_unknown_model_is_a_clear_error(small_benchmark, tmp_path, capsys):
    code = main(["eval", "--model", "no-such-alias", "--dataset", str(small_benchmark),
                 "--output-dir", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-alias'" in err and "llava-1.5" in err


def test_missing_api_key_is_a_clear_error(small_benchmark, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["eval", "--model", "gpt-4o", "--dataset", str(small_benchmark), "--output-dir",
                 str(tmp_path / "r"), "--no-progress"])
    assert code == 2 and "OPENAI_API_KEY" in capsys.readouterr().err


def test_parser_accepts_the_documented_eval_flags():
    a = build_parser().parse_args(["eval", "--model", "m", "--dataset", "d", "--config", "c", "--revision", "r",
                                   "--split", "s", "--strategy", "cot", "--scoring", "generate",
                                   "--batch-size", "4", "--limit", "5", "--seed", "7", "--circular",
                                   "--output-dir", "o", "--blind"])
    assert (a.strategy, a.scoring, a.batch_size, a.limit, a.seed, a.circular, a.blind) == \
        ("cot", "generate", 4, 5, 7, True, True)


def test_console_script_eval_then_score(small_benchmark, tmp_path):
    """The installed `spuriverse` entry point, as a user runs it."""
    exe = Path(sys.executable).parent / "spuriverse"
    out = tmp_path / "run"
    r = subprocess.run([str(exe), "eval", "--model", "frequent", "--dataset", str(small_benchmark),
                        "--output-dir", str(out), "--bootstrap", "100"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "overall_acc" in r.stdout and (out / "report.md").exists()
    before = json.loads((out / "results.json").read_text())
    r = subprocess.run([str(exe), "score", str(out), "--bootstrap", "100"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["metrics"] == before["metrics"]


def test_uncached_hub_model_is_a_clear_error(small_benchmark, tmp_path, capsys):
    code = main(["eval", "--model", "llava-1.5", "--dataset", str(small_benchmark), "--output-dir",
                 str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot load model 'llava-hf/llava-1.5-7b-hf'" in err and "local folder" in err


def test_unreachable_hub_switches_to_offline_mode(monkeypatch):
    from spuriverse import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert hub.hub_reachable(timeout=2) is False
    assert hub.go_offline_if_unreachable() is True
    assert hub.hub_offline()


def test_compare_two_runs(small_benchmark, tmp_path, capsys):
    for model, out in (("random", "a"), ("frequent", "b")):
        assert main(["eval", "--model", model, "--dataset", str(small_benchmark), "--output-dir",
                     str(tmp_path / out), "--no-progress", "--bootstrap", "50"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b" / "results.json"), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "shared items 24" in out and "McNemar p =" in out and "A-B" in out


def test_build_mine_and_judge_from_a_predictions_table(tmp_path, capsys):
    table = tmp_path / "meta.csv"
    table.write_text(
        "index,question,answer,A,B,C,D,category,prediction,parsed,spuriousAttr,isSpurious,isError\n"
        "1,How many?,A,One,Two,Three,Four,Counting,(B) Two,B,Yes it is the cue,True,True\n"
        "2,What colour?,C,Red,Blue,Green,Black,Attr,(C) Green,C,,False,False\n"
        "3,Which sport?,D,Golf,Polo,Ski,Tennis,Scene,A man with a racket,A,No,False,True\n"
    )
    assert main(["curate", "mine", "--predictions", str(table), "--preset", "seedbench", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "3 rows, 2 errors" in out and "1 letters differ" in out  # "A man ..." is no answer A for us
    assert main(["curate", "judge", str(tmp_path / "b"), "--verdicts", str(table), "--preset", "seedbench"]) == 0
    assert "judged 2 errors, 1 spurious" in capsys.readouterr().out
