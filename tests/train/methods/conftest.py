"""A tiny spuriverse-world (masks, `aligned` ground truth) for the training-method tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """WORLD/train: configs biased (p_align 0.95) and balanced, splits train (40 rows) and validation (24);
    a quarter of the rows are naming rows. Built by the world's own generator."""
    from spuriverse.data.world import build_world

    out = tmp_path_factory.mktemp("tiny-world")
    build_world(out, n_train=40, n_val=24, n_controls=4, naming_frac=0.25)
    return out
