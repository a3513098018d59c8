"""kill -9 mid-training, then the same command: the run ends with the same weights as an
uninterrupted one (CPU, same seed). Incomplete checkpoints are set aside, never trusted."""

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


@pytest.fixture(scope="module")
def reference(tiny_llava, train_data, tmp_path_factory) -> Path:
    """An uninterrupted run of `_cmd`."""
    out = tmp_path_factory.mktemp("resume") / "ref"
    ref = subprocess.run(_cmd(tiny_llava, train_data, out), env=ENV, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    return out


def _assert_same_run(out: Path, ref: Path) -> None:
    a, b = _weights(ref), _weights(out)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    manifest = json.loads((out / "train.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed_from"]
    ref_m = json.loads((ref / "train.json").read_text())
    assert manifest["global_steps"] == ref_m["global_steps"] == 40
    assert [e["train_loss"] for e in manifest["epochs"]] == [e["train_loss"] for e in ref_m["epochs"]]


def test_kill_9_then_resume_equals_uninterrupted(tiny_llava, train_data, reference, tmp_path):
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
    _assert_same_run(out, reference)


# The Trainer writes a checkpoint's files one after another; this kills the process (SIGKILL, no
# cleanup) halfway through writing checkpoint-9's optimizer.pt, after its weights were written.
KILL_WHILE_SAVING = """
import io, os, signal, sys
import torch
real_save = torch.save
def save(obj, f, *args, **kwargs):
    if isinstance(f, str) and f.endswith(os.path.join("checkpoint-9", "optimizer.pt")):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        with open(f, "wb") as fh:
            fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from spuriverse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_during_checkpoint_write_resumes_from_the_last_complete_one(tiny_llava, train_data, reference,
                                                                         tmp_path):
    out = tmp_path / "torn"
    cmd = _cmd(tiny_llava, train_data, out)
    killed = subprocess.run([sys.executable, "-c", KILL_WHILE_SAVING, *cmd[3:]], env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    torn = out / "checkpoints" / "checkpoint-9"
    assert (torn / "adapter_model.safetensors").exists() and not is_complete(torn)
    assert is_complete(out / "checkpoints" / "checkpoint-6")

    again = subprocess.run([*cmd, "--keep-checkpoints"], env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "checkpoint-9 is incomplete" in again.stderr
    assert f"resuming from {out / 'checkpoints' / 'checkpoint-6'}" in again.stderr
    _assert_same_run(out, reference)
    # the torn checkpoint is kept aside with what it had, not deleted
    aside = out / "checkpoints" / "incomplete" / "checkpoint-9"
    assert (aside / "optimizer.pt").exists() and not is_complete(aside)
    assert json.loads((out / "train.json").read_text())["resumed_from"] == ["checkpoint-6"]
