"""What a study is (`StudyOptions` -> `StudyConfig`) and its grid of cells.

Per seed the cells are, in this order: the untuned base model (evaluation only), one cell per data
type, then one per ablation data kind and point. A cell's index is its position in that list, so
`--cell K` names the same cell in every process of a scheduler array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spuriverse.schema.study import DATA_TYPES, CellPlan, StudyConfig, StudyDataSpec
from spuriverse.schema.train import TrainDataSpec
from spuriverse.study.data import COPY, heldout_path
from spuriverse.study.splits import (
    TEST_FRACTION,
    VAL_FRACTION,
    Inventory,
    SeedSamples,
    StudyDataError,
    ablation_items,
)
from spuriverse.train import TrainOptions

PAPER_SEEDS = (42, 123, 7890, 54321, 9876)
PAPER_ABLATION = ("0", "20", "40", "60", "80", "99")
# TrainOptions fields the study sets per cell, and those that change how a run goes but not its result.
PER_CELL = frozenset({"model", "out", "train_data", "val_data", "seed", "model_revision", "progress"})
RUNTIME = frozenset({"device", "num_workers", "save_total_limit", "keep_checkpoints", "eval_batch_size"})


@dataclass
class StudyOptions:
    """A fine-tuning study over `seeds` x (data types + ablation points), run into `out`."""

    model: str
    out: Path
    data: StudyDataSpec
    model_revision: str | None = None
    seeds: list[int] = field(default_factory=lambda: list(PAPER_SEEDS))
    data_types: list[str] = field(default_factory=lambda: list(DATA_TYPES))
    ablation: list[str] = field(default_factory=lambda: list(PAPER_ABLATION))
    ablation_data: list[str] = field(default_factory=lambda: ["group"])
    non_spurious_scale: int = 1
    control_scale: int = 10
    test_fraction: float = TEST_FRACTION
    val_fraction: float = VAL_FRACTION
    n_bootstrap: int = 1000
    train: dict[str, Any] = field(default_factory=dict)  # TrainOptions keywords shared by every cell
    eval_batch_size: int | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)  # eval: device, dtype, ...
    progress: bool = True


def study_config(opts: StudyOptions) -> StudyConfig:
    """The configuration that defines the study (checked on every re-run in the same folder)."""
    known = {f.name for f in fields(TrainOptions)}
    bad = sorted(set(opts.train) - known) + sorted(set(opts.train) & PER_CELL)
    if bad:
        raise ValueError(f"training option(s) {', '.join(bad)} cannot be set for a study")
    if len(set(opts.seeds)) != len(opts.seeds):
        raise StudyDataError(f"seeds repeat: {opts.seeds}")
    unknown = [d for d in opts.data_types if d not in DATA_TYPES]
    if unknown or len(set(opts.data_types)) != len(opts.data_types):
        raise StudyDataError(f"data types {opts.data_types}: choose each at most once from {', '.join(DATA_TYPES)}")
    defining = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(opts.train.items()) if k not in RUNTIME}
    return StudyConfig.model_validate(dict(
        model=opts.model, model_revision=opts.model_revision, data=opts.data, seeds=list(opts.seeds),
        data_types=list(opts.data_types), ablation=list(opts.ablation) if opts.ablation_data else [],
        ablation_data=list(opts.ablation_data) if opts.ablation else [], test_fraction=opts.test_fraction,
        val_fraction=opts.val_fraction, non_spurious_scale=opts.non_spurious_scale,
        control_scale=opts.control_scale, n_bootstrap=opts.n_bootstrap, train=defining,
    ))


def _spec(groups: Sequence[str], variant: str) -> list[TrainDataSpec]:
    """A selection from the study's copy (its path relative to the study folder until a cell runs)."""
    return [TrainDataSpec(source=str(COPY), groups=sorted(groups), variants=[variant])] if groups else []


@dataclass
class _Design:
    inv: Inventory
    group_of: dict[str, str]  # control item id -> its (own) group id in the copy

    def controls(self, item_ids: Sequence[str]) -> list[TrainDataSpec]:
        return _spec([self.group_of[i] for i in item_ids], "control")

    def count(self, groups: Sequence[str], kind: str) -> int:
        return sum(self.inv.groups[g].size(kind) for g in groups)


def _data_type_cell(d: _Design, s: SeedSamples, data_type: str) -> dict[str, Any]:
    train, val = s.split["train"], s.split["validation"]
    if data_type in ("anchor", "group"):
        variant = "anchor" if data_type == "anchor" else "spurious"
        return dict(train_data=_spec(train, variant), val_data=_spec(val, variant),
                    n_train=d.count(train, data_type), n_val=d.count(val, data_type))
    if data_type == "non_spurious":
        return dict(train_data=d.controls(s.non_spurious), val_data=d.controls(s.val_non_spurious),
                    n_train=len(s.non_spurious), n_val=len(s.val_non_spurious))
    return dict(train_data=_spec(train, "spurious") + d.controls(s.non_spurious),
                val_data=_spec(val, "spurious") + d.controls(s.val_non_spurious),
                n_train=d.count(train, "group") + len(s.non_spurious),
                n_val=d.count(val, "group") + len(s.val_non_spurious))


def plan_cells(config: StudyConfig, inv: Inventory, group_of: dict[str, str], samples: dict[int, SeedSamples],
               points: Sequence[int]) -> list[CellPlan]:
    """Every cell of the grid, in index order (raises `StudyDataError` if a sample cannot be drawn)."""
    d = _Design(inv, group_of)
    cells: list[dict[str, Any]] = []
    for seed in config.seeds:
        s, held = samples[seed], str(heldout_path(seed))
        cells.append(dict(name=f"seed-{seed}/base", seed=seed, kind="base", heldout=held))
        for dt in config.data_types:
            cells.append(dict(name=f"seed-{seed}/{dt}", seed=seed, kind="data_type", data_type=dt, heldout=held,
                              **_data_type_cell(d, s, dt)))
        for kind in config.ablation_data:
            variant = "anchor" if kind == "anchor" else "spurious"
            for n in points:
                kept, items = ablation_items(inv, s, n, kind)
                cells.append(dict(name=f"seed-{seed}/ablation-{kind}-{n}", seed=seed, kind="ablation",
                                  ablation_data=kind, n_spurious=n, heldout=held,
                                  train_data=_spec(kept, variant) + d.controls(items),
                                  n_train=d.count(kept, kind) + len(items)))
    return [CellPlan(index=i, **c) for i, c in enumerate(cells)]


def resolved_specs(specs: Sequence[TrainDataSpec], study_dir: Path) -> list[TrainDataSpec]:
    """The cell's selections with the copy's absolute path (what the training run records)."""
    copy = str((study_dir / COPY).resolve())
    return [s.model_copy(update={"source": copy}) for s in specs]
