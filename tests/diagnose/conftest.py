"""A small planted-cue benchmark (the real world generator's rows, with core / cue masks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.attribution_data import world_rows, write_world_dataset


@pytest.fixture(scope="session")
def world_bench(tmp_path_factory) -> Path:
    """2 correlations x (anchor + 3 spurious): 8 items, 32x32 images with core_mask / cue_mask."""
    return write_world_dataset(tmp_path_factory.mktemp("world-bench"), world_rows(2, 4))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one intra-op thread on a shared machine; restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
