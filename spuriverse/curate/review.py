"""Stage 3, review: a person (the review page, `spuriverse curate review DIR`) or a script
(`--auto-accept`) decides which judged candidates enter the benchmark. Every decision is one
ReviewDecision appended to reviews.jsonl; the last one per candidate wins.

`decide` is what the review page's POST does: the person's values for the editable fields are
compared with the judgment and only the changed ones are kept as ReviewEdits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spuriverse.data.curation import JUDGMENTS, REVIEWS, latest
from spuriverse.persist import append_jsonl
from spuriverse.schema import Judgment, ReviewDecision, ReviewEdits
from spuriverse.locking import locks_folder
from spuriverse.provenance import now_iso

AUTO_REVIEWER = "auto-accept"
EDITABLE = ("core_attributes", "spurious_attributes", "positive", "negative")


def clean_list(values: list[str]) -> list[str]:
    """Attributes as a person typed them: stripped, blanks and repeats dropped, order kept."""
    out: list[str] = []
    for v in values:
        v = " ".join(v.split())
        if v and v not in out:
            out.append(v)
    return out


def edits_vs(judgment: Judgment, values: dict, previous: ReviewEdits | None = None) -> ReviewEdits:
    """ReviewEdits with only the editable fields whose value differs from the judgment's (a field
    left out of `values`, or None, is unchanged). An earlier edit the page cannot make (mask_box)
    is carried over."""
    changed = {k: v for k, v in values.items() if k in EDITABLE and v is not None and not _same(v, getattr(judgment, k))}
    if previous is not None and previous.mask_box is not None:
        changed["mask_box"] = previous.mask_box
    return ReviewEdits(**changed)


def _same(value: Any, judged: Any) -> bool:
    """Equal up to what a text field cannot show (surrounding / repeated white space, blank items)."""
    if isinstance(judged, list):
        return clean_list(value) == clean_list(judged)
    return " ".join(value.split()) == " ".join(judged.split())


def effective(judgment: Judgment, edits: ReviewEdits | None) -> dict[str, Any]:
    """The editable fields as the reviewer left them: the judgment with the edits applied."""
    out = {}
    for k in (*EDITABLE, "mask_box"):
        edited = getattr(edits, k) if edits is not None else None
        out[k] = edited if edited is not None else getattr(judgment, k)
    return out


# a decision waits briefly for another writer (a second review page, a scripted review)
@locks_folder("curation_dir", stage="curate review", wait=10.0)
def decide(curation_dir: str | Path, judgment: Judgment, decision: str, values: dict, reviewer: str,
           previous: ReviewDecision | None = None) -> ReviewDecision:
    """Append one decision durably (fsynced before returning); the caller serializes calls."""
    record = ReviewDecision(candidate_id=judgment.candidate_id, decision=decision, reviewer=reviewer,
                            edits=edits_vs(judgment, values, previous.edits if previous else None),
                            timestamp=now_iso())
    append_jsonl(Path(curation_dir) / REVIEWS, record)
    return record


@locks_folder("curation_dir", stage="curate review")
def auto_accept(curation_dir: str | Path, reviewer: str = AUTO_REVIEWER) -> dict[str, int]:
    """Accept what a reviewer could only accept (every judged-spurious candidate that has both
    scene descriptions and no decision yet); leave everything else undecided. Resumable."""
    curation_dir = Path(curation_dir)
    decided = latest(curation_dir / REVIEWS, ReviewDecision)
    counts = {"accepted": 0, "already_reviewed": 0, "not_spurious": 0, "no_descriptions": 0}
    for cid, j in sorted(latest(curation_dir / JUDGMENTS, Judgment).items()):
        if cid in decided:
            counts["already_reviewed"] += 1
        elif j.spurious is not True:
            counts["not_spurious"] += 1
        elif not (j.positive.strip() and j.negative.strip()):
            counts["no_descriptions"] += 1  # nothing to synthesize from (e.g. ingested reference verdicts)
        else:
            append_jsonl(curation_dir / REVIEWS, ReviewDecision(
                candidate_id=cid, decision="accept", reviewer=reviewer, timestamp=now_iso()))
            counts["accepted"] += 1
    return counts
