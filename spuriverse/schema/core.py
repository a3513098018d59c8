"""Core file formats: benchmark items, samples, runs (spuriverse.schema re-exports everything)."""

from __future__ import annotations

import math
import string
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SCHEMA_VERSION = "1.0"

LETTERS = string.ascii_uppercase[:6]  # options are labelled (A)..(F)
MIN_OPTIONS, MAX_OPTIONS = 2, 6

Variant = Literal["anchor", "spurious", "counter", "control"]
VARIANTS: tuple[str, ...] = ("anchor", "spurious", "counter", "control")
ParseStatus = Literal["logprob", "strict", "heuristic", "option_text", "unparsed"]
# A prompt strategy's name. Which names exist is the strategy registry's business
# (spuriverse.eval.prompts.STRATEGIES: built in direct, cot, spurious_aware), checked where a strategy is
# used (a run renders its template; the leaderboard refuses a run whose strategy it does not know).
Strategy = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Scoring = Literal["logprob", "generate"]
ErrorType = Literal["image", "model", "api", "input"]
Quantization = Literal["4bit", "8bit"]


class StrictModel(BaseModel):
    """The base of every file format: unknown fields and non-finite numbers are errors (NaN is not JSON)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def config_diffs(old: BaseModel, new: BaseModel) -> list[str]:
    """"field: old -> new" for every field in which two configs of one class differ (the message a
    stage gives when a re-run into the same folder has another configuration)."""
    return [f"{k}: {getattr(old, k)!r} -> {getattr(new, k)!r}"
            for k in type(new).model_fields if getattr(old, k) != getattr(new, k)]


def letters_for(n_options: int) -> tuple[str, ...]:
    """The valid answer letters for an item with `n_options` options."""
    return tuple(LETTERS[:n_options])


class Item(StrictModel):
    """One benchmark question on one image (the native *long* layout, minus the image)."""

    item_id: str = Field(min_length=1)
    group_id: str = Field(min_length=1)
    variant: Variant
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=MIN_OPTIONS, max_length=MAX_OPTIONS)
    answer: str
    source_benchmark: str = ""
    source_id: str = ""
    spurious_attribute: str = ""
    core_attribute: str = ""
    category: str = ""

    @field_validator("options")
    @classmethod
    def _options_non_empty(cls, v: list[str]) -> list[str]:
        for i, o in enumerate(v):
            if not isinstance(o, str) or not o.strip():
                raise ValueError(f"option {LETTERS[i]} is empty")
        return v

    @field_validator("answer")
    @classmethod
    def _answer_is_valid_letter(cls, v: str, info: ValidationInfo) -> str:
        options = info.data.get("options")
        if options is not None and v not in letters_for(len(options)):
            raise ValueError(f"answer {v!r} is not one of {', '.join(letters_for(len(options)))}")
        return v


class Sample(StrictModel):
    """One line of `samples.jsonl`: one finished (item, rotation) with its outcome."""

    index: int = Field(ge=0, description="position of the item in the benchmark")
    item_id: str
    rotation: int | None = Field(None, description="CircularEval rotation (options shifted by this)")
    group_id: str
    variant: Variant
    source_benchmark: str = ""
    category: str = ""
    spurious_attribute: str = ""
    n_options: int = Field(ge=MIN_OPTIONS, le=MAX_OPTIONS)
    answer: str = Field(description="correct letter as asked (after rotation)")
    prediction: str | None = Field(description="predicted letter, or null (failed / unparsed)")
    correct: bool
    parse_status: ParseStatus | None = Field(description="null when the sample failed")
    error: str | None = None
    error_type: ErrorType | None = None
    raw: str | None = Field(None, description="the model's raw text (generation), if any")
    logprobs: dict[str, float] | None = None
    scoring: Scoring
    prompt_hash: str
    attempts: int = 1
    latency_s: float | None = None
    usage: dict[str, int] | None = None
    timestamp: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Sample:
        if self.error is not None and (self.prediction is not None or self.correct):
            raise ValueError("a failed sample cannot carry a prediction or be correct")
        if self.correct and self.prediction != self.answer:
            raise ValueError("correct is true but prediction != answer")
        if self.error is None and self.parse_status is None:
            raise ValueError("a sample without error needs a parse_status")
        if self.logprobs is not None:
            for k, v in self.logprobs.items():
                if not math.isfinite(v):
                    raise ValueError(f"log-prob of {k} is not finite")
        return self


class ModelOnBenchmark(StrictModel):
    """The model and benchmark a run's config names (shared by eval runs and attribution runs)."""

    model: str
    backend: str
    checkpoint: str
    revision: str | None = None
    dataset: str
    config: str | None = None
    split: str | None = None
    dataset_revision: str | None = None
    fingerprint: str


