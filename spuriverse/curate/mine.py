"""Stage 1 of curation, ``mine``: wrong answers of a model, from precomputed predictions.

Input is a CSV with one row per question and the model's raw answer text (e.g. the reference's
``meta/*.csv`` with GPT-4o answers). Output, in the curation folder:

- ``errors.jsonl`` -- one `ErrorRecord` per wrong answer, appended and flushed one by one;
- ``mine_summary.json`` -- counts (`MineSummary`), written atomically at the end.

The CSV is streamed row by row (``csv`` module): memory does not grow with the file (only the set
of error ids already written does). Re-running on the same folder resumes: candidate ids already in
``errors.jsonl`` are skipped, and a partial last line left by a killed run is repaired by the next
append, so an interrupted run followed by a re-run gives the same file as one uninterrupted run.

Decisions
---------
- **Item key.** Every item is keyed by (source, question id); ``candidate_id`` is the slug
  ``f"{source}-{question_id}"`` (lowercase, `CANDIDATE_ID`). SEED-Bench and NaturalBench ``index``
  are unique question ids. The A-OKVQA ``index`` is the COCO *image* id: 516 images carry two
  questions, and keying by it (as the reference did) merges them. Its question id is therefore
  ``f"{image_id}-{sha1(question, options)[:8]}"``. The options are hashed with the question because
  5 images carry the *same* question twice with different option sets (e.g. image 270198, "What are
  the circular patterns on the ground?"): hashing the question alone would still merge those
  (17,051 keys for 17,056 rows); question + options gives 17,056 distinct keys.
- **Options.** A preset has a fixed set of option columns: NaturalBench reads only A/B (its items
  are all 2-option; C/D are empty padding, which the reference showed as "(C) nan (D) nan"),
  A-OKVQA and SEED-Bench read A-D. An empty cell among them keeps its letter: it stays a valid
  letter for the parser (never matched as text) and is written as the text ``"(empty)"`` in the
  `ErrorRecord` (which needs non-empty option texts), so the letters stay aligned with the answer.
  Such rows are kept and counted in ``rows_with_empty_options`` (A-OKVQA 6, SEED-Bench 230,
  NaturalBench 8 -- e.g. NaturalBench 3644/3645 have both cells empty, the options being written
  in the question). Only the generic preset (A-F or an ``options`` list of varying length) drops
  trailing empty options. Rows that cannot form an item (no question or id, fewer than 2 options,
  an answer that is not one of the option letters) are skipped and counted in ``invalid_rows``
  (none in the three reference CSVs).
- **Errors, our parser (default).** The raw prediction is parsed with `parse_answer`; an error is
  ``letter != answer``, and an unparsed answer is an error too (the model did not give the right
  answer), recorded with ``prediction=None``.
- **Errors, reference mode** (``use_reference_parsed=True``). The letter is the reference's
  ``parsed`` column and the error rule is the reference's own ``isError`` flag: ``parsed`` non-empty
  and ``!= answer``. The reference left its unanswered rows ("I don't know", ``parsed`` empty) out
  of its errors; this mode reproduces its counts exactly (2,263 / 3,568 / 1,425).
- **Agreement** with the reference's ``parsed`` column is always computed (whichever mode), with
  each side's own error rule: rows where the letters differ, errors by ours and by theirs, and the
  two set-difference sizes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spuriverse.curate.presets import PredictionLayout, prediction_layout
from spuriverse.data.curation import ERRORS, read_jsonl
from spuriverse.eval.parsing import parse_answer
from spuriverse.persist import append_jsonl, atomic_write_text
from spuriverse.schema import MAX_OPTIONS, MIN_OPTIONS, Agreement, ErrorRecord, MineSummary, letters_for

__all__ = ["ERRORS", "EMPTY_OPTION", "SUMMARY", "Agreement", "MineSummary", "candidate_id", "iter_rows",
           "mine_predictions", "row_item"]

SUMMARY = "mine_summary.json"
EMPTY_OPTION = "(empty)"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def candidate_id(source: str, question_id: str) -> str:
    """Safe, lowercase slug ``f"{source}-{question_id}"`` (a hash suffix keeps long ids unique)."""
    raw = f"{source}-{question_id}"
    slug = _UNSAFE.sub("-", raw.lower()).strip("-._")
    if len(slug) > 120 or not slug:
        slug = f"{slug[:111].rstrip('-._')}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}".lstrip("-._")
    return slug


@dataclass(frozen=True)
class _Item:
    question_id: str
    candidate_id: str
    options: list[str]  # as in the CSV ("" for an empty cell)
    category: str
    image: str | None


class _Layout:
    """A preset resolved against one CSV header."""

    def __init__(self, preset: PredictionLayout, header: list[str], source_file: Path) -> None:
        cols = set(header)
        self.preset = preset
        self.options_column = preset.options_column if preset.options_column in cols else None
        self.option_columns = [c for c in preset.option_columns if c in cols]
        need = {preset.question, preset.answer, preset.id_column, preset.prediction}
        missing = sorted(need - cols)
        if missing or not (self.options_column or self.option_columns):
            missing += [] if (self.options_column or self.option_columns) else ["options"]
            raise ValueError(f"{source_file}: missing column(s) {', '.join(missing)} (columns: {header})")
        self.image_column = preset.image_column if preset.image_column in cols else None
        self.category_column = preset.category_column if preset.category_column in cols else None
        self.parsed_column = preset.reference_parsed if preset.reference_parsed in cols else None
        self.verdict_column = preset.verdict if preset.verdict in cols else None

    def options(self, row: dict[str, str]) -> list[str]:
        if self.options_column:
            value = json.loads(row[self.options_column] or "[]")
            if not isinstance(value, list):
                raise ValueError("options must be a JSON list")
            opts = ["" if v is None else str(v) for v in value]
        else:
            opts = [row[c] or "" for c in self.option_columns]
        if self.preset.drop_trailing_empty:
            while opts and not opts[-1].strip():
                opts.pop()
        return opts


def row_item(layout: _Layout, row: dict[str, str], source: str) -> _Item | None:
    """The item of one CSV row, or None when the row cannot form a valid item."""
    p = layout.preset
    question = row[p.question] or ""
    try:
        options = layout.options(row)
    except (ValueError, json.JSONDecodeError):
        return None
    if not question.strip() or not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        return None
    if (row[p.answer] or "").strip() not in letters_for(len(options)):
        return None
    qid = (row[p.id_column] or "").strip()
    if not qid:
        return None
    if p.hash_question_id:
        digest = hashlib.sha1("\x1f".join([question, *options]).encode("utf-8")).hexdigest()[:8]
        qid = f"{qid}-{digest}"
    image = None
    if layout.image_column and row[layout.image_column]:
        image = row[layout.image_column]
    elif p.image_template:
        image = p.image_template.format(**row)
    category = (row[layout.category_column] or "") if layout.category_column else ""
    return _Item(qid, candidate_id(source, qid), options, category, image)


def iter_rows(source_file: Path, preset: PredictionLayout) -> Iterator[tuple[_Layout, dict[str, str]]]:
    """Yield (layout, row) streaming the CSV."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(source_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        layout = _Layout(preset, list(reader.fieldnames or []), source_file)
        for row in reader:
            yield layout, row


