"""Tiny training data for the training-stage tests (written like users publish datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.bench_data import long_rows, png_bytes, write_long_dataset

CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
  - split: validation
    path: data/validation-*.parquet
---
# tiny training set
"""


def write_train_dataset(out: Path, train: list[dict], val: list[dict] | None = None) -> Path:
    """`out/data/{train,validation}-00000.parquet` + a card; rows may carry a `target` (naming rows)."""
    from datasets import Dataset, Value

    from spuriverse.data.layouts import long_features

    feats = long_features()
    feats["target"] = Value("string")
    (out / "data").mkdir(parents=True, exist_ok=True)
    blank = {k: "" for k in feats if k not in ("image", "options")}
    for split, rows in (("train", train), ("validation", val or [])):
        if not rows:
            continue
        recs = [{**blank, "options": [], **r, "image": {"bytes": r["image"], "path": None}} for r in rows]
        Dataset.from_list(recs, features=feats).to_parquet(str(out / "data" / f"{split}-00000.parquet"))
    card = CARD if val else CARD.split("  - split: validation")[0] + "---\n# tiny training set\n"
    (out / "README.md").write_text(card)
    return out


def naming_rows(n: int, seed: int = 0) -> list[dict]:
    words = ["circle", "square", "triangle"]
    return [{"item_id": f"name{k:03d}", "question": "What shape is shown?", "target": words[k % 3],
             "image": png_bytes(seed * 977 + k)} for k in range(n)]


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
