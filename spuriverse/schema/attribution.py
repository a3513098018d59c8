"""The attribution folder (`spuriverse diagnose attribution`): `attribution.json` (manifest), `rows.jsonl`
(one durable line per item and method), `sanity.jsonl` (model-randomisation check) and `summary.json`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spuriverse.schema.core import (
    SCHEMA_VERSION, BenchmarkInfo, HarnessInfo, MetricValue, ModelInfo, ModelOnBenchmark, Strategy, StrictModel, Variant,
)

Target = Literal["predicted", "answer", "contrast"]
Space = Literal["pixels", "embedding", "image", "vision"]
Baseline = Literal["black", "blurred", "mean"]
Pointing = Literal["core", "cue", "both", "none"]


class AttributionConfig(ModelOnBenchmark):
    """What defines an attribution run: resume only continues a folder whose config matches exactly
    (the item selection may grow: selected items already done are skipped)."""

    strategy: Strategy = "direct"
    methods: list[str]
    input: Literal["pixels", "embedding"] = Field(description="input space of the gradient methods")
    target: Target
    raw_logits: bool = Field(description="attribute raw letter logits (not shift-invariant) instead of the "
                             "log-softmax over the option letters")
    baseline: Baseline = Field(description="reference image of IG, occlusion and deletion/insertion")
    ig_steps: int = Field(ge=1)
    smooth_samples: int = Field(ge=1)
    smooth_noise: float = Field(gt=0)
    occlusion_patch: int | None = Field(None, description="pixels; null: 1/8 of the image's shorter side")
    metrics: list[str]
    robustness_samples: int = Field(ge=1)
    core_mask_column: str
    cue_mask_column: str
    seed: int = 0


class AttributionManifest(StrictModel):
    schema_version: str = SCHEMA_VERSION
    created: str
    config: AttributionConfig
    model: ModelInfo
    benchmark: BenchmarkInfo
    invariance: str = Field(description="how the attributed score reacts to a shift of every logit by t(x)")
    baseline_description: str
    harness: HarnessInfo
    packages: dict[str, str] = Field(default_factory=dict)


class AttributionRow(StrictModel):
    """One line of `rows.jsonl`: one item attributed by one method. Masses and pointing use the map's
    absolute values; areas are the masks' shares of the image (a uniform map's mass)."""

    index: int = Field(ge=0, description="position of the item in the benchmark")
    item_id: str
    group_id: str
    variant: Variant
    method: str
    space: Space
    target: Target
    raw_logits: bool
    answer: str
    prediction: str
    correct: bool
    logprobs: dict[str, float] = Field(description="log-softmax over the option letters (as `eval` scores them)")
    target_weights: dict[str, float] = Field(description="the attributed score: sum of weight x letter score")
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    map_file: str = Field(description="the map on the original image raster (.npz, array `map`), relative path")
    map_sum: float
    map_abs_sum: float
    score: float | None = Field(None, description="IG: the score at the image")
    score_baseline: float | None = Field(None, description="IG: the score at the baseline")
    ig_delta: float | None = Field(None, description="IG: sum of attributions - (score - score_baseline)")
    core_mass: float | None = None
    cue_mass: float | None = None
    core_area: float | None = None
    cue_area: float | None = None
    pointing: Pointing | None = None
    deletion_auc: float | None = None
    insertion_auc: float | None = None
    infidelity: float | None = None
    sensitivity_max: float | None = None
    seconds: float = Field(ge=0, description="this item's share of the method's batch time")


class SanityRow(StrictModel):
    """Model-randomisation check: the map of the same item and method after every weight is redrawn."""

    item_id: str
    method: str
    spearman: float | None = Field(description="rank correlation with the trained model's map (null: a constant map)")
    randomisation: str
    seed: int


class AttributionSummaryRow(StrictModel):
    method: str
    slice: str = Field(description="all | variant:<v> | group:<id> | correct | wrong")
    n_items: int
    metrics: dict[str, MetricValue]


class AttributionSummary(StrictModel):
    """`summary.json`: per method and slice the mean of every score with a 95 % group-bootstrap interval."""

    schema_version: str = SCHEMA_VERSION
    config: AttributionConfig
    invariance: str
    n_items: int
    rows: list[AttributionSummaryRow]
    agreement: dict[str, MetricValue] = Field(description="method pair 'a|b': mean Spearman between their maps")
    sanity: dict[str, MetricValue] = Field(description="method: mean Spearman, trained vs randomised weights")
    bootstrap_iterations: int
