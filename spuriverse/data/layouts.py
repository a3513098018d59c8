"""Row layouts: the native *long* layout (one row per image) and the SpuriVerse *wide* release
layout (one row per correlation: anchor image + `spurious_group_1..N`), both turned into `Item`s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spuriverse.schema import LETTERS, MAX_OPTIONS, Item

LONG_REQUIRED = ("item_id", "group_id", "variant", "question", "answer")
WIDE_REQUIRED = ("image_id", "benchmark", "image")
_WIDE_IMAGE = re.compile(r"^spurious_group_(\d+)$")


class BenchmarkError(ValueError):
    """A benchmark row (or the whole source) is malformed; the message names the row and field."""


def is_blank(v: Any) -> bool:
    """An empty table cell: None, NaN (pandas' blank) or only whitespace."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def cell_text(v: Any) -> str:
    """A table cell as stripped text ("" for a blank one; 3.0 read from a CSV is "3")."""
    if is_blank(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def long_features():
    """The `datasets` Features of the native long layout: every Item field (strings; `options` a list)
    plus `image` as an `Image()` feature, in schema order. Writers use this so the image type
    survives parquet (`Dataset.from_list(rows, features=long_features()).to_parquet(...)`)."""
    from datasets import Features, Image, List, Value

    feats = {name: List(Value("string")) if name == "options" else Value("string") for name in Item.model_fields}
    feats["image"] = Image()
    return Features(feats)


def options_from_row(row: dict[str, Any]) -> list[str] | None:
    """Options from an `options` list column, or from letter columns A..F (blank cells dropped,
    so a 2-option item never shows "(C) nan")."""
    if "options" in row and row["options"] is not None:
        opts = row["options"]
        if isinstance(opts, str):
            raise BenchmarkError("field 'options' must be a list of strings, got a string")
        return [cell_text(o) if not isinstance(o, str) else o for o in opts]
    cols = [c for c in LETTERS[:MAX_OPTIONS] if c in row]
    if not cols:
        return None
    opts = [cell_text(row[c]) for c in cols]
    while opts and not opts[-1]:
        opts.pop()
    return opts


def _pydantic_msg(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e["loc"]) or "row"
        parts.append(f"field '{field}': {e['msg']}")
    return "; ".join(parts)


def make_item(row_no: int, fields: dict[str, Any], where: str = "") -> Item:
    try:
        return Item(**fields)
    except ValidationError as exc:
        ident = fields.get("item_id") or "?"
        raise BenchmarkError(f"row {row_no} (item_id={ident!r}{where}): {_pydantic_msg(exc)}") from None


def long_item(row_no: int, row: dict[str, Any]) -> Item:
    """Validate one long-layout row (without its image) into an Item."""
    missing = [c for c in LONG_REQUIRED if c not in row]
    if missing:
        raise BenchmarkError(f"row {row_no}: missing field(s) {', '.join(missing)}")
    try:
        options = options_from_row(row)
    except BenchmarkError as exc:
        raise BenchmarkError(f"row {row_no} (item_id={row.get('item_id')!r}): {exc}") from None
    if options is None:
        raise BenchmarkError(f"row {row_no}: no 'options' list and no option columns A..F")
    fields: dict[str, Any] = {k: cell_text(row.get(k)) for k in Item.model_fields if k != "options"}
    fields["options"] = options
    return make_item(row_no, fields)


# --------------------------------------------------------------------------------------------
# Wide layout


def wide_image_columns(columns: list[str]) -> list[str]:
    """`spurious_group_1..N` in numeric order."""
    found = [(int(m.group(1)), c) for c in columns if (m := _WIDE_IMAGE.match(c))]
    return [c for _, c in sorted(found)]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass
class SideTable:
    """Question / options / answer for wide rows that lack them, keyed by (benchmark, question id).

    Built from the reference's meta CSVs (one file per benchmark, key column `index`) or any table
    with a `benchmark` column. A key may map to several questions (A-OKVQA keys by COCO image id and
    516 images carry two questions): the wide row's own `question` then picks one, else it is an
    error — never a silent first match.
    """

    rows: dict[tuple[str, str], list[dict[str, Any]]]

    @classmethod
    def from_files(cls, specs: list[str]) -> SideTable:
        """`specs`: "NAME=path.csv" (a per-benchmark file) or "path" (a table with a benchmark column)."""
        import pandas as pd

        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for spec in specs:
            name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
            p = Path(path)
            if not p.exists():
                raise BenchmarkError(f"side table {path!r} not found")
            reader = pd.read_parquet if p.suffix == ".parquet" else pd.read_csv
            kw = {} if p.suffix == ".parquet" else {"dtype": str, "keep_default_na": False}
            df = reader(p, **kw)
            key_col = next((c for c in ("question_id", "index", "image_id", "id") if c in df.columns), None)
            if key_col is None:
                raise BenchmarkError(f"side table {path!r} has no key column (question_id/index/image_id)")
            if not name and "benchmark" not in df.columns:
                raise BenchmarkError(f"side table {path!r} has no 'benchmark' column; pass it as NAME={path}")
            for rec in df.to_dict("records"):
                bench = _norm(name or cell_text(rec["benchmark"]))
                rows.setdefault((bench, cell_text(rec[key_col])), []).append(rec)
        return cls(rows)

    def lookup(self, benchmark: str, key: str, question: str | None, where: str) -> dict[str, Any]:
        cands = self.rows.get((_norm(benchmark), key), [])
        if question:
            cands = [r for r in cands if cell_text(r.get("question")) == question.strip()] or cands
        if not cands:
            raise BenchmarkError(f"{where}: no side-table row for ({benchmark!r}, {key!r})")
        if len(cands) > 1:
            qs = "; ".join(repr(cell_text(r.get("question"))) for r in cands[:3])
            raise BenchmarkError(
                f"{where}: ({benchmark!r}, {key!r}) matches {len(cands)} questions ({qs}); "
                "add a 'question' or 'question_id' column to disambiguate"
            )
        return cands[0]


@dataclass(frozen=True)
class WideItem:
    item: Item
    image_column: str


def wide_items(row_no: int, row: dict[str, Any], image_cols: list[str], side: SideTable | None) -> Iterator[WideItem]:
    """Expand one wide row into its anchor item and one spurious item per column of `image_cols`
    (the `spurious_group_k` columns that hold an image in this row; their cells need not be read)."""
    missing = [c for c in WIDE_REQUIRED if c not in row and c != "image"]
    if missing:
        raise BenchmarkError(f"row {row_no}: missing field(s) {', '.join(missing)}")
    bench = cell_text(row["benchmark"])
    qid = cell_text(row.get("question_id")) or cell_text(row["image_id"])
    where = f"row {row_no} ({bench}/{qid})"
    if not bench or not qid:
        raise BenchmarkError(f"row {row_no}: field 'benchmark'/'image_id' is empty")
    meta: dict[str, Any] = row
    if is_blank(row.get("question")) or options_from_row(row) in (None, []) or is_blank(row.get("answer")):
        if side is None:
            raise BenchmarkError(
                f"{where}: no question/options/answer in the row; pass a side table "
                "(e.g. --side-table aokvqa=aokvqa_train_meta.csv)"
            )
        meta = side.lookup(bench, qid, cell_text(row.get("question")) or None, where)
    options = options_from_row(meta) or []
    group = f"{bench}/{qid}"
    common = {
        "group_id": group,
        "question": cell_text(meta.get("question")),
        "options": options,
        "answer": cell_text(meta.get("answer")),
        "source_benchmark": bench,
        "source_id": qid,
        "spurious_attribute": cell_text(row.get("spurious_attribute") or meta.get("spurious_attribute")),
        "core_attribute": cell_text(row.get("core_attribute") or meta.get("core_attribute")),
        "category": cell_text(row.get("category") or meta.get("category")),
    }
    yield WideItem(make_item(row_no, {"item_id": f"{group}/anchor", "variant": "anchor", **common}, f", {bench}"), "image")
    for col in image_cols:
        match = _WIDE_IMAGE.match(col)
        assert match is not None  # image_cols are the columns this pattern found
        k = match.group(1)
        item = make_item(row_no, {"item_id": f"{group}/spurious_{k}", "variant": "spurious", **common})
        yield WideItem(item, col)
