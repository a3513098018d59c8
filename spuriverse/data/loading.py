"""`load_benchmark`: any source (hub id, local dataset folder, parquet/json/csv files) through
`datasets.load_dataset`, validated row by row, fingerprinted, and iterated item by item.

With a `ColumnMapping` (a *source* VQA benchmark for `curate mine --source`), every row goes through
`spuriverse.data.mapping.mapped_item` instead of the long/wide layout detection; CSV files are then
read with every column as a string (question ids such as "007" keep their zeros) and blank cells
as "".

Memory stays flat in dataset size: the Arrow table is memory-mapped, rows are read in batches, and
images are decoded one item at a time, only for items the caller wants.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spuriverse.data.layouts import (
    BenchmarkError,
    SideTable,
    long_item,
    wide_image_columns,
    wide_items,
)
from spuriverse.data.images import ImageDecodeError, ImageInput
from spuriverse.data.mapping import mapped_item
from spuriverse.schema import VARIANTS, BenchmarkInfo, ColumnMapping, Item

_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
_BATCH = 256


@dataclass
class LoadedItem:
    """An item with its decoded image, or the reason its image could not be used."""

    index: int
    item: Item
    image: ImageInput | None
    image_error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # a long row's non-Item columns, raw (image cells undecoded)


@dataclass
class _Scan:
    n_items: int = 0
    counts: Counter = field(default_factory=Counter)
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)
    groups: set = field(default_factory=set)
    fingerprint: str = ""


def _has_image(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, dict) and not cell.get("bytes") and not cell.get("path"))


def pick_split(dsd: Any, split: str | None, source: str) -> Any:
    names = list(dsd.keys())
    if split is not None:
        if split not in dsd:
            raise BenchmarkError(f"{source}: no split {split!r} (has {', '.join(names)})")
        return dsd[split]
    if len(names) == 1:
        return dsd[names[0]]
    for preferred in ("test", "validation", "train"):
        if preferred in dsd:
            return dsd[preferred]
    raise BenchmarkError(f"{source}: several splits ({', '.join(names)}); choose one with --split")


def _csv_string_kwargs(files: list[str]) -> dict[str, Any]:
    """datasets' csv builder arguments that read every column of `files` as a string."""
    import csv

    from datasets import Features, Value

    with open(files[0], newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    if not header:
        raise BenchmarkError(f"{files[0]}: empty CSV file (no header)")
    return {"features": Features({c: Value("string") for c in header}), "keep_default_na": False}


_DATA_SUFFIXES = (".parquet", ".json", ".jsonl", ".csv", ".arrow")
_FOLDER_RULE = ("A dataset folder holds a README.md card whose YAML header lists `configs:`, or parquet / "
                "JSON(L) / CSV data files (e.g. data/test-00000-of-00001.parquet).")


def _survey(path: Path, limit: int = 2000, *, stop_at_data: bool = True) -> tuple[Counter[str], list[str], bool]:
    """File suffix counts, the first few names, and whether a data file was seen (bounded walk)."""
    counts: Counter[str] = Counter()
    names: list[str] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            suffix = Path(f).suffix.lower()
            counts[suffix or "(no suffix)"] += 1
            if len(names) < 5:
                names.append(str(Path(root, f).relative_to(path)))
            if suffix in _DATA_SUFFIXES and stop_at_data:
                return counts, names, True
            if sum(counts.values()) >= limit:
                return counts, names, False
    return counts, names, any(k in _DATA_SUFFIXES for k in counts)


def _found(path: Path) -> str:
    counts, names, _ = _survey(path, stop_at_data=False)
    if not counts:
        return "the folder is empty"
    kinds = ", ".join(f"{n} {k}" for k, n in counts.most_common(4))
    total = sum(counts.values())
    return f"found {'at least ' if total >= 2000 else ''}{total} file(s): {kinds} (e.g. {', '.join(names[:3])})"


def check_dataset_folder(path: Path) -> None:
    """Refuse, naming what was found, a folder `datasets` would misread (text or image files only)."""
    card = path / "README.md"
    if card.is_file() and re.search(r"(?m)^configs:", card.read_text("utf-8", errors="replace")):
        return
    if not _survey(path)[2]:
        raise BenchmarkError(f"{path}: not a dataset folder ({_found(path)}). {_FOLDER_RULE}")


def load_dataset_source(source: str, config: str | None, revision: str | None,
                  all_strings: bool = False) -> tuple[Any, Path | None]:
    """Resolve `source` to a datasets call. Returns the DatasetDict and a base dir for image paths.
    `all_strings`: CSV files are read with every column as a string, blanks as "" (mapped sources)."""
    import datasets

    # Local sources are streamed straight from their files: no Arrow cache copy, and no risk of
    # the cache serving an older build of a file with the same name and size.
    path = Path(source).expanduser()
    if path.is_dir():
        check_dataset_folder(path)
        try:
            return datasets.load_dataset(str(path), name=config, streaming=True), path
        except (ValueError, FileNotFoundError, OSError) as exc:  # datasets' own messages name no remedy
            raise BenchmarkError(
                f"{path}: not a readable dataset folder ({_found(path)}; datasets says: {exc}). {_FOLDER_RULE}"
            ) from exc
    matches = sorted(glob.glob(str(path))) if any(ch in source for ch in "*?[") else []
    if path.is_file() or matches:
        files = matches or [str(path)]
        builder = _FILE_BUILDERS.get(Path(files[0]).suffix.lower())
        if builder is None:
            raise BenchmarkError(f"{source}: unsupported file type (use parquet, json/jsonl or csv)")
        kwargs = _csv_string_kwargs(files) if builder == "csv" and all_strings else {}
        return datasets.load_dataset(builder, data_files=files, streaming=True, **kwargs), Path(files[0]).parent
    if source.startswith((".", "/", "~")) or source.endswith(tuple(_FILE_BUILDERS)):
        raise BenchmarkError(f"{source}: no such file or folder")
    try:
        return datasets.load_dataset(source, name=config, revision=revision), None
    except Exception as exc:  # the hub raises many types (offline, gated, missing)
        raise BenchmarkError(
            f"cannot load {source!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Without hub access, point --dataset (make eval DATASET=...) at a local dataset folder or "
            "parquet files, or run `make eval` with no MODEL for the offline demo."
        ) from exc


class Benchmark:
    """A validated, fingerprinted benchmark in the long layout (wide sources are expanded)."""

    def __init__(
        self,
        dataset: Any,
        *,
        source: str,
        config: str | None = None,
        split: str | None = None,
        revision: str | None = None,
        base_dir: Path | None = None,
        side_table: SideTable | None = None,
        mapping: ColumnMapping | None = None,
        source_name: str | None = None,
    ) -> None:
        import datasets

        self.source, self.config, self.split, self.revision = source, config, split, revision
        self.base_dir, self.side_table = base_dir, side_table
        self.mapping, self.source_name = mapping, source_name
        cols = list(dataset.column_names or next(iter(dataset), {}).keys())
        if mapping is not None:
            # A source benchmark: every row is one control item, read through the column mapping.
            if mapping.image not in cols:
                raise BenchmarkError(f"{source}: no image column {mapping.image!r} (columns: {', '.join(cols)}); "
                                     "set the mapping's `image`")
            self._wide_cols = []
            self.layout = "long"
            self.image_columns = [mapping.image]
            if mapping.image_root is not None:
                self.base_dir = Path(mapping.image_root).expanduser()
        else:
            self._wide_cols = wide_image_columns(cols)
            self.layout = "wide" if self._wide_cols else "long"
            if self.layout == "wide" and "image" not in cols:
                raise BenchmarkError(f"{source}: wide layout (spurious_group_* columns) without an 'image' column")
            self.image_columns = [c for c in ["image", *self._wide_cols] if c in cols]
        # Every Image column stays encoded (the item image and any extra one, such as a mask): only the
        # item image is ever decoded, one item at a time.
        self._image_feature_columns = [
            c for c, f in (dataset.features or {}).items()
            if isinstance(f, datasets.Image) or isinstance(getattr(f, "feature", None), datasets.Image)
        ]
        for c in dict.fromkeys([*self.image_columns, *self._image_feature_columns]):
            feat = dataset.features.get(c) if dataset.features is not None else None
            if isinstance(feat, datasets.Image):
                dataset = dataset.cast_column(c, datasets.Image(decode=False))
            elif isinstance(getattr(feat, "feature", None), datasets.Image):  # a list of images (frames)
                dataset = dataset.cast_column(c, datasets.List(datasets.Image(decode=False)))
        self.dataset = dataset
        self._columns = cols
        # Long-layout columns that are not Item fields (e.g. a generator's metadata and masks): kept, not
        # validated, handed to callers as `LoadedItem.extras`; evaluation ignores them.
        self.extra_columns: list[str] = (
            [c for c in cols if c not in Item.model_fields and c != "image"] if mapping is None and not self._wide_cols else []
        )
        self._present: list[list[str]] = []  # per wide row: the spurious_group_k columns holding an image
        self._scan = self._validate_and_fingerprint()


    # -- rows -> items --------------------------------------------------------------------
    def _rows(self, with_images: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
        ds = self.dataset
        if not with_images and self.image_columns:
            # Columnar sources skip the image bytes entirely: metadata passes stay cheap.
            skip = {*self.image_columns, *self._image_feature_columns}
            ds = ds.select_columns([c for c in self._columns if c not in skip])
        row_no = 0
        for batch in ds.iter(batch_size=_BATCH):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys)):
                yield row_no, dict(zip(keys, values))
                row_no += 1

    def _row_items(self, with_images: bool = True) -> Iterator[tuple[Item, Any, dict[str, Any]]]:
        """(item, raw image cell, extra columns) in benchmark order (cell None when `with_images` is False;
        extras empty except for long-layout rows with `extra_columns`)."""
        mapping = self.mapping
        for row_no, row in self._rows(with_images):
            if mapping is not None:
                yield mapped_item(row_no, row, mapping, self.source_name or ""), row.get(mapping.image), {}
            elif self.layout == "long":
                yield long_item(row_no, row), row.get("image"), {c: row[c] for c in self.extra_columns if c in row}
            else:
                if with_images:
                    present = [c for c in self._wide_cols if _has_image(row.get(c))]
                    if row_no == len(self._present):  # the first (validating) pass records it
                        self._present.append(present)
                else:
                    present = self._present[row_no]
                for wi in wide_items(row_no, row, present, self.side_table):
                    yield wi.item, row.get(wi.image_column), {}

    def _image_bytes(self, cell: Any) -> bytes | None:
        if isinstance(cell, list):  # a list of images (e.g. SEED-Bench video frames): the first one
            cell = cell[0] if cell else None
        if cell is None:
            return None
        if isinstance(cell, dict):
            if cell.get("bytes"):
                return cell["bytes"]
            cell = cell.get("path")
            if not cell:
                return None
        if isinstance(cell, (bytes, bytearray)):
            return bytes(cell)
        if isinstance(cell, str):
            p = Path(cell)
            if not p.is_absolute() and self.base_dir is not None:
                p = self.base_dir / p
            try:
                return p.read_bytes()
            except OSError:
                return None
        return None

    def _validate_and_fingerprint(self) -> _Scan:
        """One pass: every row validated (a bad row fails now, before any model loads), counts,
        and an order-independent fingerprint over ids, questions, options, answers, image bytes."""
        scan, digests = _Scan(), []
        seen: dict[str, int] = {}
        for index, (item, cell, _) in enumerate(self._row_items()):
            if item.item_id in seen:
                raise BenchmarkError(
                    f"item {index}: duplicate item_id {item.item_id!r} (first at item {seen[item.item_id]})"
                )
            seen[item.item_id] = index
            scan.counts[item.variant] += 1
            scan.answers[(len(item.options), item.answer)] += 1
            if item.variant != "control":
                scan.groups.add(item.group_id)
            data = self._image_bytes(cell) or b""
            fields = [item.item_id, item.group_id, item.variant, item.question, item.options, item.answer]
            if self.mapping is not None:  # a mapped source: what the mapping and name decide counts too
                fields += [item.source_benchmark, item.source_id, item.category]
            text = json.dumps(fields, ensure_ascii=False)
            digests.append(hashlib.sha256(text.encode() + b"\0" + hashlib.sha256(data).digest()).digest())
        if not digests:
            raise BenchmarkError(f"{self.source}: the benchmark has no items")
        scan.n_items = len(digests)
        h = hashlib.sha256()
        for d in sorted(digests):
            h.update(d)
        scan.fingerprint = "sha256:" + h.hexdigest()
        return scan

    # -- public ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._scan.n_items

    @property
    def fingerprint(self) -> str:
        return self._scan.fingerprint

    @property
    def answer_counts(self) -> Counter[tuple[int, str]]:
        """(n_options, answer letter) -> count; used by the `frequent` baseline."""
        return Counter(self._scan.answers)

    def info(self) -> BenchmarkInfo:
        return BenchmarkInfo(
            source=self.source,
            config=self.config,
            split=self.split,
            revision=self.revision,
            layout=self.layout,
            fingerprint=self.fingerprint,
            n_items=len(self),
            n_groups=len(self._scan.groups),
            counts={v: self._scan.counts[v] for v in VARIANTS if self._scan.counts[v]},
        )

    def items(self) -> Iterator[Item]:
        """Items without images (cheap: image columns are not read)."""
        for item, _, _ in self._row_items(with_images=False):
            yield item

    def iter_items(
        self, want: Callable[[int, Item], bool] | None = None, keep_pixels: bool = True
    ) -> Iterator[LoadedItem]:
        """Items in benchmark order with validated images; items `want` rejects are skipped before
        their image is decoded. A missing or corrupt image becomes `image_error`, never a crash.
        `keep_pixels=False` keeps only the encoded bytes (memory for API backends)."""
        for index, (item, cell, extras) in enumerate(self._row_items()):
            if want is not None and not want(index, item):
                continue
            data = self._image_bytes(cell)
            if data is None:
                yield LoadedItem(index, item, None, "image missing or unreadable", extras)
                continue
            try:
                yield LoadedItem(index, item, ImageInput.from_bytes(data, keep_pixels), extras=extras)
            except ImageDecodeError as exc:
                yield LoadedItem(index, item, None, str(exc), extras)


