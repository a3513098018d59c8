"""From `--method` and the loaded data to a checked plan (before any model loads), and from the plan
to the Trainer. Bad input is a `TrainDataError` (one line, exit 2) before training starts:
a method that needs a meta set without one, a meta set without masks when CF items are requested,
items whose number of options differs (CLP's network has K outputs), a method that needs group labels
on data without them, or a method that cannot run under data parallel."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spuriverse.schema.train import ClpSettings, GroupDroSettings, JttSettings, MetaSettings
from spuriverse.train.data import TrainDataError, TrainExample
from spuriverse.train.methods import MethodOptions, TrainingMethod, get_method


@dataclass
class MethodPlan:
    method: TrainingMethod
    options: MethodOptions
    meta: Any = None  # MetaSet
    classes: dict[str, int] = field(default_factory=dict)
    prior: list[float] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)
    n_options: int | None = None
    has_masks: bool = False  # some training item has a core_mask (CLP's saliency term)

    def settings(self, learning_rate: float) -> dict[str, Any]:
        """The TrainConfig fields of this method (every hyper-parameter it uses)."""
        o, name = self.options, self.method.name
        out: dict[str, Any] = {"method": name}
        if self.meta is not None and o.meta_data is not None:
            out["meta"] = MetaSettings(
                data=o.meta_data, size=o.meta_size, fill=o.meta_fill, batch=o.meta_batch, interval=o.meta_interval,
                clean_weight=o.clean_weight, factual_weight=o.factual_weight,
                counterfactual_weight=o.counterfactual_weight, fingerprint=self.meta.fingerprint,
                n_clean=len(self.meta.clean), n_factual=len(self.meta.factual),
                n_counterfactual=len(self.meta.counterfactual), factual_from=self.meta.factual_from)
        if name == "clp":
            assert self.n_options is not None
            out["clp"] = ClpSettings(meta_lr=o.meta_lr, meta_weight_decay=o.meta_weight_decay,
                                     virtual_lr=o.virtual_lr or learning_rate, delta_bound=o.delta_bound,
                                     saliency_lambda=o.saliency_lambda, first_order=o.first_order, hidden=o.hidden,
                                     n_options=self.n_options)
        if name == "jtt":
            out["jtt"] = JttSettings(upweight=o.jtt_upweight, first_epochs=o.jtt_first_epochs)
        if name == "groupdro":
            out["groupdro"] = GroupDroSettings(step_size=o.groupdro_step, groups=list(self.groups))
        return out


    def before_training(self, opts: Any, train: list[TrainExample], config: Any,
                        checkpoints: str) -> tuple[list[TrainExample], dict[str, float | int | str]]:
        """The training examples after the method's first stage (JTT), and what it measured."""
        if not self.method.two_stage:
            return train, {}
        from spuriverse.train.methods.jtt import first_stage

        return first_stage(opts, train, config.jtt.upweight, config.jtt.first_epochs, checkpoints)


def _check_groups(train: list[TrainExample]) -> dict[str, int]:
    from spuriverse.train.methods.trainers import group_key

    missing = next((ex for ex in train if ex.aligned is None), None)
    if missing is not None:
        raise TrainDataError(
            f"this method needs group labels, and item {missing.item_id!r} has none: groups are answer class x "
            "aligned/conflicting, read from a boolean `aligned` column (spuriverse-world has it)")
    return {g: i for i, g in enumerate(sorted({group_key(ex) for ex in train}))}


def _check_options(items: list[TrainExample]) -> int:
    counts = Counter(len(ex.options) for ex in items if ex.kind == "choice")
    if len(counts) > 1:
        k = counts.most_common(1)[0][0]
        odd = next(ex for ex in items if ex.kind == "choice" and len(ex.options) != k)
        raise TrainDataError(
            f"CLP needs the same number of options K for every item (its network outputs K offsets): most items "
            f"have {k}, item {odd.item_id!r} has {len(odd.options)}; select items with --groups/--variants")
    if not counts:
        raise TrainDataError("this method needs multiple-choice items (the data has only naming rows)")
    return next(iter(counts))


def plan_method(name: str, options: MethodOptions, train: list[TrainExample], world_size: int = 1,
                objective: str = "option") -> MethodPlan:
    """Check the method against the data and load its meta set (no model is loaded here)."""
    from spuriverse.train.methods.meta import load_meta_set
    from spuriverse.train.methods.trainers import class_key

    method = get_method(name)
    if name != "erm" and objective != "option":
        raise TrainDataError(f"--method {name} trains on the option objective (--objective option)")
    if world_size > 1 and not method.distributed:
        raise TrainDataError(f"--method {name} runs in one process (it keeps per-run state); run it without "
                             "data parallel")
    plan = MethodPlan(method, options)
    if method.needs_meta:
        if options.meta_data is None:
            raise TrainDataError(f"--method {name} needs a meta set: pass --meta-data SRC (e.g. spuriverse-world's "
                                 "train folder with --meta-config balanced)")
        if options.meta_batch < 1 or options.meta_interval < 1 or options.meta_size < 1:
            raise TrainDataError("--meta-size, --meta-batch and --meta-interval must be at least 1")
        plan.meta = load_meta_set(options.meta_data, size=options.meta_size, fill=options.meta_fill,
                                  need_cf=options.counterfactual_weight > 0)
    if method.needs_groups:
        plan.groups = _check_groups(train)
    if method.same_options:
        plan.n_options = _check_options(train + (plan.meta.items() if plan.meta else []))
        choice = [class_key(ex) for ex in train if ex.kind == "choice"]
        plan.classes = {c: i for i, c in enumerate(sorted(set(choice)))}
        counts = Counter(choice)
        plan.prior = [counts[c] / len(choice) for c in plan.classes]
    if name == "jtt" and (options.jtt_upweight < 1 or options.jtt_first_epochs <= 0):
        raise TrainDataError("--jtt-upweight must be >= 1 and --jtt-first-epochs > 0")
    plan.has_masks = any(ex.core_mask is not None for ex in train if ex.kind == "choice")
    if name == "clp" and options.saliency_lambda > 0 and not plan.has_masks:
        print("spuriverse train: note: no training item has a core_mask, so CLP's saliency term is off",
              file=sys.stderr, flush=True)
    return plan


def trainer_kwargs(plan: MethodPlan, config: Any, backend: Any, strategy: str) -> tuple[Any, dict[str, Any]]:
    """(collator class kwargs, Trainer kwargs) of the planned method; `config` is the TrainConfig."""
    import torch

    from spuriverse.train.batching import Batcher

    kw: dict[str, Any] = {}
    batcher_kw: dict[str, Any] = {"groups": plan.groups, "classes": plan.classes}
    if plan.meta is not None:
        m = config.meta
        kw.update(meta=plan.meta, meta_batcher=Batcher(backend, strategy=strategy), meta_batch=m.batch,
                  meta_interval=m.interval, meta_weights={"clean": m.clean_weight, "factual": m.factual_weight,
                                                          "counterfactual": m.counterfactual_weight})
    if plan.method.name == "groupdro":
        kw.update(n_groups=len(plan.groups), step_size=config.groupdro.step_size, group_names=list(plan.groups))
    if plan.method.name == "clp":
        kw.update(clp=config.clp, class_prior=torch.tensor(plan.prior))
        batcher_kw["saliency"] = config.clp.saliency_lambda > 0 and plan.has_masks
    return batcher_kw, kw


__all__ = ["MethodPlan", "plan_method", "trainer_kwargs"]
