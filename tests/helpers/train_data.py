"""Tiny training data written like users publish datasets (long layout + naming rows)."""

from __future__ import annotations

from pathlib import Path

from helpers.bench_data import png_bytes

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


def write_train_dataset(out: Path, train: list[dict], val: list[dict] | None = None,
                        extra_features: dict | None = None) -> Path:
    """`out/data/{train,validation}-00000.parquet` + a card; rows may carry a `target` (naming rows) and
    the `extra_features` columns."""
    from datasets import Dataset, Value

    from spuriverse.data.layouts import long_features

    feats = long_features()
    feats["target"] = Value("string")
    feats.update(extra_features or {})
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
