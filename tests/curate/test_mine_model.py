"""`curate mine --source --model`: a tiny random-weight LLaVA run over a source benchmark; its wrong
answers become error records with anchor images; failures are counted, not mined; resumable."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.bench_data import png_bytes
from spuriverse.curate.mine import candidate_id
from spuriverse.curate.mine_model import mine_with_model
from spuriverse.curate.source import SourceMismatch, load_source, make_source_spec, read_source_spec
from spuriverse.cli import main
from spuriverse.schema import ErrorRecord, Sample

REPO = Path(__file__).resolve().parents[2]
WORDS = ["cat", "dog", "bus", "tree", "red", "blue"]


def write_source(folder: Path, n: int, corrupt: tuple[int, ...] = ()) -> Path:
    """questions.jsonl (question_id, question, options, answer letter, image path, category) + images/."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        data = b"not a png" if i in corrupt else png_bytes(i, (24, 24))
        (folder / "images" / f"{i:04d}.png").write_bytes(data)
        k = 2 + i % 3
        lines.append(json.dumps({"question_id": f"Q {i:04d}", "question": f"What is in picture {i}?",
                                 "options": WORDS[i % 3: i % 3 + k], "answer": "ABCD"[i % k],
                                 "image": f"images/{i:04d}.png", "category": f"cat{i % 2}"}))
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "questions.jsonl"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("src"), 30, corrupt=(4,))


def _errors(build: Path) -> list[ErrorRecord]:
    return [ErrorRecord.model_validate_json(line) for line in (build / "errors.jsonl").read_text().splitlines()]


def test_mine_with_model_via_cli(source, tiny_llava, tmp_path, capsys):
    build = tmp_path / "b"
    argv = ["curate", "mine", "--source", str(source), "--name", "toy", "--model", str(tiny_llava),
            "--out", str(build), "--no-progress"]
    assert main(argv) == 0
    assert "30 items of toy" in capsys.readouterr().out

    spec = read_source_spec(build)
    assert spec is not None and spec.name == "toy" and spec.model == str(tiny_llava)
    assert spec.dataset == str(source) and spec.fingerprint and spec.fingerprint.startswith("sha256:")

    samples = [Sample.model_validate_json(x) for x in (build / "mine_run" / "samples.jsonl").read_text().splitlines()]
    wrong = [s for s in samples if not s.correct and s.error is None]
    failed = [s for s in samples if s.error is not None]
    assert len(samples) == 30 and [s.item_id for s in failed] == ["Q 0004"] and failed[0].error_type == "image"
    assert 0 < len(wrong) < 29

    records = _errors(build)
    assert [r.question_id for r in records] == [s.item_id for s in wrong]  # source order, only wrong samples
    by_id = {s.item_id: s for s in wrong}
    for r in records:
        s = by_id[r.question_id]
        assert r.candidate_id == candidate_id("toy", r.question_id) == f"toy-q-{r.question_id[2:]}"
        assert (r.source, r.answer, r.prediction, r.raw, r.category) == ("toy", s.answer, s.prediction, s.raw,
                                                                         s.category)
        assert r.image == f"anchors/{r.candidate_id}.png"
        assert (build / r.image).read_bytes() == (source.parent / "images" / f"{r.question_id[2:]}.png").read_bytes()
    assert sorted(p.name for p in (build / "anchors").iterdir()) == sorted(f"{r.candidate_id}.png" for r in records)

    summary = json.loads((build / "mine_summary.json").read_text())
    assert summary["failures"] == 1 and summary["failures_by_type"] == {"image": 1}
    assert summary["errors"] == len(records) and summary["appended"] == len(records)
    assert summary["correct"] + summary["errors"] + summary["failures"] == 30
    assert summary["per_source"]["toy"]["items"] == 30 and sum(summary["items_per_category"].values()) == 30

    # Publish's view: the same items again, errors identified by candidate id.
    ids = {r.candidate_id for r in records}
    controls = [it for it in load_source(spec).items() if candidate_id(spec.name, it.source_id) not in ids]
    assert len(controls) == 30 - len(records) and all(it.source_benchmark == "toy" for it in controls)

    # Re-running is a no-op.
    before = (build / "errors.jsonl").read_bytes()
    again = mine_with_model(spec, str(tiny_llava), build, progress=False)
    assert (again.appended, again.already_present, again.errors) == (0, len(records), len(records))
    assert (build / "errors.jsonl").read_bytes() == before

    # Lost anchors are restored; a scrambled file is put back in source order.
    (build / records[0].image).unlink()
    lines = before.splitlines(keepends=True)
    (build / "errors.jsonl").write_bytes(b"".join(reversed(lines)))
    fixed = mine_with_model(spec, str(tiny_llava), build, progress=False)
    assert fixed.anchors_restored == 1 and (build / records[0].image).exists()
    assert (build / "errors.jsonl").read_bytes() == before

    # Another source (or model) in the same folder is refused.
    with pytest.raises(SourceMismatch, match="name: 'toy' -> 'other'"):
        mine_with_model(spec.model_copy(update={"name": "other"}), str(tiny_llava), build, progress=False)
    with pytest.raises(SourceMismatch, match="model"):
        mine_with_model(spec, "random", build, progress=False)


