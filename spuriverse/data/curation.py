"""The curation folder's stage files, read by the stages that come after the one writing them.

Lives in the data layer because two sibling stages read it (`curate` verify/publish and `synth`),
and siblings never import each other. Every file is JSONL written through `spuriverse.persist`
(durable appends); readers skip a trailing partial line (the next append repairs it), and a
malformed line anywhere else is a `CurationFileError` naming the file and line.

Accepted candidates: an error, its latest judgment, and the latest review decision (accept), with
the reviewer's edits applied. What synthesis and verification work on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from spuriverse import persist
from spuriverse.persist import JsonlFileError
from spuriverse.schema import Candidate, ErrorRecord, Judgment, ReviewDecision

__all__ = ["ERRORS", "JUDGMENTS", "REVIEWS", "CurationFileError", "accepted_candidates", "latest", "read_jsonl"]

# The curation folder's stage files (one definition; the stages import these names).
ERRORS, JUDGMENTS, REVIEWS = "errors.jsonl", "judgments.jsonl", "reviews.jsonl"

M = TypeVar("M", bound=BaseModel)
# The per-candidate records of the append-only stage files.
R = TypeVar("R", ErrorRecord, Judgment, ReviewDecision)


class CurationFileError(JsonlFileError):
    """A curation file holds a malformed line (or contradicts another stage's file)."""


def read_jsonl(path: Path, model: type[M]) -> Iterator[M]:
    """Validated records of a curation JSONL file (missing file = none)."""
    return persist.read_jsonl(path, model, error=CurationFileError)


def latest(path: Path, model: type[R]) -> dict[str, R]:
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
