"""Curation folder as the mine/judge/review stages write them (errors, judgments, reviews, anchors)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from spuriverse.persist import append_jsonl
from spuriverse.schema import ErrorRecord, Judgment, ReviewDecision, ReviewEdits

CUES = [("bags beside the man", "a man waiting at a curb with bags", "a man waiting at a curb"),
        ("snow on the ground", "a dog on a snowy street", "a dog on a dry street"),
        ("a tennis racket", "a woman holding a tennis racket in a park", "a woman in a park")]


def anchor_png(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> None:
    im = Image.new("RGB", size, (40 + 30 * seed % 200, 90, 140))
    ImageDraw.Draw(im).ellipse([8 + seed, 8, 40, 40], fill=(220, 200, 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def make_curation_dir(root: Path, n: int = 2, decisions: list[str] | None = None, mask_box=(0.5, 0.25, 1.0, 0.75)) -> Path:
    """`n` candidates, each with an error, a judgment (with a cue box) and a review decision
    (default: all accepted; the first one edited by the reviewer)."""
    decisions = decisions or ["accept"] * n
    for i in range(n):
        cid = f"aokvqa-{1000 + i}"
        image = f"anchors/{cid}.png"
        anchor_png(root / image, i)
        cue, pos, neg = CUES[i % len(CUES)]
        append_jsonl(root / "errors.jsonl", ErrorRecord(
            candidate_id=cid, source="aokvqa", question_id=str(1000 + i), question=f"What is happening {i}?",
            options=["waiting", "running", "eating", "sleeping"], answer="A", prediction="B", raw="(B) running",
            image=image))
        append_jsonl(root / "judgments.jsonl", Judgment(
            candidate_id=cid, judge="fake-judge", prompt_hash="h", spurious=True, rationale="cue",
            core_attributes=["the person"], spurious_attributes=[cue], positive=pos, negative=neg, mask_box=mask_box))
        edits = ReviewEdits(positive=pos + ", photo") if i == 0 else ReviewEdits()
        append_jsonl(root / "reviews.jsonl", ReviewDecision(
            candidate_id=cid, decision=decisions[i], edits=edits, reviewer="test", timestamp="2026-11-22T00:00:00Z"))
    return root
