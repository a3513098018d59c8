"""Stage 3, review. `auto_accept` is the scripted mode (`spuriverse build review DIR --auto-accept`):
every judged-spurious candidate that has both scene descriptions and no decision yet is accepted,
appended to reviews.jsonl like a person's decision (reviewer "auto-accept"; the last decision wins).
The interactive review page is not built yet."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from spuriverse.build.candidates import JUDGMENTS, REVIEWS, latest
from spuriverse.build.jsonl import append_jsonl
from spuriverse.schema import Judgment, ReviewDecision

AUTO_REVIEWER = "auto-accept"


def auto_accept(build_dir: str | Path, reviewer: str = AUTO_REVIEWER) -> dict[str, int]:
    """Accept what a reviewer could only accept; leave everything else undecided. Resumable."""
    build_dir = Path(build_dir)
    decided = latest(build_dir / REVIEWS, ReviewDecision)
    counts = {"accepted": 0, "already_reviewed": 0, "not_spurious": 0, "no_descriptions": 0}
    for cid, j in sorted(latest(build_dir / JUDGMENTS, Judgment).items()):
        if cid in decided:
            counts["already_reviewed"] += 1
        elif j.spurious is not True:
            counts["not_spurious"] += 1
        elif not (j.positive.strip() and j.negative.strip()):
            counts["no_descriptions"] += 1  # nothing to synthesize from (e.g. ingested reference verdicts)
        else:
            append_jsonl(build_dir / REVIEWS, ReviewDecision(
                candidate_id=cid, decision="accept", reviewer=reviewer,
                timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds")))
            counts["accepted"] += 1
    return counts
