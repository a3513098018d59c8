"""Data-parallel training (2 CPU processes, DDP over gloo) equals one process at the same global batch.

On CPU, `accelerate launch --cpu --num_processes 2` silently runs one process (docs/offline-models.md);
`torchrun` and `accelerate launch --multi_gpu` with ACCELERATE_USE_CPU=1 run two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file


REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("launcher", ["torchrun"])
def test_two_processes_equal_one(launcher, tiny_llava, train_data, tmp_path):
    exe = Path(sys.executable).parent / launcher
    if not exe.exists():
        pytest.skip(f"{launcher} not installed next to this interpreter")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    args = ["-m", "spuriverse", "train", "--model", str(tiny_llava), "--data", str(train_data), "--epochs", "2",
            "--lr", "5e-3", "--lora-dropout", "0", "--threads", "1", "--no-progress", "--out"]
    dp = subprocess.run([str(exe), "--nproc_per_node", "2", "--master_port", str(free_port()), *args,
                         str(tmp_path / "dp"), "--batch-size", "2"], env=env, capture_output=True, text=True,
                        timeout=300)
    assert dp.returncode == 0, dp.stderr[-3000:]
    one = subprocess.run([sys.executable, *args, str(tmp_path / "one"), "--batch-size", "4"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    ma, mb = (json.loads((tmp_path / d / "train.json").read_text()) for d in ("dp", "one"))
    assert ma["processes"] == 2 and mb["processes"] == 1  # really two processes
    assert ma["config"]["global_batch_size"] == mb["config"]["global_batch_size"] == 4
    assert ma["global_steps"] == mb["global_steps"] == 10
    a, b = load_file(tmp_path / "dp" / "adapter_model.safetensors"), load_file(
        tmp_path / "one" / "adapter_model.safetensors")
    # Padding differs between a batch of 4 and two of 2 (see test_gradient_accumulation_...).
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 5e-5
    assert [e["val_accuracy"] for e in ma["evals"]] == [e["val_accuracy"] for e in mb["evals"]]
    assert all(e["n"] == 6 for e in ma["evals"])  # every validation item counted once
    for x, y in zip(ma["epochs"], mb["epochs"]):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-4)
