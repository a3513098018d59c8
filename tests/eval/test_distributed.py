"""Data-parallel runs (2 CPU processes) write the same samples as one process.

`accelerate launch --cpu --num_processes 2` silently runs ONE process (docs/offline-models.md), so
multi-process CPU runs go through `torchrun` (or `accelerate launch --multi_gpu` with
ACCELERATE_USE_CPU=1); the runner uses accelerate's PartialState(cpu=True) either way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stable(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        d = json.loads(line)
        d.pop("timestamp"), d.pop("latency_s")
        out.append(d)
    return out


def _launcher(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        pytest.skip(f"{name} not installed next to this interpreter")
    if name == "torchrun":
        return [str(exe), "--nproc_per_node", "2", "--master_port", str(_free_port())]
    # `--cpu --num_processes 2` would silently run ONE process; --multi_gpu + ACCELERATE_USE_CPU=1 runs two.
    return [str(exe), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port())]


@pytest.mark.parametrize("launcher", ["accelerate", "torchrun"])
def test_two_processes_equal_one(launcher, tiny_llava, small_benchmark, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    args = ["-m", "spuriverse", "eval", "--model", str(tiny_llava), "--dataset", str(small_benchmark),
            "--batch-size", "1", "--bootstrap", "100", "--no-progress", "--output-dir"]
    dp = subprocess.run([*_launcher(launcher), *args, str(tmp_path / "dp")],
                        env=env, capture_output=True, text=True, timeout=300)
    assert dp.returncode == 0, dp.stderr[-3000:]
    single = subprocess.run([sys.executable, *args, str(tmp_path / "one")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = _stable(tmp_path / "dp"), _stable(tmp_path / "one")
    assert len(a) == 36
    for x, y in zip(a, b):
        lx, ly = x.pop("logprobs"), y.pop("logprobs")
        assert x == y
        assert all(abs(lx[k] - ly[k]) <= 1e-5 for k in lx)
    assert not list((tmp_path / "dp").glob("samples.rank*.jsonl")), "shards must be merged"
    ra = json.loads((tmp_path / "dp" / "results.json").read_text())
    rb = json.loads((tmp_path / "one" / "results.json").read_text())
    assert ra["timings"]["processes"] == 2 and rb["timings"]["processes"] == 1  # really two processes
    assert ra["metrics"] == rb["metrics"]
