"""The source benchmark of a curation folder: ``DIR/source.json`` (`SourceSpec`) and its presets.

``curate mine --source DATASET --model M`` runs a model over a source VQA benchmark (a hub id, a
local dataset folder, or parquet / CSV / JSONL files) read through a `ColumnMapping`, and records
what it read in ``DIR/source.json``: the dataset (local paths made absolute), config, split,
revision, the mapping (a relative ``image_root`` made absolute), the preset it came from, the source
name used in candidate ids, the mined model and the dataset fingerprint.

Later stages read the same items again, e.g. publish's control items::

    from spuriverse.curate.mine import candidate_id
    from spuriverse.curate.source import load_source, read_source_spec

    spec = read_source_spec(curation_dir)          # None: the folder was mined from predictions
    bench = load_source(spec)                   # a Benchmark of control items, in source order
    for li in bench.iter_items(keep_pixels=False):
        if candidate_id(spec.name, li.item.source_id) in mined_ids:   # an error mined from it
            continue
        ...                                     # li.item (a `control` Item), li.image

Each mapped item has ``item_id = group_id = source_id =`` the row's question id and
``source_benchmark = spec.name``, so ``candidate_id(spec.name, item.source_id)`` is exactly the
candidate id ``mine`` gave that question's error.

Presets (`--preset`: `spuriverse.curate.presets`, the one registry of source layouts) give the column
mapping of common hub layouts; ``--map key=column,...`` overrides fields of it (`parse_map_overrides`).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from spuriverse.persist import atomic_write_text
from spuriverse.curate.presets import dataset_mapping
from spuriverse.data import Benchmark, load_benchmark
from spuriverse.data.mapping import MAPPING_FIELDS, parse_map_overrides
from spuriverse.schema import SourceSpec

__all__ = ["MAPPING_FIELDS", "SOURCE", "SourceMismatch", "load_source", "make_source_spec",
           "read_source_spec", "write_source_spec"]

SOURCE = "source.json"

class SourceMismatch(ValueError):
    """The curation folder already records another source (or model) in source.json."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:64] or "source"


def _is_local(dataset: str) -> bool:
    p = Path(dataset).expanduser()
    return p.exists() or bool(any(ch in dataset for ch in "*?[") and glob.glob(str(p)))


def make_source_spec(dataset: str, *, name: str | None = None, preset: str | None = None,
                     overrides: str | list[str] | None = None, config: str | None = None,
                     split: str | None = None, revision: str | None = None,
                     model: str | None = None) -> SourceSpec:
    """A `SourceSpec` from CLI-style arguments: `preset` (default generic) mapping with `overrides`
    ("key=column,...") applied; local paths made absolute. `name` defaults to the preset name
    (generic: the dataset's file/folder/hub name)."""
    preset = preset or "generic"
    mapping = parse_map_overrides(overrides, dataset_mapping(preset))
    if mapping.image_root is not None and not Path(mapping.image_root).expanduser().is_absolute():
        mapping = mapping.model_copy(update={"image_root": str(Path(mapping.image_root).expanduser().resolve())})
    if _is_local(dataset):
        dataset = str(Path(dataset).expanduser().resolve())
    if name is None:
        if preset != "generic":
            name = preset
        else:
            stem = Path(dataset.rstrip("/")).name
            name = _slug(stem.split(".")[0] if "." in stem else stem)
    return SourceSpec(name=name, dataset=dataset, config=config, split=split, revision=revision,
                      mapping=mapping, preset=preset, model=model)


def write_source_spec(curation_dir: str | Path, spec: SourceSpec) -> Path:
    """Write ``curation_dir/source.json`` atomically."""
    path = Path(curation_dir) / SOURCE
    atomic_write_text(path, spec.model_dump_json(indent=2) + "\n")
    return path


def read_source_spec(curation_dir: str | Path) -> SourceSpec | None:
    """``curation_dir/source.json``, or None when the folder has none (mined from predictions)."""
    path = Path(curation_dir) / SOURCE
    if not path.exists():
        return None
    try:
        return SourceSpec.model_validate_json(path.read_text("utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: invalid source spec ({exc})") from None


def load_source(spec: SourceSpec) -> Benchmark:
    """The source benchmark of `spec`: one control item per row, through `spec.mapping`, with
    ``source_benchmark = spec.name`` (streamed for local sources: memory flat in source size)."""
    return load_benchmark(spec.dataset, spec.config, spec.revision, spec.split,
                          mapping=spec.mapping, source_name=spec.name)


def check_same_source(curation_dir: str | Path, spec: SourceSpec) -> SourceSpec | None:
    """The folder's existing source.json if it records the same source as `spec` (fingerprint
    aside), None if there is none; `SourceMismatch` naming the differences otherwise."""
    old = read_source_spec(curation_dir)
    if old is None:
        return None
    a, b = old.model_dump(exclude={"fingerprint"}), spec.model_dump(exclude={"fingerprint"})
    diffs = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]
    if diffs:
        raise SourceMismatch(f"{Path(curation_dir) / SOURCE} records another source ({'; '.join(diffs)}). "
                             "Use another --out folder (one curation folder = one source and one mined model).")
    return old
