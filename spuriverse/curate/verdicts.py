"""Stage 2 of curation from precomputed verdicts: ingest the reference's judge answers.

The reference meta CSVs hold GPT-4o's answer to "is the error primarily caused by a spurious
correlation?" in the ``spuriousAttr`` column (it must begin "Yes"/"No"). `ingest_verdicts` joins
each verdict to ``errors.jsonl`` by the same candidate id as `mine_predictions` (same preset, same
item key) and appends one `Judgment` per judged error to ``judgments.jsonl``:

- ``spurious`` = the text (stripped) starts with "yes", case-insensitive;
- ``rationale`` = the whole text; ``prompt_hash = "reference"``; attributes and descriptions empty
  (the reference CSVs do not hold them).

Rows with a verdict that are not errors in ``errors.jsonl`` are counted (``skipped_not_error``);
errors without a verdict get no judgment line. Resumable: candidate ids already in
``judgments.jsonl`` are not appended again.
"""

from __future__ import annotations

from pathlib import Path

from spuriverse.curate.mine import ERRORS, iter_rows, row_item
from spuriverse.curate.presets import prediction_layout
from spuriverse.data.curation import JUDGMENTS, read_jsonl
from spuriverse.persist import append_jsonl
from spuriverse.schema import ErrorRecord, Judgment

__all__ = ["JUDGMENTS", "ingest_verdicts", "is_yes"]


def is_yes(text: str) -> bool:
    return text.strip().lower().startswith("yes")


def ingest_verdicts(verdict_file: Path, preset: str, out_dir: Path, *, judge: str = "reference:gpt-4o",
                    source_name: str | None = None) -> dict:
    """Append the verdicts of `verdict_file` for the errors in ``out_dir/errors.jsonl``.

    Returns counts over the whole file (idempotent across re-runs): ``judged`` (verdicts joined to
    an error), ``spurious`` (of those, "yes"), ``skipped_not_error`` (verdicts on rows that are not
    errors), ``errors_without_verdict``, ``appended`` (lines written by this call) and
    ``already_judged`` (joined verdicts already in ``judgments.jsonl``).
    """
    p = prediction_layout(preset)
    source = source_name or preset
    out_dir = Path(out_dir)
    errors = {r.candidate_id for r in read_jsonl(out_dir / ERRORS, ErrorRecord) if r.source == source}
    path = out_dir / JUDGMENTS
    done = {j.candidate_id for j in read_jsonl(path, Judgment)}
    counts = dict(judged=0, spurious=0, skipped_not_error=0, errors_without_verdict=0, appended=0,
                  already_judged=0)
    matched: set[str] = set()
    for layout, row in iter_rows(Path(verdict_file), p):
        if layout.verdict_column is None:
            raise ValueError(f"{verdict_file}: no verdict column {p.verdict!r}")
        text = row[layout.verdict_column] or ""
        if not text.strip():
            continue
        item = row_item(layout, row, source)
        if item is None or item.candidate_id not in errors:
            counts["skipped_not_error"] += 1
            continue
        cid = item.candidate_id
        if cid in matched:  # the same item twice in the verdict file: the first verdict counts
            continue
        matched.add(cid)
        spurious = is_yes(text)
        counts["judged"] += 1
        counts["spurious"] += spurious
        if cid in done:
            counts["already_judged"] += 1
            continue
        append_jsonl(path, Judgment(candidate_id=cid, judge=judge, prompt_hash="reference",
                                    spurious=spurious, rationale=text))
        done.add(cid)
        counts["appended"] += 1
    counts["errors_without_verdict"] = len(errors - matched)
    return counts
