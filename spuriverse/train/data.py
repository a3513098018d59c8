"""Training examples: multiple-choice items (the benchmark's long or wide layout) and open-ended
"naming" rows, read from any source `load_benchmark` reads, selected by group ids and variants.

Row kinds in one split (long layout):
- **choice**: a benchmark item (`item_id`, `question`, `options`, `answer` letter, `image`, ...),
  validated exactly as `spuriverse eval` validates it;
- **naming**: `item_id`, `question`, `target` (free text, non-blank), `image` (any options are not
  used): an open-ended question whose answer is `target` (the completion loss learns it).

Images are kept encoded (bytes) and decoded per batch, so memory is the dataset's file size.
Bad input is an error naming the row, before any model loads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spuriverse.data.layouts import BenchmarkError, cell_text, long_item, wide_image_columns
from spuriverse.data.loading import load_benchmark, load_dataset_source, pick_split
from spuriverse.models.base import ImageDecodeError, ImageInput
from spuriverse.schema import VARIANTS
from spuriverse.schema.train import DataSummary, TrainDataSpec


class TrainDataError(ValueError):
    """The training (or validation) data cannot be trained on; the message says why and where."""


@dataclass(frozen=True)
class TrainExample:
    """One training example. `options`/`answer` for choice items; `target` for naming rows."""

    item_id: str
    question: str
    image: bytes | None
    options: tuple[str, ...] = ()
    answer: str | None = None
    target: str | None = None
    group_id: str = ""
    variant: str = ""
    # Ground truth where the data has it (spuriverse-world): does the cue suggest the answer, and the
    # encoded object / cue masks. Not part of the digest: they describe the image, they do not change it.
    aligned: bool | None = None
    core_mask: bytes | None = None
    cue_mask: bytes | None = None
    # The row's other scalar columns as text (spurious_attribute, a world's cue columns, ...): read by
    # diagnostics, never by training, and not part of the fingerprint.
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def kind(self) -> str:
        return "naming" if self.target is not None else "choice"

    @property
    def answer_text(self) -> str:
        """The correct answer as text (the class), whatever the letter."""
        if self.target is not None:
            return self.target
        return self.options["ABCDEF".index(self.answer or "A")]

    def image_input(self) -> ImageInput | None:
        """A fresh decoded image (not cached on the example: memory stays flat)."""
        return None if self.image is None else ImageInput.from_bytes(self.image)

    def digest(self) -> bytes:
        fields = [self.item_id, self.question, list(self.options), self.answer, self.target]
        text = json.dumps(fields, ensure_ascii=False).encode()
        return hashlib.sha256(text + b"\0" + hashlib.sha256(self.image or b"").digest()).digest()


def parse_selection(value: str | None) -> list[str] | None:
    """`a,b,c` or `@file` (one id per line) -> list; None stays None."""
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not path.is_file():
            raise TrainDataError(f"selection file {path} not found")
        items = [line.strip() for line in path.read_text("utf-8").splitlines()]
    else:
        items = [v.strip() for v in value.split(",")]
    items = [v for v in items if v and not v.startswith("#")]
    if not items:
        raise TrainDataError(f"empty selection {value!r}")
    return items


def _image_bytes(cell: Any, base_dir: Path | None) -> bytes | None:
    """An image cell (datasets `Image(decode=False)` dict, bytes, or a path) -> encoded bytes."""
    if isinstance(cell, list):  # a list of images: the first one, as eval does
        cell = cell[0] if cell else None
    if isinstance(cell, dict):
        cell = cell.get("bytes") or cell.get("path")
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell) or None
    if isinstance(cell, str) and cell:
        p = Path(cell)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        try:
            return p.read_bytes()
        except OSError:
            return None
    return None


def _is_naming(row: dict[str, Any]) -> bool:
    """A non-blank `target` makes a naming row; options it may also carry are not used (the world's
    naming rows keep their family's classes, so they stay valid benchmark rows)."""
    return bool(cell_text(row.get("target")))


_OWN_COLUMNS = ("item_id", "question", "options", "answer", "target", "image")


def _meta(row: dict[str, Any]) -> dict[str, str]:
    """A row's other scalar columns, as text (bool as true/false)."""
    out = {}
    for k, v in row.items():
        if k in _OWN_COLUMNS or isinstance(v, (bytes, bytearray, dict, list)) or v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def _naming_example(row_no: int, row: dict[str, Any], image: bytes | None) -> TrainExample:
    item_id, question = cell_text(row.get("item_id")), cell_text(row.get("question"))
    if not item_id or not question:
        raise TrainDataError(f"row {row_no}: a naming row (with 'target') needs 'item_id' and 'question'")
    return TrainExample(item_id, question, image, target=cell_text(row["target"]),
                        group_id=cell_text(row.get("group_id")), variant=cell_text(row.get("variant")), meta=_meta(row))


def _truth(row: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """The optional ground-truth columns of a row (`aligned`, `core_mask`, `cue_mask`)."""
    aligned = row.get("aligned")
    return {"aligned": aligned if isinstance(aligned, bool) else None,
            "core_mask": _image_bytes(row.get("core_mask"), base_dir),
            "cue_mask": _image_bytes(row.get("cue_mask"), base_dir)}


def _long_rows(spec: TrainDataSpec) -> Iterator[tuple[int, TrainExample]]:
    import datasets

    dsd, base_dir = load_dataset_source(spec.source, spec.config, None)
    split = spec.split
    if split is None and hasattr(dsd, "keys") and "train" in dsd:
        split = "train"  # eval prefers test; training prefers train
    ds = pick_split(dsd, split, spec.source) if hasattr(dsd, "keys") else dsd
    for col, feat in (ds.features or {}).items():
        if isinstance(feat, datasets.Image):  # keep the encoded bytes; decode once to validate
            ds = ds.cast_column(col, datasets.Image(decode=False))
    cols = list(ds.column_names or next(iter(ds), {}).keys())
    if wide_image_columns(cols):  # the SpuriVerse release layout: choice items only
        yield from _wide_rows(spec)
        return
    row_no = 0
    for batch in ds.iter(batch_size=256):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys)):
            row = dict(zip(keys, values))
            image = _image_bytes(row.get("image"), base_dir)
            truth = _truth(row, base_dir)
            if "target" in row and _is_naming(row):
                yield row_no, replace(_naming_example(row_no, row, image), **truth)
            else:
                it = long_item(row_no, row)
                yield row_no, TrainExample(it.item_id, it.question, image, tuple(it.options), it.answer,
                                           group_id=it.group_id, variant=it.variant, meta=_meta(row),
                                           **truth)
            row_no += 1


