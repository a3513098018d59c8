"""Benchmarks cannot rot: every `bench/*.py` runs at a tiny size (`--quick`) inside `make test`, so a
refactor that breaks a bench fails CI. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parents[1] / "bench").glob("*.py"))


def test_every_bench_has_a_quick_mode():
    assert BENCH, "no bench/*.py found"
    missing = [p.name for p in BENCH if "--quick" not in p.read_text()]
    assert not missing, f"benches without --quick: {missing}"


@pytest.mark.parametrize("bench", BENCH, ids=[p.stem for p in BENCH])
def test_bench_runs_quick(bench, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, f"{bench.name} --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
