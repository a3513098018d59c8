"""Training methods of the `train` stage: ONE registry (`METHODS`), from which the CLI derives
`spuriverse train --method` and `compare-methods --methods`.

Every method trains on the option objective (the K option-letter logits at the answer position,
`spuriverse.train.batching.option_loss`), LoRA or full, and writes the same model folder: inference is
always the plain model.

- `erm`: plain empirical risk minimisation (the stage's default).
- `erm-meta`: ERM + the meta set (clean, factual F, counterfactual CF items) used directly as training
  data: the baseline that tells whether CLP's meta-learning adds anything beyond the extra data.
- `jtt`: Just Train Twice: an ERM model trained for `jtt_first_epochs` finds the training items it gets
  wrong (the error set); the final model trains on the data with the error set repeated `jtt_upweight` times.
- `groupdro`: Group DRO over (answer class x cue aligned/conflicting) groups, from the `aligned` column.
- `clp`: causal logit perturbation (arXiv 2505.15246), see `spuriverse.train.methods.clp`.

This module is import-light (no torch): the CLI reads it to build its choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from spuriverse.schema.train import TrainDataSpec


@dataclass(frozen=True)
class TrainingMethod:
    """One registry entry: what the method needs and where its trainer lives."""

    name: str
    summary: str
    trainer: str  # "module:Class" (a `MethodTrainer` subclass), imported when training starts
    needs_meta: bool = False
    needs_groups: bool = False
    same_options: bool = False  # every item must have the same number of options (K)
    distributed: bool = False  # may run under data parallel (several processes)
    two_stage: bool = False  # JTT: an identification model first

    def trainer_class(self) -> Any:
        module, name = self.trainer.split(":")
        return getattr(import_module(module), name)


_T = "spuriverse.train.methods.trainers"
METHODS: dict[str, TrainingMethod] = {m.name: m for m in (
    TrainingMethod("erm", "plain ERM on the option objective", f"{_T}:MethodTrainer", distributed=True),
    TrainingMethod("erm-meta", "ERM plus the meta set (clean, F, CF) as training data", f"{_T}:ErmMetaTrainer",
                   needs_meta=True),
    TrainingMethod("jtt", "Just Train Twice: upweight what a first ERM model gets wrong", f"{_T}:MethodTrainer",
                   two_stage=True),
    TrainingMethod("groupdro", "Group DRO over answer class x aligned/conflicting", f"{_T}:GroupDroTrainer",
                   needs_groups=True),
    TrainingMethod("clp", "causal logit perturbation: a meta-learned per-option logit offset in training",
                   "spuriverse.train.methods.clp_trainer:ClpTrainer", needs_meta=True, same_options=True),
)}


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> TrainingMethod:
    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r} (choose from {', '.join(METHODS)})")
    return METHODS[name]


@dataclass
class MethodOptions:
    """Every method hyper-parameter (each method reads its own; all are recorded in train.json)."""

    meta_data: TrainDataSpec | None = None
    meta_size: int = 48  # clean meta items, balanced over answer classes
    meta_fill: str = "tile"  # CF fill: grey | shuffle | tile
    meta_batch: int = 8  # clean items per meta step (+ as many F and CF items)
    meta_interval: int = 1  # a meta step every N optimizer steps
    clean_weight: float = 1.0
    factual_weight: float = 1.0
    counterfactual_weight: float = 1.0
    meta_lr: float = 1e-3  # Adam on the perturbation network (the paper's)
    meta_weight_decay: float = 1e-4
    virtual_lr: float | None = None  # the virtual SGD step; None: the training learning rate
    delta_bound: float = 2.0
    saliency_lambda: float = 0.5  # the paper's
    first_order: bool = False
    hidden: int = 100
    jtt_upweight: int = 10
    jtt_first_epochs: float = 1.0
    groupdro_step: float = 0.01


__all__ = ["METHODS", "MethodOptions", "TrainingMethod", "get_method", "method_names"]
