"""Tiny training data for the training-stage tests (written like users publish datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.bench_data import long_rows, write_long_dataset
from helpers.train_data import naming_rows, write_train_dataset


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """16 choice items (4 groups x anchor + 2 spurious + 1 counter) + 4 naming rows; 6 validation items."""
    train = long_rows(n_groups=4, n_spurious=2, n_counter=1, n_controls=0, seed=1) + naming_rows(4)
    val = long_rows(n_groups=2, n_spurious=2, n_counter=0, n_controls=0, seed=2)
    for r in val:
        r["item_id"] = "val-" + r["item_id"]
    return write_train_dataset(tmp_path_factory.mktemp("train-data"), train, val)


@pytest.fixture(scope="session")
def mc_bench(tmp_path_factory) -> Path:
    """A long-layout benchmark (6 groups + controls), for selection by group and variant."""
    return write_long_dataset(tmp_path_factory.mktemp("train-bench"), n_groups=6, n_controls=4)
