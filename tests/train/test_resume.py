"""kill -9 mid-training, then the same command: the run ends with the same weights as an
uninterrupted one (CPU, same seed). Incomplete checkpoints are set aside, never trusted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from spuriverse.train.checkpoints import MARKER, is_complete

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _cmd(model: Path, data: Path, out: Path) -> list[str]:
    # 20 examples / batch 4 = 5 steps an epoch; checkpoints every 3 steps land mid-epoch.
    return [sys.executable, "-m", "spuriverse", "train", "--model", str(model), "--data", str(data),
            "--out", str(out), "--epochs", "8", "--batch-size", "4", "--save-steps", "3", "--lr", "5e-3",
            "--save-total-limit", "3", "--threads", "1", "--no-progress"]


def _weights(out: Path) -> dict:
    return load_file(out / "adapter_model.safetensors")


def test_kill_9_then_resume_equals_uninterrupted(tiny_llava, train_data, tmp_path):
    ref = subprocess.run(_cmd(tiny_llava, train_data, tmp_path / "ref"), env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tiny_llava, train_data, out), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpts = out / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in ckpts.glob("checkpoint-*") if (p / MARKER).exists()] if ckpts.exists() else []
        if any(int(p.name.split("-")[1]) >= 12 for p in done):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "train.json").exists() and not (out / "adapter_model.safetensors").exists()

    # A checkpoint killed while being written: newer than every complete one, half its files.
    last = max((p for p in ckpts.glob("checkpoint-*") if is_complete(p)), key=lambda p: int(p.name.split("-")[1]))
    torn = ckpts / "checkpoint-999"
    shutil.copytree(last, torn)
    (torn / MARKER).unlink()
    opt = torn / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])

    again = subprocess.run(_cmd(tiny_llava, train_data, out), env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "checkpoint-999 is incomplete" in again.stderr and "resuming from" in again.stderr
    a, b = _weights(tmp_path / "ref"), _weights(out)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    # the torn checkpoint was kept aside, not deleted (removed only with the rest after success)
    import json

    manifest = json.loads((out / "train.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed_from"]
    ref_m = json.loads((tmp_path / "ref" / "train.json").read_text())
    assert manifest["global_steps"] == ref_m["global_steps"] == 40
    assert [e["train_loss"] for e in manifest["epochs"]] == [e["train_loss"] for e in ref_m["epochs"]]