def _wide_rows(spec: TrainDataSpec) -> Iterator[tuple[int, TrainExample]]:
    bench = load_benchmark(spec.source, spec.config, split=spec.split)
    for li in bench.iter_items(keep_pixels=False):
        it = li.item
        data = li.image.data if li.image is not None else None
        meta = _meta({**li.extras, **it.model_dump()})
        yield li.index, TrainExample(it.item_id, it.question, data, tuple(it.options), it.answer,
                                     group_id=it.group_id, variant=it.variant, meta=meta)


def split_names(source: str, config: str | None = None) -> list[str]:
    """The splits a source offers (a file source has one, "train")."""
    dsd, _ = load_dataset_source(source, config, None)
    return list(dsd.keys()) if hasattr(dsd, "keys") else []


def _selected(ex: TrainExample, spec: TrainDataSpec) -> bool:
    if spec.groups is not None and ex.group_id not in spec.groups:
        return False
    if spec.kinds is not None and ex.kind not in spec.kinds:
        return False
    return spec.variants is None or ex.variant in spec.variants


def _checked(spec: TrainDataSpec, seen: dict[str, str]) -> Iterator[TrainExample]:
    """The selected examples of one source, each validated (unique id, decodable image)."""
    for row_no, ex in _long_rows(spec):
        if not _selected(ex, spec):
            continue
        where = f"{spec.source}: row {row_no} (item_id={ex.item_id!r})"
        if ex.item_id in seen:
            raise TrainDataError(f"{where}: duplicate item_id (also in {seen[ex.item_id]})")
        seen[ex.item_id] = spec.source
        if ex.image is None:
            raise TrainDataError(f"{where}: image missing or unreadable")
        try:
            ImageInput.from_bytes(ex.image, keep_pixels=False)
        except ImageDecodeError as exc:
            raise TrainDataError(f"{where}: {exc}") from None
        yield ex


def load_examples(specs: Sequence[TrainDataSpec], *, role: str = "training") -> list[TrainExample]:
    """Read, validate and select every example of `specs` (in order). Raises `TrainDataError` /
    `BenchmarkError` naming the row on bad input; images are decoded once here to validate them."""
    out: list[TrainExample] = []
    seen: dict[str, str] = {}
    for spec in specs:
        bad = [v for v in spec.variants or [] if v not in VARIANTS]
        if bad:
            raise TrainDataError(f"unknown variant(s) {', '.join(bad)} (choose from {', '.join(VARIANTS)})")
        try:
            out.extend(_checked(spec, seen))
        except BenchmarkError as exc:  # a row the benchmark layout rejects (e.g. more options than letters)
            raise TrainDataError(f"{spec.source}: {exc}") from None
    if not out:
        sel = "" if all(s.groups is None and s.variants is None and s.kinds is None for s in specs) \
            else " after --groups/--variants/--kinds"
        raise TrainDataError(f"no {role} examples in {', '.join(s.source for s in specs)}{sel}")
    return out


def summarize(examples: Sequence[TrainExample]) -> DataSummary:
    """Counts and an order-independent fingerprint of the selected examples."""
    h = hashlib.sha256()
    for d in sorted(ex.digest() for ex in examples):
        h.update(d)
    n_naming = sum(ex.kind == "naming" for ex in examples)
    return DataSummary(fingerprint="sha256:" + h.hexdigest(), n_examples=len(examples),
                       n_choice=len(examples) - n_naming, n_naming=n_naming,
                       n_classes=len({ex.answer_text.strip().lower() for ex in examples}))


def check_trainable(summary: DataSummary, *, allow_single_class: bool = False) -> str | None:
    """A training set with one answer class (one option text / target for every example) teaches a
    constant: refused, or with `allow_single_class` a warning (returned). One answer *letter* is
    fine: options are shuffled per example and epoch, so the letters vary anyway."""
    if summary.n_classes >= 2:
        return None
    if allow_single_class:
        return ("warning: the training data has a single answer class (--allow-single-class): the model "
                "can learn a constant answer")
    raise TrainDataError(
        "the training data has a single answer class (every example's correct answer is the same text): "
        "a model trained on it learns a constant. Add examples of other answers, or pass "
        "--allow-single-class if that is really intended."
    )


__all__ = ["BenchmarkError", "TrainDataError", "TrainExample", "check_trainable", "load_examples",
           "parse_selection", "split_names", "summarize"]
