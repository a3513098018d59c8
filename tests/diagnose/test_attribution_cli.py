"""`spuriverse diagnose attribution` as a user runs it: outputs, resume after kill -9, bad input, locking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spuriverse.cli import main
from spuriverse.diagnose.attribution.files import read_map, read_rows, read_sanity
from spuriverse.schema.attribution import AttributionManifest, AttributionSummary

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--ig-steps", "8", "--smooth-samples", "2", "--robustness-samples", "2", "--bootstrap", "50", "--no-progress",
         "--threads", "1"]


def _cmd(model, dataset, out, *extra: str) -> list[str]:
    return ["diagnose", "attribution", "--model", str(model), "--dataset", str(dataset), "--out", str(out), *QUICK, *extra]


def test_run_writes_maps_rows_figures_and_report(tiny_llava, world_bench, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_cmd(tiny_llava, world_bench, out, "--method", "ig,occlusion", "--sanity-items", "2")) == 0
    rows = read_rows(out)
    assert len(rows) == 16 and {r.method for r in rows} == {"ig", "occlusion"}
    assert [r.index for r in rows] == sorted(r.index for r in rows)  # canonical order
    for r in rows:
        assert read_map(out, r.map_file).shape == (32, 32) == (r.height, r.width)
        assert 0 <= r.cue_mass <= 1 and 0 <= r.core_mass <= 1 and r.pointing in ("core", "cue", "both", "none")
        assert np.isfinite([r.deletion_auc, r.insertion_auc]).all()
        assert (r.infidelity is None) == (r.method == "occlusion")
        assert r.target_weights == {r.prediction: 1.0}
    assert len(list((out / "overlays").glob("*.png"))) == 8 and len(list((out / "grids").glob("*.png"))) == 2
    assert {(s.item_id, s.method) for s in read_sanity(out)} == {(r.item_id, r.method) for r in rows if r.index < 2}
    summary = AttributionSummary.model_validate_json((out / "summary.json").read_text())
    assert {r.slice for r in summary.rows} >= {"all", "variant:anchor", "variant:spurious"}
    assert set(summary.agreement) == {"ig|occlusion"} and set(summary.sanity) == {"ig", "occlusion"}
    report = (out / "report.md").read_text()
    assert "shift-invariant (log-softmax over the option letters)" in report and "grids/" in report
    assert "<table>" in (out / "report.html").read_text()
    assert "report:" in capsys.readouterr().out
    before = (out / "rows.jsonl").read_bytes()
    assert main(_cmd(tiny_llava, world_bench, out, "--method", "ig,occlusion", "--sanity-items", "2")) == 0
    assert (out / "rows.jsonl").read_bytes() == before  # nothing left to do, nothing redone


def test_raw_logits_are_marked_not_shift_invariant(tiny_llava, world_bench, tmp_path):
    out = tmp_path / "raw"
    assert main(_cmd(tiny_llava, world_bench, out, "--method", "saliency", "--raw-logits", "--target", "answer",
                     "--limit", "2", "--metrics", "none", "--sanity-items", "0")) == 0
    manifest = AttributionManifest.model_validate_json((out / "attribution.json").read_text())
    assert manifest.invariance == "not shift-invariant (raw pre-softmax letter logit)"
    assert "NOT shift-invariant" in (out / "report.md").read_text()
    assert all(r.raw_logits and r.target_weights == {r.answer: 1.0} for r in read_rows(out))


def _stable(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "rows.jsonl").read_text().splitlines()]


def test_killed_run_resumes_with_nothing_lost_or_duplicated(tiny_llava, world_bench, tmp_path):
    args = ["--method", "ig,smoothgrad", "--batch-size", "1", "--metrics", "mass,pointing", "--sanity-items", "0"]
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "spuriverse", *_cmd(tiny_llava, world_bench, killed, *args)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = killed / "rows.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if rows.exists() and rows.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(read_rows(killed))
    assert 3 <= n_before < 16 and not (killed / "summary.json").exists()
    assert main(_cmd(tiny_llava, world_bench, killed, *args)) == 0
    assert main(_cmd(tiny_llava, world_bench, tmp_path / "clean", *args)) == 0
    assert _stable(killed) == _stable(tmp_path / "clean") and len(_stable(killed)) == 16
    for r in read_rows(killed):
        assert np.array_equal(read_map(killed, r.map_file), read_map(tmp_path / "clean", r.map_file))


def _bad_dataset(path: Path, change) -> Path:
    from helpers.attribution_data import world_rows, write_world_dataset

    rows = world_rows(1, 4)
    change(rows[2])
    return write_world_dataset(path, rows)


@pytest.mark.parametrize("what", ["no image", "mask size"])
def test_bad_item_is_named_and_nothing_computed_is_lost(tiny_llava, tmp_path, capsys, what):
    from spuriverse.data.world import png

    if what == "no image":
        dataset = _bad_dataset(tmp_path / "data", lambda r: r.update(image=None))
        message = "item 'world/shape/background/purple/spurious_2' has no usable image"
    else:
        dataset = _bad_dataset(tmp_path / "data", lambda r: r.update(cue_mask=png(np.zeros((16, 16), bool))))
        message = "item 'world/shape/background/purple/spurious_2': cue_mask is 16x16 (width x height) but its image is 32x32"
    out = tmp_path / "out"
    args = ["--method", "saliency", "--batch-size", "1", "--metrics", "mass", "--sanity-items", "0"]
    capsys.readouterr()
    assert main(_cmd(tiny_llava, dataset, out, *args)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert [r.index for r in read_rows(out)] == [0, 1]  # the items before it are saved
    keep = "--items", "world/shape/background/purple/anchor,world/shape/background/purple/spurious_1"
    assert main(_cmd(tiny_llava, dataset, out, *args, *keep)) == 0
    assert [r.index for r in read_rows(out)] == [0, 1]


def test_api_model_and_unknown_method_are_refused(tiny_llava, world_bench, tmp_path, capsys):
    assert main(_cmd("gpt-4o-mini", world_bench, tmp_path / "api")) == 2
    err = capsys.readouterr().err
    assert "gpt-4o-mini is an API model: attribution needs the gradients of a local model" in err
    assert not (tmp_path / "api").exists()
    with pytest.raises(SystemExit) as exc:
        main(_cmd(tiny_llava, world_bench, tmp_path / "m", "--method", "ig,lrp"))
    assert exc.value.code == 2
    assert "unknown attribution method 'lrp'; choose from saliency, input_x_gradient, ig" in capsys.readouterr().err
    assert main(_cmd(tiny_llava, world_bench, tmp_path / "sel", "--items", "world/nope")) == 2
    assert "no item 'world/nope' in" in capsys.readouterr().err


def test_locked_folder_and_changed_config_are_refused(tiny_llava, world_bench, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--method", "saliency", "--limit", "1", "--metrics", "none", "--sanity-items", "0"]
    assert main(_cmd(tiny_llava, world_bench, out, *args)) == 0
    assert main(_cmd(tiny_llava, world_bench, out, *args, "--target", "answer")) == 2
    assert "another configuration (target: 'predicted' -> 'answer')" in capsys.readouterr().err
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spuriverse.locking import folder_lock\n"
         f"with folder_lock({str(out)!r}, stage='test'):\n    print('held', flush=True); time.sleep(60)"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(_cmd(tiny_llava, world_bench, out, *args)) == 2
        assert "is in use by" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
