"""The attribution folder's files (formats in `spuriverse.schema.attribution`).

    attribution.json      manifest (config, model, benchmark, invariance of the target)
    rows.jsonl            one durable line per (item, method); the commit point of a result
    sanity.jsonl          model-randomisation check, one line per (item, method)
    maps/<item>/<method>.npz   the map on the original raster (array `map`), written before its row
    overlays/<item>.png   the image and each method's map
    grids/<group>.png     anchor vs spurious images of a group, every method
    summary.json, report.md, report.html

A map is written atomically before its row is appended durably, so a killed run keeps every result
whose row exists; a map without a row is simply recomputed and rewritten. Under data parallelism
each process appends to `rows.rank<k>.jsonl`; the main process merges them into `rows.jsonl` in
benchmark order, rejecting duplicates.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from spuriverse.persist import JsonlFileError, atomic_write_bytes, atomic_write_jsonl, read_jsonl
from spuriverse.schema.attribution import AttributionRow, SanityRow

MANIFEST = "attribution.json"
ROWS = "rows.jsonl"
SANITY = "sanity.jsonl"
SUMMARY = "summary.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

M = TypeVar("M", bound=BaseModel)


class AttributionFileError(JsonlFileError):
    """A malformed or duplicated line in an attribution folder."""


def slug(name: str) -> str:
    """A file-name-safe, collision-free form of an item or group id."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "item"
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def map_path(item_id: str, method: str) -> Path:
    """The map's path relative to the run folder."""
    return Path("maps") / slug(item_id) / f"{method}.npz"


def npz_bytes(raster: np.ndarray) -> bytes:
    """A compressed .npz holding `map` (float32), with a fixed timestamp: equal maps give equal bytes."""
    array = io.BytesIO()
    np.lib.format.write_array(array, np.ascontiguousarray(raster, dtype=np.float32), allow_pickle=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("map.npy", date_time=(1980, 1, 1, 0, 0, 0)), array.getvalue(),
                   compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def write_map(run_dir: Path, item_id: str, method: str, raster: np.ndarray) -> Path:
    rel = map_path(item_id, method)
    atomic_write_bytes(run_dir / rel, npz_bytes(raster))
    return rel


def read_map(run_dir: Path, rel: str | Path) -> np.ndarray:
    with np.load(run_dir / rel) as f:
        return f["map"]


def shard(run_dir: Path, name: str, rank: int, world: int) -> Path:
    return run_dir / (name if world == 1 else name.replace(".jsonl", f".rank{rank}.jsonl"))


def _files(run_dir: Path, name: str) -> list[Path]:
    return [run_dir / name, *sorted(run_dir.glob(name.replace(".jsonl", ".rank*.jsonl")))]


def read_records(run_dir: Path, name: str, model: type[M]) -> list[M]:
    """Every record of `name` and its unmerged shards; a second line for one (item, method) is an error."""
    seen: set[tuple[str, str]] = set()
    out = []
    for path in _files(run_dir, name):
        for rec in read_jsonl(path, model, error=AttributionFileError):
            fields: Any = rec
            key = (fields.item_id, fields.method)
            if key in seen:
                raise AttributionFileError(f"{path}: a second line for item {key[0]!r}, method {key[1]!r}")
            seen.add(key)
            out.append(rec)
    return out


def read_rows(run_dir: Path) -> list[AttributionRow]:
    return read_records(run_dir, ROWS, AttributionRow)


def read_sanity(run_dir: Path) -> list[SanityRow]:
    return read_records(run_dir, SANITY, SanityRow)


def write_canonical(run_dir: Path, name: str, records: Iterable[BaseModel], key) -> None:  # type: ignore[no-untyped-def]
    """Atomically rewrite `name` sorted by `key` and drop the merged shards: the same bytes whatever the
    completion order or the number of processes."""
    atomic_write_jsonl(run_dir / name, sorted(records, key=key))
    for extra in _files(run_dir, name)[1:]:
        extra.unlink()
