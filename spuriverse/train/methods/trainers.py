"""Trainers of the training methods (subclasses of the stage's `SpuriTrainer`) and their collator.

A method's own state (group weights, the perturbation network and its optimizer, class statistics)
is saved beside the optimizer in every checkpoint (`spuriverse-method.pt`) and restored on resume,
so a resumed run continues exactly as the Trainer's own state does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from spuriverse.train.batching import Batcher, completion_loss, option_loss, option_logits
from spuriverse.train.data import TrainExample
from spuriverse.train.methods.meta import MetaSet, meta_objective
from spuriverse.train.trainer import SpuriTrainer

STATE_FILE = "spuriverse-method.pt"


def class_key(ex: TrainExample) -> str:
    return ex.answer_text.strip().lower()


def group_key(ex: TrainExample) -> str:
    """GroupDRO's / the comparison's group: answer class x cue aligned/conflicting."""
    return f"{class_key(ex)}/{'aligned' if ex.aligned else 'conflicting'}"


@dataclass
class MethodBatcher(Batcher):
    """`Batcher` plus what a method reads per example: `class_index`, `group` (both parts) and,
    for the saliency term, `background` (a 0/1 mask shaped like `pixel_values`)."""

    classes: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    saliency: bool = False

    def _extras(self, part: dict[str, Any], examples: Sequence[TrainExample]) -> dict[str, Any]:
        if self.classes:
            part["class_index"] = torch.tensor([self.classes.get(class_key(ex), -1) for ex in examples])
        if self.groups:
            part["group"] = torch.tensor([self.groups.get(group_key(ex), -1) for ex in examples])
        return part

    def choice_batch(self, examples: Sequence[TrainExample]) -> dict[str, Any]:
        part = self._extras(super().choice_batch(examples), examples)
        if self.saliency:
            from spuriverse.train.methods.saliency import background_masks

            part["background"] = background_masks(self.backend, examples, part["inputs"]["pixel_values"])
        return part

    def completion_batch(self, examples: Sequence[TrainExample]) -> dict[str, Any]:
        return self._extras(super().completion_batch(examples), examples)


def weighted(loss: torch.Tensor, part: dict[str, Any]) -> torch.Tensor:
    weight = part.get("weight")
    return loss if weight is None else loss * weight.to(loss.device, loss.dtype)


class MethodTrainer(SpuriTrainer):
    """ERM (and JTT's second stage, which only changes the data), with the method-state hooks."""

    def method_state(self) -> dict[str, Any]:
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore what `method_state` returned."""

    def method_summary(self) -> dict[str, float | int | str]:
        return {}

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        state = self.method_state()
        if state and self.args.should_save:
            torch.save(state, os.path.join(output_dir, STATE_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, STATE_FILE) if checkpoint else None
        if path and os.path.isfile(path):
            self.load_method_state(torch.load(path, map_location="cpu", weights_only=True))

    def per_example_losses(self, model: Any, inputs: dict[str, Any]) -> list[tuple[torch.Tensor, dict[str, Any]]]:
        """(weighted per-example loss, part) for each part of the batch (choice, naming)."""
        out = []
        if "choice" in inputs:
            loss, _ = option_loss(model, inputs["choice"], self.vocab_weight)
            out.append((weighted(loss, inputs["choice"]), inputs["choice"]))
        if "lm" in inputs:
            out.append((weighted(completion_loss(model, inputs["lm"]), inputs["lm"]), inputs["lm"]))
        return out


class MetaMixin:
    """What `erm-meta` and `clp` share: the meta set, its batches (on the model's device) and weights."""

    meta: MetaSet
    meta_batcher: Batcher
    meta_weights: dict[str, float]
    meta_batch_size: int
    meta_interval: int

    def setup_meta(self, meta: MetaSet, batcher: Batcher, weights: dict[str, float], batch: int, interval: int) -> None:
        self.meta, self.meta_batcher, self.meta_weights = meta, batcher, weights
        self.meta_batch_size, self.meta_interval = batch, interval

    def meta_due(self) -> bool:
        return self.state.global_step % self.meta_interval == 0  # type: ignore[attr-defined]

    def meta_parts(self) -> dict[str, dict[str, Any]]:
        items = self.meta.batch(self.args.seed, self.state.global_step, self.meta_batch_size)  # type: ignore[attr-defined]
        parts = {kind: self.meta_batcher.choice_batch(exs) for kind, exs in items.items()}
        return self._prepare_inputs(parts)  # type: ignore[attr-defined]


class ErmMetaTrainer(MetaMixin, MethodTrainer):
    """ERM loss + (every `meta_interval` steps) the meta objective on a meta batch, at the same weights."""

    def __init__(self, *args: Any, meta: MetaSet, meta_batcher: Batcher, meta_weights: dict[str, float],
                 meta_batch: int, meta_interval: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setup_meta(meta, meta_batcher, meta_weights, meta_batch, meta_interval)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if return_outputs or not model.training or not self.meta_due():
            return loss
        return loss + meta_objective(lambda part: option_logits(model, part)[0], self.meta_parts(), self.meta_weights)


class GroupDroTrainer(MethodTrainer):
    """Group DRO (Sagawa et al.): q_g <- q_g exp(eta L_g), normalised; loss = sum_g q_g L_g over the
    batch's group mean losses (choice and naming examples alike)."""

    def __init__(self, *args: Any, n_groups: int, step_size: float, group_names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_size, self.group_names = step_size, group_names
        self.q = torch.full((n_groups,), 1.0 / n_groups)

    def method_state(self) -> dict[str, Any]:
        return {"q": self.q.clone()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.q = state["q"].clone()

    def method_summary(self) -> dict[str, float | int | str]:
        top = int(self.q.argmax())
        return {"groupdro_max_weight": float(self.q.max()), "groupdro_max_group": self.group_names[top]}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        parts = self.per_example_losses(model, inputs)
        losses = torch.cat([loss for loss, _ in parts])
        groups = torch.cat([part["group"].to(losses.device) for _, part in parts])
        n = len(self.q)
        sums = torch.zeros(n, device=losses.device, dtype=losses.dtype).index_add(0, groups, losses)
        counts = torch.zeros(n, device=losses.device, dtype=losses.dtype).index_add(0, groups, torch.ones_like(losses))
        group_loss = sums / counts.clamp(min=1)
        q = self.q.to(losses.device) * torch.exp(self.step_size * group_loss.detach())
        self.q = (q / q.sum()).cpu()
        return (group_loss * self.q.to(losses.device, losses.dtype)).sum()


__all__ = ["ErmMetaTrainer", "GroupDroTrainer", "MethodBatcher", "MethodTrainer", "MetaMixin", "STATE_FILE",
           "class_key", "group_key", "weighted"]