def load_benchmark(
    source: str,
    config: str | None = None,
    revision: str | None = None,
    split: str | None = None,
    side_tables: list[str] | None = None,
    *,
    mapping: ColumnMapping | None = None,
    source_name: str | None = None,
) -> Benchmark:
    """Load a benchmark in the long or the wide layout.

    `source`: a hub id, a local dataset folder (with a card or plain data files), or parquet /
    json(l) / csv files (globs allowed). `side_tables`: for wide rows without question/options/
    answer, files such as the reference's meta CSVs ("aokvqa=aokvqa_train_meta.csv").

    `mapping`: read a *source* VQA benchmark through this column mapping (`mapped_item`): one
    control item per row, keyed by its question id, `source_benchmark` = `source_name`. Relative
    image paths resolve under `mapping.image_root`, default the source's folder (local sources).
    """
    if mapping is not None and side_tables:
        raise BenchmarkError("side tables apply to the wide layout, not to a column-mapped source")
    dsd, base_dir = load_dataset_source(source, config, revision, all_strings=mapping is not None)
    ds = pick_split(dsd, split, source) if hasattr(dsd, "keys") else dsd
    side = SideTable.from_files(side_tables) if side_tables else None
    return Benchmark(
        ds, source=source, config=config, split=split, revision=revision, base_dir=base_dir, side_table=side,
        mapping=mapping, source_name=source_name,
    )
