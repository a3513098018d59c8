"""Human-readable report of one run: `report.md` plus two plots, all from `results.json` alone."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from jinja2 import Template
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from spuriverse.eval.metrics import METRICS
from spuriverse.schema import GenerationInfo, GroupRow, MetricValue, RunResult
from spuriverse.templating import Markup, markdown_environment

REPORT_MD, PER_GROUP_PNG, SPLITS_PNG = "report.md", "per_group_accuracy.png", "splits.png"
WORST_N = 20  # per-group rows shown before the collapsed full table
MAX_LABELLED_BARS = 40

# The report's headline order; any other metric follows (sorted by key), labelled from the registry.
REPORT_ORDER: tuple[str, ...] = (
    "overall_acc", "anchor_acc", "spurious_acc", "counter_acc", "control_acc", "mean_group_acc",
    "group_consistency", "bottom_decile_group_acc", "worst_group_acc", "gap_control_anchor", "gap_control_spurious",
    "gap_counter_spurious", "failed_rate", "unparsed_rate",
)  # fmt: skip
BREAKDOWN_TITLES: dict[str, str] = {
    "source_benchmark": "By source benchmark (anchor + spurious items)",
    "category": "By question category (anchor + spurious items)",
    "spurious_attribute": "By spurious attribute (anchor + spurious items)",
    "control_source_benchmark": "Control items by source benchmark",
    "control_category": "Control items by question category",
}
SPLITS: tuple[tuple[str, str], ...] = (
    ("anchor_acc", "anchor"), ("spurious_acc", "spurious"), ("counter_acc", "counter"), ("control_acc", "control"),
)  # fmt: skip


def _esc(text: object) -> str:
    """A user string made safe for one markdown table cell (or line)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _code(text: object) -> str:
    """An inline code span for prose lines (not table cells: escapes do not apply inside code)."""
    return "`" + str(text).replace("`", "'").replace("\r", " ").replace("\n", " ") + "`"


def _extra_generation(g: GenerationInfo) -> list[tuple[str, object]]:
    """Generation settings beyond the greedy defaults (top_p, min_p, seed, reasoning effort, preset)."""
    keys = ("top_p", "min_p", "seed", "reasoning_effort", "preset")
    return [(k, getattr(g, k)) for k in keys if getattr(g, k) is not None]


def _plain(text: object) -> str:
    """A user string made safe for matplotlib text ("$" would start mathtext)."""
    return str(text).replace("$", r"\$")


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _metric_cells(key: str, m: MetricValue) -> tuple[str, str]:
    """(value, interval) cells: gaps in signed percentage points, everything else in %."""
    gap = key.startswith("gap_")
    unit = " pp" if gap else " %"
    value = "—" if m.value is None else _pct(m.value, gap) + unit
    ci = "—" if m.ci_low is None or m.ci_high is None else f"[{_pct(m.ci_low, gap)}, {_pct(m.ci_high, gap)}]"
    return value, ci


def _metric_rows(metrics: dict[str, MetricValue]) -> list[list[str]]:
    keys = [k for k in REPORT_ORDER if k in metrics] + sorted(k for k in metrics if k not in REPORT_ORDER)
    rows = []
    for k in keys:
        value, ci = _metric_cells(k, metrics[k])
        label = METRICS[k].label if k in METRICS else k
        rows.append([f"{label} (`{k}`)", value, ci, str(metrics[k].n)])
    return rows


def _breakdown_rows(values: dict[str, MetricValue]) -> list[list[str]]:
    return [[name, *_metric_cells("acc", m), str(m.n)] for name, m in values.items()]


def _mark(flag: bool | None) -> str:
    return "—" if flag is None else ("✓" if flag else "✗")


def _group_rows(rows: list[GroupRow]) -> list[list[object]]:
    return [[r.group_id, r.source_benchmark, r.spurious_attribute, r.n_items, _pct(r.acc), _mark(r.anchor_correct),
             _pct(r.spurious_acc), _pct(r.counter_acc), _mark(r.consistent), r.n_failed, r.n_unparsed]
            for r in rows]


def _worst_first(rows: list[GroupRow]) -> list[GroupRow]:
    return sorted(rows, key=lambda r: (r.acc is None, r.acc if r.acc is not None else 0.0, r.group_id))


@cache
def _template() -> Template:
    env = markdown_environment("spuriverse.eval", _esc)
    env.filters.update(code=lambda text: Markup(_code(text)), pct=_pct, markup=Markup)
    return env.get_template("report.md.j2")


