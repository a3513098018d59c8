"""The study's report: `report.md` and two plots, from `study.json` alone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spuriverse.persist import atomic_write_bytes, atomic_write_text
from spuriverse.schema.study import RowSummary, SeedStat, SplitSummary, StudyResult

REPORT_MD, ACCURACY_PNG, ABLATION_PNG = "report.md", "study_accuracy.png", "study_ablation.png"
COLORS = {"anchor": "#636363", "spurious": "#e6550d", "counter": "#31a354", "control": "#3182bd"}


def _pct(s: SeedStat | None) -> str:
    if s is None or s.mean is None:
        return "–"
    ci = f" [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]" if s.ci_low is not None and s.ci_high is not None else ""
    return f"{100 * s.mean:.1f}{ci}"


def _one(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _p(p: float | None) -> str:
    """" p=0.123", " p<0.001", or " p –" (undefined)."""
    return " p –" if p is None else (" p<0.001" if p < 0.001 else f" p={p:.3f}")


def _gain(s: SplitSummary) -> str:
    g = s.gain
    if g is None or g.mean is None:
        return "–"
    ci = f" [{100 * g.ci_low:+.1f}, {100 * g.ci_high:+.1f}]" if g.ci_low is not None and g.ci_high is not None else ""
    return f"{100 * g.mean:+.1f}{ci} (t{_p(s.gain_t_p)}; McNemar{_p(s.pooled_mcnemar_p)})"


def _table(rows: list[RowSummary], splits: list[str], first: str) -> list[str]:
    out = [f"| {first} | seeds | " + " | ".join(splits) + " |", "|---|---:|" + "---:|" * len(splits)]
    for r in rows:
        out.append(f"| {r.label} | {r.n_seeds} | " + " | ".join(_pct(r.splits[s].accuracy) for s in splits) + " |")
    return out


def _gain_table(rows: list[RowSummary], splits: list[str]) -> list[str]:
    out = ["| training data | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for r in rows:
        if r.kind != "base":
            out.append(f"| {r.label} | " + " | ".join(_gain(r.splits[s]) for s in splits) + " |")
    return out


def _cells(study: StudyResult) -> list[str]:
    splits = study.splits
    out = ["| # | cell | training examples | steps | best val acc | " + " | ".join(splits) + " | run |",
           "|---:|---|---:|---:|---:|" + "---:|" * len(splits) + "---|"]
    for c in study.cells:
        val = "–" if c.best_val_accuracy is None else f"{100 * c.best_val_accuracy:.1f}"
        accs = " | ".join(_one(c.accuracy[s].value) for s in splits)
        out.append(f"| {c.index} | {c.name} | {c.n_train} | {c.global_steps if c.global_steps is not None else '–'} | "
                   f"{val} | {accs} | `{c.eval_run}` |")
    return out


def render_markdown(study: StudyResult) -> str:
    cfg, splits, level = study.config, study.splits, 100 * study.level
    seeds = ", ".join(map(str, cfg.seeds))
    lines = [
        f"# Fine-tuning study: `{cfg.model}` on `{cfg.data.source}`", "",
        f"Held-out correlations: per seed, {100 * cfg.test_fraction:g} % of the groups are held out (test), "
        f"{100 * cfg.val_fraction:g} % of the rest validate, the remainder train. Seeds: {seeds}. "
        f"Accuracy (%) on the held-out groups' anchors and spurious images and on a control sample "
        f"({cfg.control_scale} x the held-out anchors per source): mean over seeds [{level:g} % Student-t "
        "interval over seeds].", "",
        "## Held-out accuracy by training data", "", *_table(study.table, splits, "training data"), "",
        f"![accuracy]({ACCURACY_PNG})", "",
        "## Gain over the untuned base model", "",
        "Percentage points, tuned minus base on the same held-out items of each seed: mean over seeds "
        f"[{level:g} % t interval]; a paired t-test over seeds (the seed is the unit) and McNemar's test on the "
        "discordant items of all seeds. McNemar counts every item as independent, but the images of one "
        "correlation are not: its p-values are optimistic; the t-test over seeds is the one to trust.", "",
        *_gain_table(study.table, splits), "",
    ]
    if study.ablation:
        lines += ["## Ablation: spurious correlations in training", "",
                  "n of the training correlations train as spurious data; each other one is replaced by as many "
                  "non-spurious items of its source, so every point trains on the same number of examples.", "",
                  *_table(study.ablation, splits, "training data"), "", f"![ablation]({ABLATION_PNG})", ""]
    lines += ["## Cells", "", *_cells(study), "",
              "Every run folder is an ordinary `spuriverse eval` run: `spuriverse compare A B` compares two of the "
              "same seed item by item.", ""]
    return "\n".join(lines)


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def _err(stats: list[SeedStat]) -> np.ndarray | None:
    """Error bars from the intervals (None when no value has one: one seed)."""
    if all(s.ci_low is None for s in stats):
        return None
    return np.array([[100 * (s.mean - s.ci_low), 100 * (s.ci_high - s.mean)]
                     if s.mean is not None and s.ci_low is not None and s.ci_high is not None else [0.0, 0.0]
                     for s in stats]).reshape(-1, 2).T


def plot_accuracy(study: StudyResult, path: Path) -> None:
    """Grouped bars: per training data (and the base model), the held-out accuracy of each split."""
    rows, splits = study.table, study.splits
    fig = Figure(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(splits))
    x = np.arange(len(rows))
    for k, s in enumerate(splits):
        stats = [r.splits[s].accuracy for r in rows]
        vals = [100 * (st.mean or 0.0) for st in stats]
        ax.bar(x + (k - (len(splits) - 1) / 2) * width, vals, width, yerr=_err(stats), capsize=3,
               color=COLORS.get(s, "#999999"), label=s, linewidth=0)
    ax.set_xticks(x, [r.label for r in rows])
    ax.set_ylim(0, 105)
    ax.set_ylabel("held-out accuracy (%)")
    ax.legend(fontsize=8, frameon=False, ncols=len(splits))
    n = len(study.config.seeds)
    what = f"mean over {n} seeds ({100 * study.level:g} % t interval)" if n > 1 else "one seed (no interval)"
    ax.set_title(f"{study.config.model}: {what}", fontsize=10)
    _save(fig, path)


def plot_ablation(study: StudyResult, path: Path) -> None:
    """Held-out accuracy vs the number of spurious correlations in training, one panel per data kind."""
    kinds = list(dict.fromkeys(r.ablation_data for r in study.ablation))
    fig = Figure(figsize=(5.5 * len(kinds), 4.0), layout="constrained")
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), i + 1)
        rows = [r for r in study.ablation if r.ablation_data == kind]
        n = np.array([r.n_spurious or 0 for r in rows])
        for s in study.splits:
            stats = [r.splits[s].accuracy for r in rows]
            mean = np.array([100 * (st.mean if st.mean is not None else np.nan) for st in stats])
            ax.plot(n, mean, marker="o", color=COLORS.get(s, "#999999"), label=s)
            lo = np.array([100 * st.ci_low if st.ci_low is not None else np.nan for st in stats])
            hi = np.array([100 * st.ci_high if st.ci_high is not None else np.nan for st in stats])
            ax.fill_between(n, lo, hi, color=COLORS.get(s, "#999999"), alpha=0.15, linewidth=0)
        ax.set_xlabel(f"training correlations kept as spurious {kind} data")
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=8, frameon=False)
    _save(fig, path)


def write_report(study: StudyResult, out: Path) -> list[Path]:
    """report.md and the plots into the study folder."""
    atomic_write_text(out / REPORT_MD, render_markdown(study))
    plot_accuracy(study, out / ACCURACY_PNG)
    written = [out / REPORT_MD, out / ACCURACY_PNG]
    if study.ablation:
        plot_ablation(study, out / ABLATION_PNG)
        written.append(out / ABLATION_PNG)
    return written
