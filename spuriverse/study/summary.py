"""The study's summary (`study.json`): every cell's held-out accuracies, its paired gain over the base
model of its seed, and per data type (and ablation point) the mean over seeds with a Student-t
interval, a paired t-test over seeds and a McNemar test on the pooled discordant items.

Per seed, a cell and the base model answer the same held-out items, so the gain is paired item by item
(`spuriverse.eval.compare.paired_comparison`: McNemar + a group-bootstrap interval). Over seeds, the
seed is the unit: the interval is mean ± t(n-1) x sd / sqrt(n) (none with one seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spuriverse.eval.compare import mcnemar_p, paired_comparison
from spuriverse.provenance import harness_info, now_iso, package_versions
from spuriverse.eval.samples import read_run_samples
from spuriverse.schema import RunResult, Sample
from spuriverse.schema.study import (
    CellPlan,
    CellRecord,
    CellResult,
    PairedGain,
    RowSummary,
    SeedStat,
    SplitSummary,
    StudyPlan,
    StudyResult,
)

LEVEL = 0.95
SPLIT_ORDER = ("anchor", "spurious", "counter", "control")


def _t_quantile(level: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, df))


def seed_stat(values: Sequence[float | None], level: float = LEVEL,
              bounds: tuple[float, float] = (0.0, 1.0)) -> SeedStat:
    """Mean over seeds with a Student-t interval, clipped to `bounds` (the possible range: [0, 1] for an
    accuracy, [-1, 1] for a difference); no interval for one seed or a missing value."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return SeedStat(mean=None, values=[])
    mean = float(np.mean(vals))
    if len(vals) < 2 or len(vals) != len(values):
        return SeedStat(mean=mean, values=vals)
    sd = float(np.std(vals, ddof=1))
    half = _t_quantile(level, len(vals) - 1) * sd / math.sqrt(len(vals))
    return SeedStat(mean=mean, ci_low=max(bounds[0], mean - half), ci_high=min(bounds[1], mean + half), sd=sd,
                    values=vals)


def paired_t_p(diffs: Sequence[float]) -> float | None:
    """Two-sided paired t-test over seeds (H0: mean difference 0); None with < 2 seeds or sd 0."""
    if len(diffs) < 2:
        return None
    sd = float(np.std(diffs, ddof=1))
    if sd == 0:
        return None
    from scipy.stats import t

    stat = float(np.mean(diffs)) / (sd / math.sqrt(len(diffs)))
    return float(2 * t.sf(abs(stat), len(diffs) - 1))


def _gain(tuned: list[Sample], base: list[Sample], split: str, n_bootstrap: int) -> PairedGain:
    pc = paired_comparison(tuned, base, n_bootstrap=n_bootstrap, seed=0, variants=(split,))
    lo, hi = pc.diff_ci if pc.diff_ci is not None else (None, None)
    return PairedGain(diff=pc.diff, ci_low=lo, ci_high=hi, n_shared=pc.n_shared, tuned_only=pc.a_only,
                      base_only=pc.b_only, mcnemar_p=pc.mcnemar_p)


def _cell_result(out: Path, cell: CellPlan, splits: list[str], base: list[Sample] | None,
                 n_bootstrap: int) -> tuple[CellResult, list[Sample]]:
    folder = out / "cells" / cell.name
    record = CellRecord.model_validate_json((folder / "cell.json").read_text("utf-8"))
    result = RunResult.model_validate_json((folder / "eval" / "results.json").read_text("utf-8"))
    samples = read_run_samples(folder / "eval")
    accuracy = {s: result.metrics[f"{s}_acc"] for s in splits}
    vs_base = {s: _gain(samples, base, s, n_bootstrap) for s in splits} if base is not None else {}
    res = CellResult(
        index=cell.index, name=cell.name, seed=cell.seed, kind=cell.kind, data_type=cell.data_type,
        ablation_data=cell.ablation_data, n_spurious=cell.n_spurious, n_train=cell.n_train,
        global_steps=record.global_steps, best_val_accuracy=record.best_val_accuracy,
        eval_run=str(Path("cells") / cell.name / "eval"), accuracy=accuracy, vs_base=vs_base,
        train_wall_s=record.train_wall_s, eval_wall_s=record.eval_wall_s, resumed_from=record.resumed_from,
        finished=record.finished,
    )
    return res, samples


def _split_summary(cells: list[CellResult], split: str, level: float) -> SplitSummary:
    acc = seed_stat([c.accuracy[split].value for c in cells], level)
    gains = [c.vs_base[split] for c in cells if split in c.vs_base]
    if not gains or len(gains) != len(cells):  # the base model's own row
        return SplitSummary(accuracy=acc, gain=None, gain_t_p=None, pooled_mcnemar_p=None)
    diffs = [g.diff for g in gains]
    t_p = paired_t_p([d for d in diffs if d is not None]) if None not in diffs else None
    pooled = mcnemar_p(sum(g.tuned_only for g in gains), sum(g.base_only for g in gains))[0]
    return SplitSummary(accuracy=acc, gain=seed_stat(diffs, level, (-1.0, 1.0)), gain_t_p=t_p,
                        pooled_mcnemar_p=pooled)


def _row(label: str, cells: list[CellResult], splits: list[str], level: float) -> RowSummary:
    first = cells[0]
    out = {s: _split_summary(cells, s, level) for s in splits}
    return RowSummary(label=label, kind=first.kind, data_type=first.data_type, ablation_data=first.ablation_data,
                      n_spurious=first.n_spurious, n_seeds=len(cells), splits=out)


def held_out_splits(result: RunResult) -> list[str]:
    """The held-out splits present (items of that variant were evaluated)."""
    return [s for s in SPLIT_ORDER if result.benchmark.counts.get(s)]


def summarize(out: Path, plan: StudyPlan, level: float = LEVEL) -> StudyResult:
    """study.json's content from the finished cells (all of them must be finished)."""
    n_boot = plan.config.n_bootstrap
    bases = {c.seed: c for c in plan.cells if c.kind == "base"}
    present = {s for c in bases.values() for s in held_out_splits(RunResult.model_validate_json(
        (out / "cells" / c.name / "eval" / "results.json").read_text("utf-8")))}
    splits = [s for s in SPLIT_ORDER if s in present]
    results: list[CellResult] = []
    base_samples: dict[int, list[Sample]] = {}
    for seed, cell in bases.items():
        res, base_samples[seed] = _cell_result(out, cell, splits, None, n_boot)
        results.append(res)
    for cell in plan.cells:
        if cell.kind != "base":
            results.append(_cell_result(out, cell, splits, base_samples[cell.seed], n_boot)[0])
    results.sort(key=lambda c: c.index)
    table = [_row("base model", [c for c in results if c.kind == "base"], splits, level)]
    table += [_row(dt, [c for c in results if c.data_type == dt], splits, level) for dt in plan.config.data_types]
    ablation = [_row(f"{kind}: {n} spurious", [c for c in results if c.ablation_data == kind and c.n_spurious == n],
                     splits, level)
                for kind in plan.config.ablation_data for n in plan.ablation_points]
    return StudyResult(
        created=plan.created, finished=now_iso(), config=plan.config, benchmark_fingerprint=plan.benchmark_fingerprint,
        level=level, splits=splits, table=table, ablation=ablation, cells=results, harness=harness_info(),
        packages=package_versions(),
    )
