"""The builder folder (`spuriverse build ...`) and image provenance.

```
<build-dir>/
  errors.jsonl       mine:   ErrorRecord, one per wrong answer
  judgments.jsonl    judge:  Judgment, one per error
  reviews.jsonl      review: ReviewDecision, append-only (last decision per candidate wins)
  images/<candidate>/{spurious,counter}/<k>.png + <k>.json (SynthProvenance)
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from spuriverse.schema.core import MAX_OPTIONS, MIN_OPTIONS, _Strict

__all__ = ["CANDIDATE_ID", "Box", "Candidate", "ErrorRecord", "Judgment", "ReviewDecision", "ReviewEdits",
           "SynthProvenance"]

# A candidate id is a folder name under images/: safe by construction.
CANDIDATE_ID = r"^[a-z0-9][a-z0-9._-]{0,119}$"
Box = tuple[float, float, float, float]


def _check_box(box: Box | None) -> Box | None:
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError("box must be (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return box


class ErrorRecord(_Strict):
    """`errors.jsonl`: a wrong answer of the mined model, keyed by (source, question id)."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    source: str
    question_id: str
    question: str
    options: list[str] = Field(min_length=MIN_OPTIONS, max_length=MAX_OPTIONS)
    answer: str
    prediction: str | None
    raw: str | None = None
    image: str | None = Field(None, description="anchor image path, relative to the build folder")
    category: str = ""


class Judgment(_Strict):
    """`judgments.jsonl`: the judge's verdict on one error."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    judge: str
    prompt_hash: str
    spurious: bool | None = Field(description="is the error caused by a spurious cue? null when the judge failed")
    rationale: str = ""
    core_attributes: list[str] = Field(default_factory=list)
    spurious_attributes: list[str] = Field(default_factory=list, max_length=2)
    positive: str = Field("", description="scene with the cue, answer unchanged")
    negative: str = Field("", description="the same scene without the cue")
    mask_box: Box | None = Field(None, description="where the cue is in the anchor (fractions of width/height)")
    error: str | None = None

    _box = field_validator("mask_box")(_check_box)


class ReviewEdits(_Strict):
    positive: str | None = None
    negative: str | None = None
    spurious_attributes: list[str] | None = None
    core_attributes: list[str] | None = None
    mask_box: Box | None = None

    _box = field_validator("mask_box")(_check_box)


class ReviewDecision(_Strict):
    """`reviews.jsonl`: one human (or --auto-accept) decision; the last one per candidate wins."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    decision: Literal["accept", "reject", "skip"]
    edits: ReviewEdits = Field(default_factory=ReviewEdits)
    reviewer: str = ""
    timestamp: str


class Candidate(_Strict):
    """An accepted correlation ready for synthesis: error + judgment + review edits applied."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    source: str
    question_id: str
    question: str
    options: list[str]
    answer: str
    anchor_image: str | None = None
    core_attributes: list[str] = Field(default_factory=list)
    spurious_attributes: list[str] = Field(default_factory=list)
    positive: str
    negative: str
    mask_box: Box | None = None


class SynthProvenance(_Strict):
    """`images/<candidate>/<variant>/<k>.json`: exactly how the pixels beside it were made."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    variant: Literal["spurious", "counter"]
    k: int = Field(ge=0)
    status: Literal["ok", "refused", "failed"]
    message: str | None = None
    backend: str
    model_id: str
    model_revision: str | None = None
    prompt: str
    negative_prompt: str | None = None
    seed: int
    width: int
    height: int
    steps: int
    guidance: float
    strength: float | None = None
    source_image_sha256: str | None = None
    mask_sha256: str | None = None
    mask_box: Box | None = None
    safety_checker: str
    image_file: str | None = Field(None, description="the PNG beside this file; null when refused/failed")
    image_sha256: str | None = None
    extra: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    created: str
