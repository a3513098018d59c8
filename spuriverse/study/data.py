"""The study's own copy of the benchmark, and the held-out evaluation sets per seed.

The benchmark (long or wide layout, side tables, extra control sources) is read once through
`load_benchmark`, every image validated, and written to ``DIR/data/benchmark.parquet`` in the long
layout. Every training run of the study selects its items from that one file (by group id and
variant, as `spuriverse train --groups --variants` does), so the study never depends on the source
staying the same after it started, and wide-layout releases train like long ones. A control item
whose group id is shared with another item gets its own group (``control/<item_id>``), so that a
selection by group picks exactly the chosen controls.

Each seed's held-out set (the test groups' items and the held-out control sample) is a small
long-layout file ``DIR/data/seed-S/heldout.parquet``: an ordinary benchmark for `spuriverse eval`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from spuriverse.data import load_benchmark
from spuriverse.data.layouts import long_features
from spuriverse.persist import atomic_writer
from spuriverse.schema.study import StudyDataSpec
from spuriverse.study.splits import ItemMeta, StudyDataError

COPY = Path("data") / "benchmark.parquet"
_CHUNK = 64


def heldout_path(seed: int) -> Path:
    return Path("data") / f"seed-{seed}" / "heldout.parquet"


@dataclass
class Sources:
    """The loaded benchmark and control sources, and their items' metadata (as the copy will hold them)."""

    loaded: list[tuple[str, Any, bool]]  # (name, Benchmark, is an extra control source)
    items: list[ItemMeta]
    regroup: set[str]  # control group ids shared with other items: each such control gets its own group

    @property
    def fingerprint(self) -> str:
        return str(self.loaded[0][1].fingerprint)


def open_sources(spec: StudyDataSpec) -> Sources:
    """Load (and validate) the benchmark and control sources; collect the item metadata without
    reading images. Item ids must be unique across all sources."""
    loaded = [(spec.source, load_benchmark(spec.source, spec.config, spec.revision, spec.split,
                                           spec.side_tables or None), False)]
    loaded += [(src, load_benchmark(src), True) for src in spec.controls]
    raw: list[tuple[str, str, str, str, str]] = []
    seen: set[str] = set()
    for name, bench, is_control in loaded:
        for it in bench.items():
            if it.item_id in seen:
                raise StudyDataError(f"{name}: item id {it.item_id!r} appears twice (the benchmark and --controls "
                                     "sources must not share item ids)")
            seen.add(it.item_id)
            variant = "control" if is_control else it.variant
            raw.append((it.item_id, it.group_id, variant, it.source_benchmark, it.source_id))
    counts = Counter(r[1] for r in raw)
    regroup = {r[1] for r in raw if r[2] == "control" and counts[r[1]] > 1}
    items = [ItemMeta(i, f"control/{i}" if v == "control" and g in regroup else g, v, s, sid)
             for i, g, v, s, sid in raw]
    return Sources(loaded, items, regroup)


def _rows(sources: Sources, progress: bool) -> Iterator[dict[str, Any]]:
    """Every item as a long-layout row with its image bytes, as `sources.items` describes it; an
    unreadable image is an error naming the item."""
    for name, bench, is_control in sources.loaded:
        bar = tqdm(total=len(bench), desc=f"study: copying {Path(name).name or name}", unit="item",
                   disable=not progress, dynamic_ncols=True)
        for li in bench.iter_items(keep_pixels=False):
            bar.update(1)
            if li.image is None:
                raise StudyDataError(f"{name}: item {li.item.item_id!r}: {li.image_error}")
            row = li.item.model_dump()
            if is_control or row["variant"] == "control":
                row["variant"] = "control"
                if row["group_id"] in sources.regroup:
                    row["group_id"] = f"control/{row['item_id']}"
            row["image"] = {"bytes": li.image.data, "path": None}
            yield row
        bar.close()


def write_copy(sources: Sources, out: Path, *, progress: bool = True) -> int:
    """The study's copy of every item (long layout, images embedded), written atomically to `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = long_features()
    schema = feats.arrow_schema
    n = 0
    with atomic_writer(out) as f, pq.ParquetWriter(f, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for row in _rows(sources, progress):
            chunk.append(row)
            if len(chunk) >= _CHUNK:
                writer.write_table(_table(chunk, feats, schema, pa))
                n, chunk = n + len(chunk), []
        if chunk:
            writer.write_table(_table(chunk, feats, schema, pa))
            n += len(chunk)
    return n


def _table(rows: list[dict[str, Any]], feats: Any, schema: Any, pa: Any) -> Any:
    columns = {k: [r.get(k, "") for r in rows] for k in feats}
    return pa.Table.from_pydict(feats.encode_batch(columns), schema=schema)


def read_metas(copy: Path) -> list[ItemMeta]:
    """The metadata of the study's copy (no image bytes read)."""
    import pyarrow.parquet as pq

    cols = ["item_id", "group_id", "variant", "source_benchmark", "source_id"]
    t = pq.read_table(copy, columns=cols).to_pydict()
    return [ItemMeta(*vals) for vals in zip(*(t[c] for c in cols))]


def write_subset(copy: Path, item_ids: Sequence[str], out: Path) -> int:
    """The rows of `copy` whose item id is in `item_ids` (in the copy's order) as a parquet file,
    streamed batch by batch (memory: one batch of images)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = pa.array(sorted(set(item_ids)), type=pa.string())
    found: set[str] = set()
    src = pq.ParquetFile(copy)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out) as f, pq.ParquetWriter(f, src.schema_arrow) as writer:
        for batch in src.iter_batches(batch_size=_CHUNK):
            table = pa.Table.from_batches([batch], schema=src.schema_arrow)
            table = table.filter(pc.is_in(table["item_id"], value_set=wanted))
            if table.num_rows:
                found.update(table["item_id"].to_pylist())
                writer.write_table(table)
    missing = set(item_ids) - found
    if missing:
        raise StudyDataError(f"{copy}: items {sorted(missing)[:5]} are missing from the study's copy")
    return len(found)


__all__ = ["COPY", "Sources", "heldout_path", "open_sources", "read_metas", "write_copy", "write_subset"]