def render_markdown(result: RunResult) -> str:
    """The text of report.md (templates/report.md.j2: every value escaped for markdown, code spans aside)."""
    r, b = result, result.benchmark
    rows = _worst_first(r.per_group)
    return _template().render(
        r=r, b=b, m=r.model, h=r.harness, f=r.failures, g=r.generation, level=r.bootstrap.level,
        where="/".join(x for x in (b.config, b.split) if x) or "default",
        metric_rows=_metric_rows(r.metrics), splits_png=SPLITS_PNG, per_group_png=PER_GROUP_PNG,
        breakdowns=[(BREAKDOWN_TITLES.get(name, name), _breakdown_rows(values)) for name, values in r.breakdowns.items()],
        worst=_group_rows(rows[:WORST_N]), n_groups=len(rows),
        all_groups=_group_rows(sorted(r.per_group, key=lambda g: g.group_id)) if len(rows) > WORST_N else [],
        extra_generation=_extra_generation(r.generation),
        timings=", ".join(_timing(k, v) for k, v in sorted(r.timings.items())) or "—",
        packages=", ".join(f"{k} {v}" for k, v in sorted(r.packages.items())) or "—",
    )


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def plot_per_group(result: RunResult, path: Path) -> None:
    """Bar per group, sorted by accuracy; blue = consistent group, orange = not."""
    rows = sorted((r for r in result.per_group if r.acc is not None), key=lambda r: (r.acc, r.group_id))
    labelled = len(rows) <= MAX_LABELLED_BARS
    fig = Figure(figsize=(max(6.0, min(14.0, 2 + 0.3 * len(rows))) if labelled else 12.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if rows:
        x = np.arange(len(rows))
        acc = np.array([100 * (r.acc or 0.0) for r in rows])
        colors = ["#3182bd" if r.consistent else "#e6550d" for r in rows]
        ax.bar(x, acc, width=0.8, color=colors, linewidth=0)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        handles: list[Artist] = [Patch(color="#3182bd", label="consistent"),
                                 Patch(color="#e6550d", label="not consistent")]
        mean = result.metrics.get("mean_group_acc")
        if mean is not None and mean.value is not None:
            handles.append(ax.axhline(100 * mean.value, color="black", lw=1, ls="--", label=f"mean {100 * mean.value:.1f} %"))
        ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
        if labelled:
            ax.set_xticks(x, [_plain(r.group_id[:24]) for r in rows], rotation=90, fontsize=7)
        else:
            ax.set_xticks([])
        ax.set_xlabel(f"{len(rows)} groups, sorted by accuracy")
    else:
        ax.text(0.5, 0.5, "no group has a scored anchor or spurious item", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy over anchor + spurious items (%)")
    ax.set_title(_plain(f"Per-group accuracy — {result.model.alias}"), fontsize=10)
    _save(fig, path)


def plot_splits(result: RunResult, path: Path) -> None:
    """Accuracy per split with its bootstrap interval as error bars."""
    present = [(label, result.metrics[k]) for k, label in SPLITS if k in result.metrics]
    present = [(label, m) for label, m in present if m.value is not None or label != "counter"]
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(present))
    vals = np.array([100 * (m.value or 0.0) for _, m in present])
    err = np.array([[100 * (m.value - m.ci_low), 100 * (m.ci_high - m.value)]
                    if m.value is not None and m.ci_low is not None and m.ci_high is not None else [0.0, 0.0]
                    for _, m in present]).reshape(-1, 2).T  # fmt: skip
    colors = ["#636363", "#e6550d", "#31a354", "#3182bd"][: len(present)]
    ax.bar(x, vals, yerr=err, capsize=6, color=colors, width=0.6, linewidth=0)
    for i, (_, m) in enumerate(present):
        text = "n/a" if m.value is None else f"{100 * m.value:.1f} %"
        ax.text(i, vals[i] + err[1][i] + 2, text, ha="center", fontsize=9)
    ax.set_xticks(x, [f"{label}\n(n={m.n})" for label, m in present])
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    level = 100 * result.bootstrap.level
    ax.set_title(_plain(f"{result.model.alias} — accuracy by split ({level:g} % group-bootstrap CI)"), fontsize=10)
    _save(fig, path)


def write_report(result: RunResult, out_dir: Path) -> list[Path]:
    """Write report.md, per_group_accuracy.png and splits.png into out_dir; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, per_group, splits = out / REPORT_MD, out / PER_GROUP_PNG, out / SPLITS_PNG
    md.write_text(render_markdown(result), encoding="utf-8")
    plot_per_group(result, per_group)
    plot_splits(result, splits)
    return [md, per_group, splits]


def _timing(key: str, value: float) -> str:
    """One `timings` entry with its unit: seconds (`*_s`), a rate (`*_per_s`) or a plain count."""
    if key.endswith("_per_s"):
        return f"{key} {value:.1f}/s"
    if key.endswith("_s"):
        return f"{key} {value:.1f} s"
    return f"{key} {value:g}"