def _count_agreement(agreement: Agreement, ours: str | None, theirs: str | None, answer: str) -> None:
    """Tally one row's letter and error flag, ours (`parse_answer`) vs the reference's parsed column."""
    err_ours, err_theirs = ours != answer, theirs is not None and theirs != answer
    agreement.letter_disagreements += (ours or None) != theirs
    agreement.errors_ours += err_ours
    agreement.errors_reference += err_theirs
    agreement.errors_only_ours += err_ours and not err_theirs
    agreement.errors_only_reference += err_theirs and not err_ours


def mine_predictions(source_file: Path, preset: str, out_dir: Path, *, source_name: str | None = None,
                     use_reference_parsed: bool = False) -> MineSummary:
    """Mine the wrong answers of `source_file` into ``out_dir/errors.jsonl`` (resumable).

    `preset` names a source preset with a predictions layout (`spuriverse.curate.presets`); `source_name` (default: the preset name) is the benchmark
    name in the records and candidate ids. Returns the summary also written to
    ``out_dir/mine_summary.json``.
    """
    p = prediction_layout(preset)
    source = source_name or preset
    source_file, out_dir = Path(source_file), Path(out_dir)
    errors_path = out_dir / ERRORS
    existing = {r.candidate_id for r in read_jsonl(errors_path, ErrorRecord)}
    written: set[str] = set()
    summary = MineSummary(source=source, preset=preset, source_file=str(source_file),
                          use_reference_parsed=use_reference_parsed)
    rows_cat: Counter[str] = Counter()
    errors_cat: Counter[str] = Counter()
    agreement: Agreement | None = None
    layout = None
    for layout, row in iter_rows(source_file, p):
        summary.rows += 1
        item = row_item(layout, row, source)
        if item is None:
            summary.invalid_rows += 1
            continue
        rows_cat[item.category] += 1
        if any(not o.strip() for o in item.options):
            summary.rows_with_empty_options += 1
        answer = row[p.answer].strip()
        raw = row[p.prediction]
        ours = parse_answer(raw, item.options).letter
        if ours is None:
            summary.unparsed += 1
        err_ours = ours != answer
        theirs = None
        if layout.parsed_column:
            agreement = agreement or Agreement()
            theirs = (row[layout.parsed_column] or "").strip() or None
            _count_agreement(agreement, ours, theirs, answer)
        if use_reference_parsed:
            if not layout.parsed_column:
                raise ValueError(f"{source_file}: no reference column {p.reference_parsed!r} to use")
            letter, is_error = theirs, theirs is not None and theirs != answer
        else:
            letter, is_error = ours, err_ours
        if not is_error:
            continue
        summary.errors += 1
        summary.unparsed_errors += letter is None
        errors_cat[item.category] += 1
        cid = item.candidate_id
        if cid in written:
            summary.duplicate_ids += 1
            continue
        written.add(cid)
        if cid in existing:
            summary.already_present += 1
            continue
        append_jsonl(errors_path, ErrorRecord(
            candidate_id=cid, source=source, question_id=item.question_id, question=row[p.question],
            options=[o if o.strip() else EMPTY_OPTION for o in item.options], answer=answer,
            prediction=letter, raw=raw, image=item.image, category=item.category,
        ))
        summary.appended += 1
    if layout is None:  # empty file: still check the header
        with open(source_file, newline="", encoding="utf-8") as f:
            _Layout(p, next(csv.reader(f), []), source_file)
    summary.rows_per_category = dict(sorted(rows_cat.items()))
    summary.errors_per_category = dict(sorted(errors_cat.items()))
    summary.agreement = agreement
    atomic_write_text(out_dir / SUMMARY, summary.to_json())
    return summary
