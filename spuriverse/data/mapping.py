"""Column mapping: one row of a *source* VQA benchmark (A-OKVQA, SEED-Bench, any table) -> an `Item`.

`load_benchmark(..., mapping=ColumnMapping(...), source_name=...)` sends every row through
`mapped_item` instead of the long/wide layout detection. Each row becomes a `control` item of its
own group: ``item_id = group_id = source_id =`` the row's question id, ``source_benchmark`` the
source name. The image cell (an ``Image()`` cell, raw bytes, or a path resolved under
``mapping.image_root``, default the source's folder) is read by the `Benchmark` like any other
image cell, one item at a time.

Options come from the list column ``mapping.options`` when the row has it (a JSON list string is
accepted too, for CSV files), else from ``mapping.option_columns`` in order: trailing blank cells
are dropped, a blank cell before a filled one is an error for that row. The answer is turned into a
letter per ``mapping.answer_format``:

- ``letter``: "A".."F" (case and surrounding parentheses ignored);
- ``index``: a 0-based integer index into the options;
- ``text``: the exact text of one option (surrounding spaces ignored);
- ``auto``: a letter, else an integer index, else an option text -- and an error when an integer
  answer is both a valid index and the text of a *different* option (e.g. options "1", "2", "3"
  and answer "2"): set ``answer_format`` explicitly for such sources.

A malformed row raises `BenchmarkError` naming the row, its question id and the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from spuriverse.data.layouts import BenchmarkError, cell_text, is_blank, make_item
from spuriverse.schema import LETTERS, MAX_OPTIONS, MIN_OPTIONS, ColumnMapping, Item

__all__ = ["MAPPING_FIELDS", "mapped_item", "parse_map_overrides"]

MAPPING_FIELDS = tuple(ColumnMapping.model_fields)
_INT = re.compile(r"^[+-]?\d+$")


def _row_error(row_no: int, qid: str, msg: str) -> BenchmarkError:
    ident = f" (question_id={qid!r})" if qid else ""
    return BenchmarkError(f"row {row_no}{ident}: {msg}")


def _options(row_no: int, qid: str, row: dict[str, Any], m: ColumnMapping) -> list[str]:
    if m.options and m.options in row and row[m.options] is not None:
        cell = row[m.options]
        if isinstance(cell, str):
            try:
                cell = json.loads(cell) if cell.strip() else []
            except json.JSONDecodeError:
                cell = None
            if not isinstance(cell, list):
                raise _row_error(row_no, qid, f"field {m.options!r} must be a list of strings (or a JSON list)")
        opts = [cell_text(o) for o in cell]
        where = f"field {m.options!r}"
    else:
        present = [c for c in m.option_columns if c in row]
        if not present:
            want = ([repr(m.options)] if m.options else []) + [repr(c) for c in m.option_columns]
            raise _row_error(row_no, qid, f"no options: none of the column(s) {', '.join(want)} in the row")
        opts = [cell_text(row[c]) for c in present]
        where = "option columns " + ", ".join(repr(c) for c in present)
    while opts and not opts[-1]:
        opts.pop()
    blank = [i for i, o in enumerate(opts) if not o]
    if blank:
        raise _row_error(row_no, qid, f"{where}: option {LETTERS[blank[0]] if blank[0] < len(LETTERS) else blank[0]} "
                         "is blank but a later option is not")
    if not MIN_OPTIONS <= len(opts) <= MAX_OPTIONS:
        raise _row_error(row_no, qid, f"{where}: {len(opts)} option(s), need {MIN_OPTIONS} to {MAX_OPTIONS}")
    return opts


def _as_index(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and _INT.match(v.strip()):
        return int(v.strip())
    return None


def _answer(row_no: int, qid: str, row: dict[str, Any], m: ColumnMapping, opts: list[str]) -> str:
    if m.answer not in row:
        raise _row_error(row_no, qid, f"missing field {m.answer!r} (answer)")
    raw = row[m.answer]
    if is_blank(raw):
        raise _row_error(row_no, qid, f"field {m.answer!r} (answer) is empty")
    letters = LETTERS[: len(opts)]
    text = cell_text(raw)
    fmt = m.answer_format

    def as_letter() -> str | None:
        t = text.strip("()").strip().upper()
        return t if len(t) == 1 and t in LETTERS else None

    def bad(expected: str) -> BenchmarkError:
        return _row_error(row_no, qid, f"field {m.answer!r} (answer, {fmt}): {text!r} is not {expected}")

    if fmt == "letter":
        letter = as_letter()
        if letter is None or letter not in letters:
            raise bad(f"one of {', '.join(letters)}")
        return letter
    if fmt == "index":
        i = _as_index(raw)
        if i is None or not 0 <= i < len(opts):
            raise bad(f"a 0-based index below {len(opts)}")
        return LETTERS[i]
    matches = [k for k, o in enumerate(opts) if o == text]
    if fmt == "text":
        if len(matches) != 1:
            raise bad("the text of exactly one option" if not matches else "unique (several options have that text)")
        return LETTERS[matches[0]]
    # auto: a letter, else an integer index, else an option text (an ambiguity is an error).
    letter = as_letter()
    i = _as_index(raw)
    if letter is not None and letter in letters:
        first, kind = letter, "letter"
    elif i is not None and 0 <= i < len(opts):
        first, kind = LETTERS[i], f"index {i}"
    else:
        first, kind = None, ""
    if first is not None:
        if len(matches) == 1 and LETTERS[matches[0]] != first:
            raise _row_error(row_no, qid, f"field {m.answer!r} (answer, auto): {text!r} is both {kind} ({first}) "
                             f"and the text of option {LETTERS[matches[0]]}; set answer_format explicitly")
        return first
    if len(matches) == 1:
        return LETTERS[matches[0]]
    raise bad(f"a letter {letters[0]}-{letters[-1]}, a 0-based index or the text of exactly one option")


def mapped_item(row_no: int, row: dict[str, Any], mapping: ColumnMapping, source_name: str) -> Item:
    """One raw source row (without its image) -> a `control` Item keyed by the row's question id."""
    m = mapping
    if m.question_id not in row:
        raise _row_error(row_no, "", f"missing field {m.question_id!r} (question id; columns: {', '.join(row)})")
    qid = cell_text(row[m.question_id])
    if not qid:
        raise _row_error(row_no, "", f"field {m.question_id!r} (question id) is empty")
    if m.question not in row:
        raise _row_error(row_no, qid, f"missing field {m.question!r} (question)")
    question = cell_text(row[m.question])
    if not question:
        raise _row_error(row_no, qid, f"field {m.question!r} (question) is empty")
    opts = _options(row_no, qid, row, m)
    answer = _answer(row_no, qid, row, m, opts)
    category = cell_text(row.get(m.category)) if m.category else ""
    return make_item(row_no, {
        "item_id": qid, "group_id": qid, "variant": "control", "question": question, "options": opts,
        "answer": answer, "source_benchmark": source_name, "source_id": qid, "category": category,
    })


