"""The curation folder (`spuriverse curate ...`) and image provenance.

```
<build-dir>/
  errors.jsonl       mine:   ErrorRecord, one per wrong answer
  source.json        mine:   SourceSpec, the source benchmark and its column mapping
  judgments.jsonl    judge:  Judgment, one per error and judge run (the last line per candidate wins)
  reviews.jsonl      review: ReviewDecision, append-only (last decision per candidate wins)
  images/<candidate>/{spurious,counter}/<k>.png + <k>.json (SynthProvenance)
  verification.jsonl verify: Verification, one per candidate (gap per model, kept?)
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from spuriverse.schema.core import LETTERS, MAX_OPTIONS, MIN_OPTIONS, StrictModel

__all__ = ["CANDIDATE_ID", "Box", "Candidate", "ColumnMapping", "ErrorRecord", "JudgeOutput", "Judgment", "ModelGap",
           "ReviewDecision", "ReviewEdits", "SourceSpec", "SynthProvenance", "Verification"]

# A candidate id is a folder name under images/: safe by construction.
CANDIDATE_ID = r"^[a-z0-9][a-z0-9._-]{0,119}$"
Box = tuple[float, float, float, float]


def _check_box(box: Box | None) -> Box | None:
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError("box must be (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return box


class ColumnMapping(StrictModel):
    """How a source VQA benchmark's columns become an item (`curate mine --source`, publish's controls).

    Options come from the list column `options` when the row has it, else from `option_columns` in
    order (blank trailing cells dropped). `answer` is read per `answer_format`: a letter, a 0-based
    index into the options, or the option text itself; `auto` decides per row (a letter A-F, else an
    integer, else an exact option text). `image` is an `Image()` cell, raw bytes or a path; relative
    paths are resolved under `image_root` (default: the source's folder).
    """

    question_id: str = "question_id"
    question: str = "question"
    options: str | None = "options"
    option_columns: list[str] = Field(default_factory=lambda: list(LETTERS))
    answer: str = "answer"
    answer_format: Literal["auto", "letter", "index", "text"] = "auto"
    image: str = "image"
    image_root: str | None = None
    category: str | None = "category"


class SourceSpec(StrictModel):
    """`source.json`: which benchmark a curation folder was mined from, so later stages (publish's
    control items) can read the same items again."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="source name in candidate ids")
    dataset: str = Field(description="hub id, local dataset folder, or a CSV/JSONL/parquet file")
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    mapping: ColumnMapping = Field(default_factory=ColumnMapping)
    preset: str | None = None
    model: str | None = Field(None, description="the mined model (None when predictions were ingested)")
    fingerprint: str | None = None


class ErrorRecord(StrictModel):
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


class JudgeOutput(StrictModel):
    """What the judge must answer (its JSON Schema is the structured-output `response_format`)."""

    spurious: bool = Field(description="is the wrong answer primarily caused by a spurious cue in the image?")
    rationale: str = Field(description="one or two sentences: why")
    core_attributes: list[str] = Field(description="what in the image actually answers the question")
    spurious_attributes: list[str] = Field(max_length=2, description="the top-2 spurious cues (empty if none)")
    positive: str = Field(description="one-line scene: the same answer, with the spurious cue present")
    negative: str = Field(description="one-line scene: the same scene without the spurious cue")


class Judgment(StrictModel):
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
    attempts: int = Field(0, ge=0, description="requests made for this verdict (0: ingested)")
    usage: dict[str, int] | None = Field(None, description="tokens, summed over attempts")

    _box = field_validator("mask_box")(_check_box)


class ReviewEdits(StrictModel):
    positive: str | None = None
    negative: str | None = None
    spurious_attributes: list[str] | None = None
    core_attributes: list[str] | None = None
    mask_box: Box | None = None

    _box = field_validator("mask_box")(_check_box)


class ReviewDecision(StrictModel):
    """`reviews.jsonl`: one human (or --auto-accept) decision; the last one per candidate wins."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    decision: Literal["accept", "reject", "skip"]
    edits: ReviewEdits = Field(default_factory=ReviewEdits)
    reviewer: str = ""
    timestamp: str


class Candidate(StrictModel):
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


class SynthProvenance(StrictModel):
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


class ModelGap(StrictModel):
    """One verifying model on one candidate: accuracy without vs with the cue."""

    model: str
    n_spurious: int = Field(ge=0, description="cue-present images answered (failures excluded)")
    n_counter: int = Field(ge=0, description="cue-absent images answered (failures excluded)")
    failed: int = Field(0, ge=0, description="images whose request failed (recorded, never scored)")
    acc_spurious: float | None = None
    acc_counter: float | None = None
    gap: float | None = Field(None, description="acc_counter - acc_spurious")
    ci_low: float | None = None
    ci_high: float | None = None
    passes: bool = Field(description="gap > threshold")


class Verification(StrictModel):
    """`verification.jsonl`: one line per candidate; the threshold, policy and models are recorded."""

    candidate_id: str = Field(pattern=CANDIDATE_ID)
    threshold: float
    policy: Literal["any", "all"]
    models: list[str]
    confidence: float = 0.95
    n_bootstrap: int
    seed: int
    per_model: list[ModelGap]
    kept: bool
