"""`spuriverse train compare-methods`: train every method with several seeds from the same base, on the
same data and settings, and score each run on held-out test items with ground-truth groups.

Layout of `--out`:
    runs/<method>-seed<S>/         each trained model (a normal `spuriverse train` folder; resumable)
    runs/<method>-seed<S>.test.json  its test scores (RunScores; re-used on a re-run)
    compare.json                   MethodComparison (every run, and per method mean and interval)
    compare.md                     the table

Metrics (each test item is scored like `spuriverse eval --scoring logprob`; an item the scorer fails
is counted wrong and reported): average accuracy; worst-group accuracy, the minimum over the groups
(answer class x aligned/conflicting, from the test items' `aligned` column) present in the test items;
cue-conflicting accuracy (items whose cue suggests another answer). Per method: mean over seeds with a
95 % Student-t interval (t_{0.975, n-1} x sd / sqrt(n)), plus training wall time.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spuriverse.atomic import atomic_write_text
from spuriverse.provenance import now_iso
from spuriverse.locking import folder_lock
from spuriverse.schema.train import Interval, MethodComparison, MethodRow, RunScores, TrainDataSpec
from spuriverse.train.data import TrainDataError, TrainExample, load_examples, summarize
from spuriverse.train.methods import get_method

GROUPS = "answer class x aligned/conflicting (the test items' `aligned` column)"


@dataclass
class CompareOptions:
    base: Any  # TrainOptions: the shared settings (its `out`, `method` and `seed` are replaced per run)
    test_data: TrainDataSpec
    methods: list[str]
    seeds: list[int]
    out: Path
    level: float = 0.95


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def interval(values: list[float], level: float = 0.95) -> Interval:
    """Mean and Student-t interval over seeds."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Interval(mean=mean, n=n)
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean=mean, low=mean - half, high=mean + half, n=n)


def _test_items(spec: TrainDataSpec) -> list[TrainExample]:
    items = [ex for ex in load_examples([spec], role="test") if ex.kind == "choice"]
    if not items:
        raise TrainDataError(f"the test data {spec.source} has no multiple-choice items")
    missing = next((ex for ex in items if ex.aligned is None), None)
    if missing is not None:
        raise TrainDataError(f"test item {missing.item_id!r} has no `aligned` column: worst-group accuracy needs "
                             "ground-truth groups (spuriverse-world's test items have them)")
    return items


def score_run(method: str, seed: int, run: Path, rel: str, test: list[TrainExample], manifest: Any,
              strategy: str, device: str | None, batch_size: int) -> RunScores:
    """Score one trained folder on the test items."""
    from spuriverse.train.methods.predict import load_scorer, predict_letters
    from spuriverse.train.methods.trainers import group_key

    backend = load_scorer(str(run), device=device, batch_size=batch_size)
    try:
        preds = predict_letters(backend, test, strategy)
    finally:
        backend.close()
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for ex, p in zip(test, preds):
        total[group_key(ex)] += 1
        right[group_key(ex)] += int(p == ex.answer)
    groups = {g: right[g] / total[g] for g in sorted(total)}
    worst = min(groups, key=lambda g: (groups[g], g))

    def acc(keep: Any) -> float | None:
        sel = [g for g in total if keep(g)]
        n = sum(total[g] for g in sel)
        return sum(right[g] for g in sel) / n if n else None

    return RunScores(
        method=method, seed=seed, run=rel, accuracy=sum(right.values()) / len(test), worst_group_accuracy=groups[worst],
        worst_group=worst, conflicting_accuracy=acc(lambda g: g.endswith("/conflicting")),
        aligned_accuracy=acc(lambda g: g.endswith("/aligned")), group_accuracy=groups, n_items=len(test),
        n_failed=sum(p is None for p in preds), wall_time_s=manifest.wall_time_s, steps=manifest.global_steps)


