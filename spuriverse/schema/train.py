"""The training stage's file format: `train.json`, the manifest of a fine-tuned model folder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spuriverse.schema.core import SCHEMA_VERSION, HarnessInfo, Strategy, StrictModel

Method = Literal["lora", "full"]
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


class TrainConfig(StrictModel):
    """What defines a training run: a re-run with the same `--out` resumes only an identical config."""

    model: str = Field(description="--model as given (alias, hub id or folder)")
    checkpoint: str = Field(description="what was loaded (hub id or folder)")
    revision: str | None = None
    train_data: list[TrainDataSpec]
    val_data: list[TrainDataSpec] = Field(default_factory=list)
    train_fingerprint: str
    val_fingerprint: str | None = None
    method: Method
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
    resumed_from: list[str] = Field(default_factory=list, description="checkpoints this run resumed from")
    wall_time_s: float = Field(0.0, ge=0, description="summed over all invocations")
    harness: HarnessInfo
    packages: dict[str, str]
