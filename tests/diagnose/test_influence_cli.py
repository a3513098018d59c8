"""`spuriverse diagnose influence` end to end on a tiny LoRA run: what it writes, that a re-run resumes
(and a finished one does nothing), and that bad input is one clear error with nothing written."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers.bench_data import long_rows
from helpers.influence_run import train_lora_run
from helpers.train_data import naming_rows, write_train_dataset
from spuriverse.cli import main
from spuriverse.persist import read_jsonl
from spuriverse.schema.influence import InfluenceManifest, InfluenceSummary, QueryInfluence, SelfInfluenceRow

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lora_run(tiny_llava, tmp_path_factory) -> Path:
    return train_lora_run(tiny_llava, tmp_path_factory)


def _data(run: Path) -> str:
    return json.loads((run / "train.json").read_text())["config"]["train_data"][0]["source"]


def _cli(run: Path, out: Path, *extra: str, queries: Path | None = None) -> int:
    queries_src = _data(queries or run)
    return main(["diagnose", "influence", "--train-run", str(run), "--queries", queries_src, "--out", str(out),
                 "--top-k", "3", "--batch-size", "4", "--query-batch-size", "6", "--no-progress", *extra])


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".spuriverse.lock")}


@pytest.fixture(scope="module")
def diagnosis(lora_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag") / "influence"
    assert _cli(lora_run, out) == 0
    return out


def test_writes_every_output(diagnosis, lora_run):
    manifest = InfluenceManifest.model_validate_json((diagnosis / "influence.json").read_text())
    assert manifest.status == "complete" and manifest.n_train == 20 and manifest.n_queries == 16
    assert manifest.excluded_modules and all("layers.1." in n for n in manifest.excluded_modules)
    assert "Positive = the example pushed the model toward the measured answer" in manifest.sign_convention
    records = list(read_jsonl(diagnosis / "queries.jsonl", QueryInfluence))
    assert len(records) == 16 and len({r.item_id for r in records}) == 16
    for r in records:
        assert r.measured != r.answer and len(r.supporting) <= 3 and len(r.opposing) <= 3
        assert all(s.score > 0 for s in r.supporting) and all(s.score < 0 for s in r.opposing)
        assert r.cue is not None and r.spurious_support is not None
        assert 0 <= r.spurious_support.ci_low <= r.spurious_support.value <= r.spurious_support.ci_high <= 1
    rows = list(read_jsonl(diagnosis / "self_influence.jsonl", SelfInfluenceRow))
    assert len(rows) == 20 and {r.kind for r in rows} == {"choice", "naming"}
    summary = InfluenceSummary.model_validate_json((diagnosis / "summary.json").read_text())
    assert summary.overall.n == 4 and summary.overall.ci_low <= summary.overall.value <= summary.overall.ci_high
    assert len(summary.groups) == 4
    html = (diagnosis / "report.html").read_text()
    images = [p.name for p in (diagnosis / "images").iterdir()]
    assert html.count("<img") >= 16 * 4 and all(f"images/{name}" in html for name in images)
    assert "## Queries" in (diagnosis / "report.md").read_text()
    assert len(list((diagnosis / "scores").glob("*.npz"))) == 3  # 16 queries in batches of 6


def test_finished_diagnosis_is_a_no_op(diagnosis, lora_run, capsys):
    before = _digest(diagnosis)
    assert _cli(lora_run, diagnosis) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert _digest(diagnosis) == before


def test_resumes_after_a_kill(diagnosis, lora_run, tmp_path):
    """A run killed after its first batch of queries: the re-run keeps the factors and the finished
    batch, scores the rest, and ends with the same records as an uninterrupted run."""
    out = tmp_path / "influence"
    shutil.copytree(diagnosis, out)
    lines = (out / "queries.jsonl").read_text().splitlines(keepends=True)
    (out / "queries.jsonl").write_text("".join(lines[:6]) + lines[6][:40])  # torn mid-record
    manifest = json.loads((out / "influence.json").read_text())
    manifest.update(status="running", finished=None)
    (out / "influence.json").write_text(json.dumps(manifest))
    for name in ("self_influence.jsonl", "summary.json", "report.html"):
        (out / name).unlink()
    stamp = (out / "factors").stat().st_mtime_ns
    assert _cli(lora_run, out) == 0
    assert (out / "factors").stat().st_mtime_ns == stamp
    full = [r.model_dump() for r in read_jsonl(diagnosis / "queries.jsonl", QueryInfluence)]
    again = [r.model_dump() for r in read_jsonl(out / "queries.jsonl", QueryInfluence)]
    assert [r["item_id"] for r in again] == [r["item_id"] for r in full]
    for a, b in zip(again, full):
        assert [s["train_id"] for s in a["supporting"]] == [s["train_id"] for s in b["supporting"]]
        assert a["measurement"] == pytest.approx(b["measurement"], abs=1e-5)


def _moved_data(run: Path, tmp: Path) -> Path:
    copy = tmp / "run-moved"
    shutil.copytree(run, copy)
    m = json.loads((copy / "train.json").read_text())
    m["config"]["train_data"][0]["source"] = str(tmp / "gone")
    (copy / "train.json").write_text(json.dumps(m))
    return copy


def _other_weights(run: Path, tmp: Path) -> Path:
    copy = tmp / "other-model"
    shutil.copytree(run, copy)
    weights = load_file(copy / "adapter_model.safetensors")
    save_file({k: v + 1e-3 for k, v in weights.items()}, copy / "adapter_model.safetensors")
    return copy


@pytest.mark.parametrize("case, message", [
    ("not-a-run", "is not a training run"),
    ("data-missing", "cannot be read"),
    ("other-data", "is not what"),
    ("other-model", "other weights than"),
    ("other-items", "unknown query"),
    ("bad-track", "not a valid regular expression"),
])
def test_bad_input_is_one_clear_error_and_nothing_is_written(lora_run, tmp_path, capsys, case, message):
    out, run, extra = tmp_path / "out", lora_run, []
    if case == "not-a-run":
        run = tmp_path
    elif case == "data-missing":
        run = _moved_data(lora_run, tmp_path)
    elif case == "other-data":
        other = write_train_dataset(tmp_path / "other", long_rows(n_groups=4, n_spurious=2, n_counter=1, n_controls=0,
                                                                     seed=2) + naming_rows(4))
        extra = ["--train-data", str(other)]
    elif case == "other-model":
        extra = ["--model", str(_other_weights(lora_run, tmp_path))]
    elif case == "bad-track":
        extra = ["--track", "lora_(A"]
    else:
        extra, message = ["--items", "g000/anchor_0,nope"], "not among the query items"
    capsys.readouterr()  # the setup's own output (writing a dataset shows a bar)
    code = _cli(run, out, *extra, queries=lora_run)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_another_query_set_into_a_finished_folder_is_refused(diagnosis, lora_run, capsys):
    before = _digest(diagnosis)
    assert _cli(lora_run, diagnosis, "--items", "g000/anchor_0") == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "query_fingerprint" in err
    assert _digest(diagnosis) == before


def test_methods_come_from_the_registry(capsys):
    with pytest.raises(SystemExit):
        main(["diagnose", "influence", "--help"])
    text = capsys.readouterr().out
    for name in ("ekfac", "kfac", "datainf", "tracin"):
        assert name in text
    assert "explicit" not in text.split("--method")[1].split("--measurement")[0].split("}")[0]