def test_interrupted_error_pass_resumes_byte_identical(source, tiny_llava, tmp_path):
    spec = make_source_spec(str(source), name="toy")
    ref = tmp_path / "ref"
    mine_with_model(spec, str(tiny_llava), ref, progress=False)
    full = (ref / "errors.jsonl").read_bytes()
    lines = full.splitlines(keepends=True)
    assert len(lines) >= 3
    # As if killed while appending the third record: two complete lines, half of the third; its
    # anchor written (atomically), the later ones not.
    cut = tmp_path / "cut"
    shutil.copytree(ref, cut)
    (cut / "errors.jsonl").write_bytes(b"".join(lines[:2]) + lines[2][:40])
    for r in [ErrorRecord.model_validate_json(x) for x in lines[3:]]:
        (cut / r.image).unlink()
    s = mine_with_model(spec, str(tiny_llava), cut, progress=False)
    assert (s.appended, s.already_present) == (len(lines) - 2, 2)
    assert (cut / "errors.jsonl").read_bytes() == full
    assert sorted(os.listdir(cut / "anchors")) == sorted(os.listdir(ref / "anchors"))


def test_killed_cli_run_then_rerun_gives_identical_errors(tiny_llava, tmp_path):
    src = write_source(tmp_path / "src", 150)
    args = ["--source", str(src), "--name", "big", "--model", str(tiny_llava), "--batch-size", "1", "--no-progress"]
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "spuriverse", "curate", "mine", *args, "--out", str(killed)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = killed / "mine_run" / "samples.jsonl"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if samples.exists() and samples.stat().st_size > 0 and samples.read_bytes().count(b"\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "errors.jsonl").exists()
    assert 3 <= samples.read_bytes().count(b"\n") < 150

    assert main(["curate", "mine", *args, "--out", str(killed)]) == 0
    ref = tmp_path / "ref"
    assert main(["curate", "mine", *args, "--out", str(ref)]) == 0
    assert (killed / "errors.jsonl").read_bytes() == (ref / "errors.jsonl").read_bytes()
    assert len(_errors(ref)) > 0
    assert sorted(os.listdir(killed / "anchors")) == sorted(os.listdir(ref / "anchors"))


def test_cli_map_and_mode_errors(tmp_path, tiny_llava, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "images" / "b.png").write_bytes(png_bytes(2))
    (tmp_path / "t.csv").write_text("id,q,c1,c2,label,file\n01,Which?,x,y,y,a.png\n02,What?,u,v,u,b.png\n")
    base = ["curate", "mine", "--source", str(tmp_path / "t.csv"), "--model", str(tiny_llava),
            "--out", str(tmp_path / "b"), "--no-progress"]

    with pytest.raises(SystemExit) as exc:
        main([*base, "--map", "questoin=q"])
    assert exc.value.code == 2
    assert "unknown key 'questoin' (valid keys: question_id, question, options, option_columns" in \
        capsys.readouterr().err

    m = "question_id=id,question=q,options=none,option_columns=c1|c2,answer=label,answer_format=text,image=file"
    assert main([*base, "--map", m, "--map", f"image_root={tmp_path / 'images'},category=none"]) == 0
    spec = read_source_spec(tmp_path / "b")
    assert spec.name == "t" and spec.mapping.option_columns == ["c1", "c2"] and spec.preset == "generic"
    summary = json.loads((tmp_path / "b" / "mine_summary.json").read_text())
    assert summary["items"] == 2 and summary["failures"] == 0
    assert {r.question_id for r in _errors(tmp_path / "b")} <= {"01", "02"}  # ids from the csv, as strings
    assert len(_errors(tmp_path / "b")) == summary["errors"]

    for argv, msg in [
        (["curate", "mine", "--out", "x"], "one of the arguments --model --predictions is required"),
        (["curate", "mine", "--model", "m", "--predictions", "p.csv", "--out", "x"], "not allowed with argument"),
        (["curate", "mine", "--model", "m", "--out", "x"], "--model needs --source"),
        (["curate", "mine", "--predictions", "p.csv", "--source", "s", "--preset", "aokvqa", "--out", "x"],
         "the source name in ids is --name"),
        (["curate", "mine", "--predictions", "p.csv", "--out", "x"], "--predictions needs --preset"),
        (["curate", "mine", "--model", "m", "--source", "s", "--preset", "naturalbench", "--out", "x"],
         "with --model one of aokvqa, seedbench, generic"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and msg in capsys.readouterr().err, argv
