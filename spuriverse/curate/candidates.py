"""Accepted candidates: an error, its latest judgment, and the latest review decision (accept),
with the reviewer's edits applied. What synthesis and verification work on."""

from __future__ import annotations

from pathlib import Path

from spuriverse.curate.jsonl import CurationFileError, read_jsonl
from spuriverse.schema import Candidate, ErrorRecord, Judgment, ReviewDecision

# The curation folder's stage files (one definition; the stages import these names).
ERRORS, JUDGMENTS, REVIEWS = "errors.jsonl", "judgments.jsonl", "reviews.jsonl"


def latest(path: Path, model) -> dict:
    """The last record per candidate id (append-only files: the last one wins)."""
    return {r.candidate_id: r for r in read_jsonl(path, model)}


def accepted_candidates(curation_dir: str | Path) -> list[Candidate]:
    curation_dir = Path(curation_dir)
    errors = latest(curation_dir / ERRORS, ErrorRecord)
    judgments = latest(curation_dir / JUDGMENTS, Judgment)
    out = []
    for cid, review in sorted(latest(curation_dir / REVIEWS, ReviewDecision).items()):
        if review.decision != "accept":
            continue
        if cid not in errors or cid not in judgments:
            raise CurationFileError(f"{curation_dir / REVIEWS}: accepted candidate {cid!r} has no error or judgment record")
        e, j, edits = errors[cid], judgments[cid], review.edits
        out.append(Candidate(
            candidate_id=cid, source=e.source, question_id=e.question_id, question=e.question, options=e.options,
            answer=e.answer, anchor_image=e.image,
            core_attributes=edits.core_attributes if edits.core_attributes is not None else j.core_attributes,
            spurious_attributes=(edits.spurious_attributes if edits.spurious_attributes is not None
                                 else j.spurious_attributes),
            positive=edits.positive if edits.positive is not None else j.positive,
            negative=edits.negative if edits.negative is not None else j.negative,
            mask_box=edits.mask_box if edits.mask_box is not None else j.mask_box,
        ))
    return out
