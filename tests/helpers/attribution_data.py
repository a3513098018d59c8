"""Small planted-cue benchmarks for the attribution tests: rows of the real world generator
(`spuriverse.data.world`), written as a local dataset folder with its `core_mask` / `cue_mask` columns."""

from __future__ import annotations

import itertools
from pathlib import Path

from helpers.bench_data import CARD


def world_rows(n_groups: int = 2, per_group: int = 4) -> list[dict]:
    """The first `per_group` items (anchor, spurious_1, ...) of the first `n_groups` correlations."""
    from spuriverse.data.world import N_COUNTER, N_SPURIOUS, benchmark_rows

    per_corr = 1 + N_SPURIOUS + N_COUNTER
    rows = list(itertools.islice(benchmark_rows(seed=0, n_controls=0), n_groups * per_corr))
    return [r for g in range(n_groups) for r in rows[g * per_corr: g * per_corr + per_group]]


def write_world_dataset(out: str | Path, rows: list[dict]) -> Path:
    """`rows` (world rows, images and masks as PNG bytes) as `out/data/test-00000.parquet` + a card."""
    from datasets import Dataset

    from spuriverse.data.world import features

    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    cols = ("image", "core_mask", "cue_mask")
    recs = [{**r, **{c: None if r[c] is None else {"bytes": r[c], "path": None} for c in cols}} for r in rows]
    Dataset.from_list(recs, features=features()).to_parquet(str(out / "data" / "test-00000.parquet"))
    (out / "README.md").write_text(CARD)
    return out