def _row(method: str, runs: list[RunScores], level: float) -> MethodRow:
    conflicting = [r.conflicting_accuracy for r in runs if r.conflicting_accuracy is not None]
    return MethodRow(method=method, seeds=[r.seed for r in runs],
                     accuracy=interval([r.accuracy for r in runs], level),
                     worst_group_accuracy=interval([r.worst_group_accuracy for r in runs], level),
                     conflicting_accuracy=interval(conflicting, level) if conflicting else None,
                     wall_time_s=interval([r.wall_time_s for r in runs], level))


def _fmt(iv: Interval | None, scale: float = 100.0, digits: int = 1) -> str:
    if iv is None:
        return "-"
    if iv.low is None or iv.high is None:
        return f"{iv.mean * scale:.{digits}f}"
    return f"{iv.mean * scale:.{digits}f} ± {(iv.high - iv.mean) * scale:.{digits}f}"


def table(result: MethodComparison) -> str:
    """The comparison as a markdown table (accuracies in %, mean ± 95 % t half-width over seeds)."""
    lines = ["| method | seeds | average acc. (%) | worst-group acc. (%) | cue-conflicting acc. (%) | wall time (s) |",
             "|---|---|---|---|---|---|"]
    for r in result.methods:
        lines.append(f"| {r.method} | {len(r.seeds)} | {_fmt(r.accuracy)} | {_fmt(r.worst_group_accuracy)} | "
                     f"{_fmt(r.conflicting_accuracy)} | {_fmt(r.wall_time_s, 1.0, 0)} |")
    return "\n".join(lines) + "\n"


def _settings(opts: CompareOptions) -> dict[str, Any]:
    b = opts.base
    shared = {k: getattr(b, k) for k in ("tuning", "lora_r", "lora_alpha", "lora_dropout", "lora_target", "epochs",
                                         "max_steps", "learning_rate", "lr_scheduler", "warmup", "weight_decay",
                                         "batch_size", "grad_accum", "vocab_weight", "strategy")}
    mo = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in vars(b.method_options).items()}
    return {"shared": shared, "method_options": mo}


def run_compare(opts: CompareOptions) -> MethodComparison:
    """Train (or resume) and score every (method, seed); write compare.json and compare.md."""
    from spuriverse.train.runner import run_train

    for m in opts.methods:
        get_method(m)
    if not opts.seeds or len(set(opts.seeds)) != len(opts.seeds):
        raise ValueError("--seeds must name distinct seeds")
    test = _test_items(opts.test_data)
    opts.out.mkdir(parents=True, exist_ok=True)
    runs: list[RunScores] = []
    with folder_lock(opts.out, stage="train compare-methods"):
        for method in opts.methods:
            for seed in opts.seeds:
                rel = f"runs/{method}-seed{seed}"
                run, scores_path = opts.out / rel, opts.out / f"{rel}.test.json"
                (opts.out / "runs").mkdir(exist_ok=True)
                _log(f"compare-methods: {method} seed {seed} -> {run}")
                manifest = run_train(replace(opts.base, out=run, method=method, seed=seed, progress=False))
                if scores_path.is_file():
                    runs.append(RunScores.model_validate_json(scores_path.read_text("utf-8")))
                    continue
                scores = score_run(method, seed, run, rel, test, manifest, opts.base.strategy, opts.base.device,
                                   opts.base.eval_batch_size or 32)
                atomic_write_text(scores_path, scores.model_dump_json(indent=2) + "\n")
                runs.append(scores)
        from spuriverse.train.methods.trainers import group_key

        result = MethodComparison(
            created=now_iso(), base_model=opts.base.model, train_data=opts.base.train_data, test_data=opts.test_data,
            test_fingerprint=summarize(test).fingerprint, n_test=len(test), group_definition=GROUPS,
            group_sizes=dict(sorted(Counter(group_key(ex) for ex in test).items())),
            interval=f"mean over seeds, {opts.level:.0%} Student-t interval", settings=_settings(opts), runs=runs,
            methods=[_row(m, [r for r in runs if r.method == m], opts.level) for m in opts.methods])
        atomic_write_text(opts.out / "compare.json", result.model_dump_json(indent=2) + "\n")
        atomic_write_text(opts.out / "compare.md", table(result))
    return result


__all__ = ["CompareOptions", "interval", "run_compare", "score_run", "table"]
