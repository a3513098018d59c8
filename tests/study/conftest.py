"""The study tests' benchmark (12 correlations from two sources, controls of both), written the way
users publish datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.bench_data import write_long_dataset
from helpers.study_data import study_rows

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def study_bench(tmp_path_factory) -> Path:
    return write_long_dataset(tmp_path_factory.mktemp("study-bench"), study_rows())
