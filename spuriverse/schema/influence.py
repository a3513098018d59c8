"""`spuriverse diagnose influence` file formats: the manifest (`influence.json`), one record per
query (`queries.jsonl`), one row per training example (`self_influence.jsonl`) and the summary
(`summary.json`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spuriverse.schema.core import SCHEMA_VERSION, HarnessInfo, MetricValue, StrictModel
from spuriverse.schema.train import TrainDataSpec

Measurement = Literal["contrast", "loss"]
InfluenceStatus = Literal["running", "complete"]


class InfluenceConfig(StrictModel):
    """What defines a diagnosis: a re-run into the same folder resumes only an identical config."""

    train_run: str = Field(description="the training run folder (absolute), with its train.json")
    train_fingerprint: str = Field(description="the run's training data (verified against train.json)")
    model: str = Field(description="the model diagnosed: the run's weights folder, or --model")
    weights_sha256: str | None = Field(default=None, description="digest of the diagnosed weights (train.json's when recorded)")
    queries: list[TrainDataSpec]
    items: list[str] | None = Field(default=None, description="--items: only these query ids")
    query_fingerprint: str = Field(description="sha256 over the selected query items")
    method: str
    measurement: Measurement
    top_k: int = Field(ge=1)
    damping: float | None = Field(default=None, description="curvature damping; null: the method's default")
    cue_column: str = Field(description="the metadata column naming each example's spurious cue")
    track: str | None = Field(default=None, description="--track: a regex restricting the tracked modules")
    batch_size: int = Field(ge=1)
    query_batch_size: int = Field(ge=1, description="queries scored per pass over the training data")
    seed: int = 0


class InfluenceManifest(StrictModel):
    schema_version: str = SCHEMA_VERSION
    status: InfluenceStatus
    created: str
    finished: str | None = None
    config: InfluenceConfig
    sign_convention: str
    n_train: int = Field(ge=0)
    n_queries: int = Field(ge=0)
    tracked_modules: int = Field(0, ge=0, description="linear modules influence is computed over")
    tracked_params: int = Field(0, ge=0)
    excluded_modules: list[str] = Field(default_factory=list,
                                        description="trainable modules without a gradient (off the loss's path)")
    fit_s: float = Field(0.0, ge=0, description="seconds spent fitting (summed over invocations)")
    score_s: float = Field(0.0, ge=0)
    self_s: float = Field(0.0, ge=0)
    harness: HarnessInfo
    packages: dict[str, str]


class Influential(StrictModel):
    """One training example's influence on a query."""

    train_id: str
    score: float = Field(description="see the manifest's sign_convention: > 0 pushed toward the measured answer")
    has_cue: bool | None = Field(default=None, description="carries the query's cue (null: the query has none)")


class SupportRatio(StrictModel):
    """Share of the top-k supporting examples that carry the query's cue, with a Wilson 95 % interval."""

    value: float
    ci_low: float
    ci_high: float
    k: int = Field(ge=1, description="supporting examples counted (positive scores, at most top_k)")
    n_cue: int = Field(ge=0)
    base_rate: float = Field(description="share of all training examples that carry the cue")


class QueryInfluence(StrictModel):
    item_id: str
    group_id: str = ""
    variant: str = ""
    answer: str
    predicted: str = Field(description="the model's letter (argmax over the option letters)")
    measured: str = Field(description="the letter the measurement is about: predicted if wrong, else the strongest wrong one")
    probs: dict[str, float]
    measurement: float = Field(description="f at the trained weights")
    cue: str | None = Field(default=None, description="the query's spurious cue (from --cue-column); null: none")
    supporting: list[Influential] = Field(description="highest scores first (> 0 only)")
    opposing: list[Influential] = Field(description="lowest scores first (< 0 only)")
    spurious_support: SupportRatio | None = None


class SelfInfluenceRow(StrictModel):
    train_id: str
    kind: Literal["choice", "naming"]
    self_influence: float = Field(description="grad loss . (H + damping)^-1 . grad loss >= 0")
    loss: float = Field(description="the training objective on this example at the trained weights")
    cue: str | None = None
    group_id: str = ""
    variant: str = ""


class SupportGroup(StrictModel):
    group_id: str
    n_queries: int = Field(ge=0, description="queries of the group with a cue and a supporting example")
    n_answered_wrong: int = Field(ge=0)
    ratio: MetricValue = Field(description="mean spurious-support ratio over the group's queries (bootstrap over queries)")
    base_rate: float | None = None


class InfluenceSummary(StrictModel):
    schema_version: str = SCHEMA_VERSION
    method: str
    measurement: Measurement
    top_k: int
    overall: MetricValue = Field(description="mean ratio over queries with a cue (bootstrap over groups; over "
                                             "queries when they all belong to one group)")
    overall_wrong: MetricValue = Field(description="the same over queries the model answered wrong")
    base_rate: MetricValue = Field(description="mean base rate of the queries' cues (same queries as overall)")
    groups: list[SupportGroup]
    n_bootstrap: int
    seed: int
