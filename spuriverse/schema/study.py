"""The fine-tuning study's file formats: `DIR/plan.json` (what the study is and its cells),
`DIR/splits/seed-S.json` (the groups and held-out controls of one seed), `DIR/cells/.../cell.json`
(a finished cell) and `DIR/study.json` (the summary)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from spuriverse.schema.core import SCHEMA_VERSION, HarnessInfo, MetricValue, StrictModel
from spuriverse.schema.train import TrainDataSpec

DataType = Literal["anchor", "group", "non_spurious", "mixed"]
DATA_TYPES: tuple[str, ...] = ("anchor", "group", "non_spurious", "mixed")
AblationData = Literal["anchor", "group"]
CellKind = Literal["base", "data_type", "ablation"]
HeldOutSplit = Literal["anchor", "spurious", "counter", "control"]

# Fields of study.json that differ between an interrupted-and-resumed study and an uninterrupted one
# (clock times, durations, which checkpoint a resume started from, the code version that ran).
VOLATILE_FIELDS = ("created", "finished", "harness", "packages", "cells.*.train_wall_s", "cells.*.eval_wall_s",
                   "cells.*.resumed_from", "cells.*.finished")


class StudyDataSpec(StrictModel):
    """The benchmark as given on the command line."""

    source: str
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    side_tables: list[str] = Field(default_factory=list, description="question tables for wide-layout rows")
    controls: list[str] = Field(default_factory=list,
                                description="extra long-layout sources whose items join the control pool")


class StudyConfig(StrictModel):
    """What defines a study: a re-run in the same folder continues only an identical configuration."""

    model: str = Field(description="the base model (alias, hub id or folder)")
    model_revision: str | None = None
    data: StudyDataSpec
    seeds: list[int] = Field(min_length=1)
    data_types: list[DataType]
    ablation: list[str] = Field(description="ablation points as given (counts, or percentages of the training groups)")
    ablation_data: list[AblationData]
    test_fraction: float = Field(gt=0, lt=1)
    val_fraction: float = Field(ge=0, lt=1)
    non_spurious_scale: int = Field(ge=1, description="non-spurious items per training anchor, per source")
    control_scale: int = Field(ge=1, description="held-out control items per held-out anchor, per source")
    n_bootstrap: int = Field(ge=0)
    train: dict[str, Any] = Field(description="the training options every cell uses (as `spuriverse train` takes them)")


class SplitFile(StrictModel):
    """`splits/seed-S.json`: the groups (correlations) of one seed, and its held-out control sample.
    A function of the seed and the benchmark's groups alone."""

    schema_version: str = SCHEMA_VERSION
    seed: int
    test_fraction: float
    val_fraction: float
    train: list[str]
    validation: list[str]
    test: list[str]
    heldout_controls: list[str] = Field(description="item ids of the held-out control sample")
    validation_non_spurious: list[str] = Field(description="item ids: validation data of non_spurious / mixed cells")
    non_spurious: list[str] = Field(description="item ids: training data of non_spurious / mixed cells")
    ablation_order: list[str] = Field(description="train + validation groups in the order the ablation keeps them")


class CellPlan(StrictModel):
    """One cell of the grid: a base-model evaluation, or one training run and its evaluation."""

    index: int = Field(ge=0)
    name: str = Field(description="seed-S/<kind>, also the cell's folder under cells/")
    seed: int
    kind: CellKind
    data_type: DataType | None = None
    ablation_data: AblationData | None = None
    n_spurious: int | None = Field(None, description="ablation: training correlations kept as spurious data")
    train_data: list[TrainDataSpec] = Field(default_factory=list)
    val_data: list[TrainDataSpec] = Field(default_factory=list)
    n_train: int = Field(0, ge=0, description="training examples")
    n_val: int = Field(0, ge=0, description="validation examples")
    heldout: str = Field(description="the held-out dataset evaluated (a parquet file)")


class StudyPlan(StrictModel):
    """`plan.json`: written once the study's data and splits are prepared."""

    schema_version: str = SCHEMA_VERSION
    created: str
    config: StudyConfig
    benchmark_fingerprint: str = Field(description="of the benchmark as loaded (before the study's copy)")
    n_groups: int
    n_controls: int = Field(description="control items in the pool (after exclusions)")
    ablation_points: list[int] = Field(description="the ablation points resolved to counts")
    n_ablation_groups: int = Field(description="train + validation groups: the largest ablation point")
    cells: list[CellPlan]


class CellRecord(StrictModel):
    """`cell.json`: written when a cell has finished (its model trained and its evaluation scored)."""

    schema_version: str = SCHEMA_VERSION
    name: str
    finished: str
    train_wall_s: float | None = None
    eval_wall_s: float = 0.0
    global_steps: int | None = None
    best_val_accuracy: float | None = None
    resumed_from: list[str] = Field(default_factory=list)


class PairedGain(StrictModel):
    """The tuned model minus the base model on the same held-out items of one seed."""

    diff: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n_shared: int
    tuned_only: int = Field(description="items only the tuned model got right")
    base_only: int = Field(description="items only the base model got right")
    mcnemar_p: float | None = None


class CellResult(StrictModel):
    index: int
    name: str
    seed: int
    kind: CellKind
    data_type: DataType | None = None
    ablation_data: AblationData | None = None
    n_spurious: int | None = None
    n_train: int = 0
    global_steps: int | None = None
    best_val_accuracy: float | None = None
    eval_run: str = Field(description="the evaluation run folder, relative to the study folder")
    accuracy: dict[str, MetricValue] = Field(description="per held-out split (group-bootstrap interval of this seed)")
    vs_base: dict[str, PairedGain] = Field(default_factory=dict)
    train_wall_s: float | None = None
    eval_wall_s: float = 0.0
    resumed_from: list[str] = Field(default_factory=list)
    finished: str | None = None


class SeedStat(StrictModel):
    """A quantity over seeds: mean, Student-t interval (clipped to the quantity's possible range; null
    with one seed), sd and the values."""

    mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    sd: float | None = None
    values: list[float] = Field(default_factory=list, description="one per seed, in the order of `seeds`")


class SplitSummary(StrictModel):
    accuracy: SeedStat
    gain: SeedStat | None = Field(None, description="tuned minus base, per seed")
    gain_t_p: float | None = Field(None, description="paired t-test over seeds (H0: mean gain 0)")
    pooled_mcnemar_p: float | None = Field(None, description="McNemar on the discordant items of all seeds")


class RowSummary(StrictModel):
    """One row of the study table: the base model, a data type, or an ablation point."""

    label: str
    kind: CellKind
    data_type: DataType | None = None
    ablation_data: AblationData | None = None
    n_spurious: int | None = None
    n_seeds: int
    splits: dict[str, SplitSummary]


class StudyResult(StrictModel):
    """`study.json`: the whole study, every cell, and the summary over seeds."""

    schema_version: str = SCHEMA_VERSION
    created: str
    finished: str
    config: StudyConfig
    benchmark_fingerprint: str
    level: float = Field(gt=0, lt=1)
    splits: list[str] = Field(description="the held-out splits reported")
    table: list[RowSummary] = Field(description="the base model and each data type")
    ablation: list[RowSummary] = Field(default_factory=list)
    cells: list[CellResult]
    harness: HarnessInfo
    packages: dict[str, str]