def parse_map_overrides(spec: str | list[str] | None, base: ColumnMapping | None = None) -> ColumnMapping:
    """``"question=q,answer=label,option_columns=a|b|c"`` applied over `base` (default: the defaults).

    List fields (``option_columns``) take ``|``-separated names; ``none`` (or empty) clears an
    optional field (``options``, ``category``, ``image_root``). Unknown keys are an error listing
    the valid ones.
    """
    base = base or ColumnMapping()
    parts: list[str] = []
    for chunk in [spec] if isinstance(spec, str) else (spec or []):
        parts += [p for p in chunk.split(",") if p.strip()]
    updates: dict[str, Any] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ValueError(f"--map: {part!r} is not key=column (valid keys: {', '.join(MAPPING_FIELDS)})")
        if key not in MAPPING_FIELDS:
            raise ValueError(f"--map: unknown key {key!r} (valid keys: {', '.join(MAPPING_FIELDS)})")
        if key == "option_columns":
            updates[key] = [c.strip() for c in value.split("|") if c.strip()]
        elif key in ("options", "category", "image_root") and value.lower() in ("", "none"):
            updates[key] = None
        else:
            updates[key] = value
    try:
        return ColumnMapping.model_validate({**base.model_dump(), **updates})
    except Exception as exc:
        raise ValueError(f"--map: {exc}") from None