class RunConfig(ModelOnBenchmark):
    """What defines a run: resume only continues a folder whose config matches exactly."""

    strategy: Strategy
    scoring: Scoring
    circular: bool = False
    blind: bool = False
    seed: int = 0
    prompt_hash: str
    parser_version: str
    max_new_tokens: int
    preset: str | None = Field(None, description="generation preset (e.g. paper: --paper-settings); null: greedy defaults")
    quantization: Quantization | None = Field(None, description="weights loaded 4- or 8-bit (GPU only); null: full precision")


class MetricValue(StrictModel):
    value: float | None = Field(description="null when no item contributes")
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = Field(0, description="number of items (or groups, for group-level metrics)")


class GroupRow(StrictModel):
    group_id: str
    source_benchmark: str = ""
    spurious_attribute: str = ""
    n_items: int
    acc: float | None = Field(description="accuracy over anchor + spurious items")
    anchor_correct: bool | None = None
    spurious_acc: float | None = None
    counter_acc: float | None = None
    consistent: bool | None = Field(
        description="anchor and every spurious item right; null when the group has no scored anchor or spurious item"
    )
    n_failed: int = 0
    n_unparsed: int = 0


class BenchmarkInfo(StrictModel):
    source: str
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    layout: Literal["long", "wide"] = "long"
    fingerprint: str
    n_items: int
    n_groups: int
    counts: dict[str, int] = Field(description="items per variant")


class ModelInfo(StrictModel):
    alias: str
    backend: str
    checkpoint: str
    revision: str | None = None
    dtype: str | None = None
    device: str | None = None
    provider: str | None = Field(None, description="API models: the provider profile the requests were shaped by")
    quantization: Quantization | None = Field(None, description="local models loaded 4- or 8-bit (bitsandbytes)")
    blind: bool = False
    note: str | None = Field(None, description="shown in reports, e.g. that the weights are random")


class GenerationInfo(StrictModel):
    """How answers were generated: what the model (or endpoint) was actually sent."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = Field(0.0, description="null: not sent (the provider's default applies)")
    top_p: float | None = None
    min_p: float | None = None
    seed: int | None = Field(None, description="sampling seed sent to the model or endpoint; null: none")
    reasoning_effort: str | None = None
    preset: str | None = Field(None, description="named generation preset, e.g. paper (--paper-settings)")
    top_logprobs: int | None = None


class HarnessInfo(StrictModel):
    version: str
    git_commit: str | None = None
    dirty: bool | None = None


class FailureCounts(StrictModel):
    n_samples: int
    n_failed: int
    n_unparsed: int
    failed_rate: float
    unparsed_rate: float
    by_type: dict[str, int] = Field(default_factory=dict)
    n_missing: int = Field(
        0, description="benchmark items with no sample (partial run), incl. incomplete CircularEval items"
    )


class BootstrapInfo(StrictModel):
    iterations: int = Field(ge=0)
    seed: int
    level: float = Field(gt=0, lt=1)
    unit: Literal["group"] = Field(
        "group", description="whole groups are resampled; control items are resampled as their own clusters"
    )


class RunManifest(StrictModel):
    """`run.json`: written when a run starts. Resume checks `config`; `spuriverse score` reads the
    rest, so results can be rebuilt from `samples.jsonl` + this file alone."""

    schema_version: str = SCHEMA_VERSION
    created: str
    config: RunConfig
    benchmark: BenchmarkInfo
    model: ModelInfo
    generation: GenerationInfo
    harness: HarnessInfo
    packages: dict[str, str]
    limit: int | None = Field(None, description="--limit of the latest invocation (items asked)")


class RunResult(StrictModel):
    """`results.json`: everything needed to cite, reproduce and re-score one run."""

    schema_version: str = SCHEMA_VERSION
    created: str
    benchmark: BenchmarkInfo
    model: ModelInfo
    generation: GenerationInfo
    strategy: Strategy
    scoring: Scoring
    circular: bool = False
    seed: int = 0
    prompt_hash: str
    parser_version: str
    harness: HarnessInfo
    packages: dict[str, str]
    timings: dict[str, float]
    failures: FailureCounts
    failures_count_as_wrong: bool = True
    bootstrap: BootstrapInfo
    metrics: dict[str, MetricValue]
    breakdowns: dict[str, dict[str, MetricValue]] = Field(default_factory=dict)
    per_group: list[GroupRow]
    samples_file: str = "samples.jsonl"
    samples_sha256: str | None = None
