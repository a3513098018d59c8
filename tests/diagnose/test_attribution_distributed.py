"""Data parallel like `spuriverse eval`: a 2-process `accelerate launch` run writes the same rows and maps as
one process (each process takes every other item; the main process merges). On CPU `accelerate launch
--cpu` runs one process, so the launch uses --multi_gpu with ACCELERATE_USE_CPU=1 (gloo), as the training
test does, with a hard timeout after which the launcher and its workers are killed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from spuriverse.cli import main
from spuriverse.diagnose.attribution.files import read_map, read_rows

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        out, err = proc.communicate()
        pytest.fail(f"accelerate launch did not finish in {TIMEOUT_S} s (killed):\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_two_processes_write_what_one_writes(tiny_llava, world_bench, tmp_path):
    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("accelerate's launcher is not installed next to this interpreter")
    args = ["diagnose", "attribution", "--model", str(tiny_llava), "--dataset", str(world_bench),
            "--method", "ig,gradcam", "--ig-steps", "8", "--metrics", "mass,pointing", "--sanity-items", "2",
            "--bootstrap", "50", "--threads", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    dp = _run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               "-m", "spuriverse", *args, "--out", str(tmp_path / "dp")], env)
    assert dp.returncode == 0, dp.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert not list((tmp_path / "dp").glob("*.rank*.jsonl"))  # shards merged
    stable = [{k: v for k, v in json.loads(x).items() if k != "seconds"}
              for x in (tmp_path / "dp" / "rows.jsonl").read_text().splitlines()]
    single = [{k: v for k, v in json.loads(x).items() if k != "seconds"}
              for x in (tmp_path / "one" / "rows.jsonl").read_text().splitlines()]
    assert stable == single and len(stable) == 16
    for r in read_rows(tmp_path / "one"):
        assert np.array_equal(read_map(tmp_path / "dp", r.map_file), read_map(tmp_path / "one", r.map_file))
    assert (tmp_path / "dp" / "sanity.jsonl").read_text() == (tmp_path / "one" / "sanity.jsonl").read_text()
