"""`--method clp`: the CLP step inside the HF Trainer (the math is in `clp`).

Per training batch: one forward of the option objective (its graph kept), the characteristics from it
(the LM head's input captured by a hook), and every `meta_interval` steps the meta step (virtual step over
the trainable parameters with `functional_call`, meta loss on a meta batch, Adam on Omega); then the
actual loss CE(u + delta.detach()) (+ lambda x background saliency) that the Trainer backpropagates.
Evaluation and the saved model never see the perturbation network.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.func import functional_call

from spuriverse.train.batching import completion_loss, letter_loss, option_logits
from spuriverse.train.methods.clp import (
    ClassStats, LogitsOf, PerturbationNet, characteristics, meta_gradient, role_slots, slot_delta,
)
from spuriverse.train.methods.meta import MetaSet
from spuriverse.train.methods.saliency import saliency_penalty
from spuriverse.train.methods.trainers import MetaMixin, MethodTrainer, weighted
from spuriverse.train.batching import Batcher


class _Bound:
    """The model called with some parameters replaced (`functional_call`), for `option_logits`."""

    def __init__(self, model: Any, params: dict[str, torch.Tensor]) -> None:
        self.model, self.params = model, params

    def __call__(self, **kwargs: Any) -> Any:
        return functional_call(self.model, self.params, args=(), kwargs=kwargs, strict=False)


def lvlm_logits_of(model: Any) -> LogitsOf:
    """Option-letter logits of `model` (or of `model` at other trainable parameters)."""
    def logits_of(params: dict[str, torch.Tensor] | None, part: dict[str, Any]) -> torch.Tensor:
        return option_logits(model if params is None else _Bound(model, params), part)[0]
    return logits_of


class _HeadInput:
    """Captures the LM head's input at the kept (answer) position during one forward."""

    def __init__(self, model: Any) -> None:
        head = model.get_output_embeddings()
        self.weight = head.weight
        self.h: torch.Tensor | None = None
        self.handle = head.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: tuple, output: Any) -> None:
        self.h = args[0][:, -1, :].detach()

    def close(self) -> None:
        self.handle.remove()


class ClpTrainer(MetaMixin, MethodTrainer):
    def __init__(self, *args: Any, meta: MetaSet, meta_batcher: Batcher, meta_weights: dict[str, float],
                 meta_batch: int, meta_interval: int, clp: Any, class_prior: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setup_meta(meta, meta_batcher, meta_weights, meta_batch, meta_interval)
        self.clp = clp  # spuriverse.schema.train.ClpSettings
        torch.manual_seed(self.args.seed)
        self.net = PerturbationNet(clp.n_options, clp.hidden).to(self.args.device)
        self.net_opt = torch.optim.Adam(self.net.parameters(), lr=clp.meta_lr, weight_decay=clp.meta_weight_decay)
        self.stats = ClassStats(len(class_prior), class_prior)
        self.record = {"meta_steps": 0, "meta_loss": float("nan"), "abs_delta_sum": 0.0, "delta_rows": 0,
                       "saliency": float("nan")}

    # -- state -------------------------------------------------------------------------------
    def method_state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.net_opt.state_dict(), "stats": self.stats.state(),
                "record": dict(self.record)}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.net_opt.load_state_dict(state["opt"])
        self.stats.load(state["stats"])
        self.record = dict(state["record"])

    def method_summary(self) -> dict[str, float | int | str]:
        rows = max(int(self.record["delta_rows"]), 1)
        return {"clp_meta_steps": int(self.record["meta_steps"]), "clp_last_meta_loss": float(self.record["meta_loss"]),
                "clp_mean_abs_delta": float(self.record["abs_delta_sum"]) / rows,
                "clp_last_saliency": float(self.record["saliency"])}

    # -- the step ------------------------------------------------------------------------------
    def _meta_step(self, model: Any, part: dict[str, Any], letters: torch.Tensor, g: torch.Tensor,
                   slots: torch.Tensor) -> None:
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        delta = slot_delta(self.net(g), slots, part["letter_mask"], self.clp.delta_bound)
        loss, grads = meta_gradient(lvlm_logits_of(model), params, part, letters, delta, list(self.net.parameters()),
                                    self.meta_parts(), self.meta_weights, self.clp.virtual_lr, self.clp.first_order)
        for p, grad in zip(self.net.parameters(), grads):
            p.grad = grad
        self.net_opt.step()
        self.net_opt.zero_grad(set_to_none=True)
        self.record["meta_steps"] += 1
        self.record["meta_loss"] = float(loss)

    def _forward(self, model: Any, part: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(letter logits, full logits, characteristics) of the training batch, graphs kept."""
        cap = _HeadInput(model)
        # Fused attention kernels have no double backward (the second-order step and the saliency
        # term differentiate through this forward's gradient): the math kernel has.
        double = not self.clp.first_order or bool(self.clp.saliency_lambda and "background" in part)
        try:
            with sdpa_kernel([SDPBackend.MATH]) if double else nullcontext():
                letters, logits = option_logits(model, part)
        finally:
            cap.close()
        assert cap.h is not None
        answer = part["answer_index"]
        w_y = cap.weight[part["letter_ids"].gather(1, answer[:, None])[:, 0]].detach()
        self.stats.roll(int(self.state.epoch or 0))
        g = characteristics(letters, answer, cap.h, w_y, part["class_index"].clamp(min=0), self.stats)
        return letters, logits, g.to(next(self.net.parameters()).dtype)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or not model.training or "choice" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        part, pixels = inputs["choice"], None
        if self.clp.saliency_lambda and "background" in part:
            pixels = part["inputs"]["pixel_values"].detach().requires_grad_(True)
            part = {**part, "inputs": {**part["inputs"], "pixel_values": pixels}}
        letters, logits, g = self._forward(model, part)
        slots = role_slots(letters, part["answer_index"], part["letter_mask"], self.clp.n_options)
        self.net.train()
        if self.meta_due():
            self._meta_step(model, part, letters, g, slots)
        with torch.no_grad():
            delta = slot_delta(self.net(g), slots, part["letter_mask"], self.clp.delta_bound)
        self.record["abs_delta_sum"] += float(delta.abs().sum(1).mean()) * len(delta)
        self.record["delta_rows"] += len(delta)
        choice = weighted(letter_loss(letters, logits, part, self.vocab_weight, offset=delta), part)
        total = choice.sum()
        if "lm" in inputs:
            total = total + weighted(completion_loss(model, inputs["lm"]), inputs["lm"]).sum()
        total = total / inputs["n"]
        if pixels is not None:
            penalty = saliency_penalty(choice.sum(), pixels, part["background"])
            self.record["saliency"] = float(penalty.detach())
            total = total + self.clp.saliency_lambda * penalty
        return total


__all__ = ["ClpTrainer", "lvlm_logits_of"]
