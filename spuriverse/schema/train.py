"""The training stage's file format: `train.json`, the manifest of a fine-tuned model folder."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from spuriverse.schema.core import SCHEMA_VERSION, HarnessInfo, Strategy, StrictModel

Tuning = Literal["lora", "full"]
Objective = Literal["option", "completion"]
LoraTarget = Literal["language", "vision", "both"]
TrainStatus = Literal["running", "complete"]


class TrainDataSpec(StrictModel):
    """One data source as given on the command line, and what was selected from it."""

    source: str
    split: str | None = None
    config: str | None = None
    groups: list[str] | None = Field(None, description="only items of these group ids (None: all)")
    variants: list[str] | None = Field(None, description="only items of these variants (None: all)")
    kinds: list[Literal["choice", "naming"]] | None = Field(
        None, description="only these row kinds: choice (multiple choice), naming (open-ended; None: both)")


class DataSummary(StrictModel):
    fingerprint: str = Field(description="sha256 over the selected examples (ids, text, answers, image bytes)")
    n_examples: int
    n_choice: int = Field(description="multiple-choice examples")
    n_naming: int = Field(description="open-ended examples with a free-text target")
    n_classes: int = Field(description="distinct correct answers (option text or target)")


class LoraSettings(StrictModel):
    r: int = Field(ge=1)
    alpha: float = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)
    target: LoraTarget
    target_modules: str = Field(description="the regex peft matched (full module names)")


class MetaSettings(StrictModel):
    """The meta set: a small class-balanced clean set plus its factual (F) and counterfactual (CF) versions."""

    data: TrainDataSpec = Field(description="where the meta items come from")
    size: int = Field(ge=1, description="clean items, balanced over answer classes")
    fill: Literal["grey", "shuffle", "tile"] = Field(description="how CF images remove the object")
    batch: int = Field(ge=1, description="clean items per meta batch (each brings its F and CF version)")
    interval: int = Field(ge=1, description="a meta step every N optimizer steps")
    clean_weight: float = Field(ge=0)
    factual_weight: float = Field(ge=0)
    counterfactual_weight: float = Field(ge=0, description="weight of -log(1 - p_y) on CF items")
    fingerprint: str = Field(description="sha256 over the clean, F and CF items")
    n_clean: int = Field(ge=0)
    n_factual: int = Field(ge=0)
    n_counterfactual: int = Field(ge=0)
    factual_from: str = Field(description="masks (background swap) or counter (the benchmark's counter images)")


class ClpSettings(StrictModel):
    meta_lr: float = Field(gt=0, description="Adam learning rate of the perturbation network")
    meta_weight_decay: float = Field(ge=0)
    virtual_lr: float = Field(gt=0, description="SGD step size of the virtual step")
    delta_bound: float = Field(gt=0, description="|delta| <= bound per option before centring")
    saliency_lambda: float = Field(ge=0, description="weight of the background input-gradient penalty")
    first_order: bool = Field(description="meta-gradient from a Jacobian-vector product (no graph through the step)")
    hidden: int = Field(ge=1, description="width of the perturbation network's two hidden layers")
    n_options: int = Field(ge=2, description="K: options per item (the network's output size)")


class JttSettings(StrictModel):
    upweight: int = Field(ge=1, description="error-set items appear this many times in the second stage")
    first_epochs: float = Field(gt=0, description="epochs of the first-stage (identification) ERM model")


class GroupDroSettings(StrictModel):
    step_size: float = Field(gt=0, description="exponentiated-gradient step size of the group weights")
    groups: list[str] = Field(description="the groups: answer class x aligned/conflicting")


class TrainConfig(StrictModel):
    """What defines a training run: a re-run with the same `--out` resumes only an identical config."""

    model: str = Field(description="--model as given (alias, hub id or folder)")
    checkpoint: str = Field(description="what was loaded (hub id or folder)")
    revision: str | None = None
    train_data: list[TrainDataSpec]
    val_data: list[TrainDataSpec] = Field(default_factory=list)
    train_fingerprint: str
    val_fingerprint: str | None = None
    tuning: Tuning = Field(description="which weights train: LoRA adapters or every weight (--lora / --full)")
    method: str = Field("erm", description="the training method (`spuriverse train --method`)")
    meta: MetaSettings | None = Field(None, description="the meta set (erm-meta, clp)")
    clp: ClpSettings | None = None
    jtt: JttSettings | None = None
    groupdro: GroupDroSettings | None = None
    lora: LoraSettings | None = None
    objective: Objective
    strategy: Strategy = "direct"
    vocab_weight: float = Field(0.0, ge=0, description="weight of the full-vocabulary CE added to the option loss")
    epochs: float = Field(gt=0)
    max_steps: int | None = None
    learning_rate: float = Field(gt=0)
    lr_scheduler: str
    warmup: float = Field(ge=0, description="a ratio of the training steps if < 1, else a number of steps")
    weight_decay: float = Field(ge=0)
    max_grad_norm: float = Field(ge=0)
    batch_size: int = Field(ge=1, description="per-device batch size")
    grad_accum: int = Field(ge=1)
    global_batch_size: int = Field(ge=1, description="batch_size x grad_accum x processes")
    seed: int
    dtype: str = Field(description="weights dtype")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="mixed precision of the forward/backward")
    gradient_checkpointing: bool = False
    save_steps: int | None = Field(None, description="checkpoint (and validate) every N steps; None: per epoch")
    merge: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy_method(cls, data: Any) -> Any:
        """Manifests written before training methods existed said `method: lora|full`."""
        if isinstance(data, dict) and data.get("method") in ("lora", "full") and "tuning" not in data:
            data = {**data, "tuning": data["method"], "method": "erm"}
        return data


class EpochRecord(StrictModel):
    epoch: int = Field(ge=1)
    train_loss: float | None = Field(description="mean training loss over the epoch's optimizer steps")
    steps: int = Field(ge=0)


class EvalRecord(StrictModel):
    step: int = Field(ge=0)
    epoch: float
    val_loss: float | None = None
    val_accuracy: float | None = Field(description="option-objective accuracy on the validation split")
    n: int = Field(ge=0)


class TrainManifest(StrictModel):
    """`train.json` in a trained model folder: written when training starts (status running) and
    completed at the end. `spuriverse eval --model DIR` loads the folder; this file says how it was made."""

    schema_version: str = SCHEMA_VERSION
    status: TrainStatus
    created: str
    finished: str | None = None
    config: TrainConfig
    train: DataSummary
    val: DataSummary | None = None
    output: Literal["adapter", "merged", "full"]
    base_model: str = Field(description="checkpoint the adapter applies to (hub id or absolute folder)")
    base_revision: str | None = Field(None, description="hub commit of the base, when known")
    trainable_params: int = Field(ge=0)
    total_params: int = Field(ge=0)
    processes: int = Field(1, ge=1)
    device: str
    epochs: list[EpochRecord] = Field(default_factory=list)
    evals: list[EvalRecord] = Field(default_factory=list)
    best_step: int | None = None
    best_val_accuracy: float | None = None
    global_steps: int = 0
    method_summary: dict[str, float | int | str] = Field(
        default_factory=dict, description="what the training method measured (JTT error set, final group weights...)")
    resumed_from: list[str] = Field(default_factory=list, description="checkpoints this run resumed from")
    weights_sha256: str | None = Field(default=None, description="sha256 over the trained weight files (the adapter's, or "
                                       "the full model's), written when the run completes")
    wall_time_s: float = Field(0.0, ge=0, description="summed over all invocations")
    harness: HarnessInfo
    packages: dict[str, str]


class Interval(StrictModel):
    """A mean over seeds with its Student-t interval (None for fewer than two seeds)."""

    mean: float
    low: float | None = None
    high: float | None = None
    n: int = Field(ge=1, description="seeds")


class RunScores(StrictModel):
    """One trained run of `compare-methods` scored on the held-out test items."""

    method: str
    seed: int
    run: str = Field(description="the run's folder, relative to the comparison folder")
    accuracy: float
    worst_group_accuracy: float
    worst_group: str
    conflicting_accuracy: float | None = Field(description="items whose cue suggests another answer")
    aligned_accuracy: float | None = None
    group_accuracy: dict[str, float]
    n_items: int
    n_failed: int = Field(ge=0, description="items the scorer could not score (counted wrong)")
    wall_time_s: float
    steps: int


class MethodRow(StrictModel):
    method: str
    seeds: list[int]
    accuracy: Interval
    worst_group_accuracy: Interval
    conflicting_accuracy: Interval | None = None
    wall_time_s: Interval


class MethodComparison(StrictModel):
    """`compare.json` of `spuriverse train compare-methods`."""

    schema_version: str = SCHEMA_VERSION
    created: str
    base_model: str
    train_data: list[TrainDataSpec]
    test_data: TrainDataSpec
    test_fingerprint: str
    n_test: int
    group_definition: str
    group_sizes: dict[str, int]
    interval: str = Field(description="how the intervals are made")
    settings: dict[str, Any] = Field(description="the shared training settings and every method's hyper-parameters")
    runs: list[RunScores]
    methods: list[MethodRow]
