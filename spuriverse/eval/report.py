"""Human-readable report of one run: `report.md` plus two plots, all from `results.json` alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from spuriverse.schema import GroupRow, MetricValue, RunResult

REPORT_MD, PER_GROUP_PNG, SPLITS_PNG = "report.md", "per_group_accuracy.png", "splits.png"
WORST_N = 20  # per-group rows shown before the collapsed full table
MAX_LABELLED_BARS = 40

METRIC_LABELS: dict[str, str] = {
    "overall_acc": "Overall accuracy (anchor + spurious)",
    "anchor_acc": "Anchor accuracy (real images)",
    "spurious_acc": "Spurious-group accuracy (with cue)",
    "counter_acc": "Counter accuracy (without cue)",
    "control_acc": "Control accuracy (non-spurious)",
    "mean_group_acc": "Mean group accuracy",
    "group_consistency": "Group consistency (anchor and all spurious right)",
    "bottom_decile_group_acc": "Bottom-decile group accuracy",
    "worst_group_acc": "Worst-group accuracy",
    "gap_control_anchor": "Gap: control − anchor",
    "gap_control_spurious": "Gap: control − spurious",
    "gap_counter_spurious": "Gap: counter − spurious (groups with counters)",
    "failed_rate": "Failed rate",
    "unparsed_rate": "Unparsed rate",
}
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


def _extra_generation(g) -> list[tuple[str, object]]:
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


def _metrics_table(metrics: dict[str, MetricValue], level: float) -> list[str]:
    keys = [k for k in METRIC_LABELS if k in metrics] + sorted(k for k in metrics if k not in METRIC_LABELS)
    lines = [f"| metric | value | {100 * level:g} % CI | n |", "|---|---:|---:|---:|"]
    for k in keys:
        value, ci = _metric_cells(k, metrics[k])
        lines.append(f"| {_esc(METRIC_LABELS.get(k, k))} (`{_esc(k)}`) | {value} | {ci} | {metrics[k].n} |")
    return lines


def _breakdown_table(values: dict[str, MetricValue], level: float) -> list[str]:
    lines = [f"| value | accuracy | {100 * level:g} % CI | n |", "|---|---:|---:|---:|"]
    for name, m in values.items():
        value, ci = _metric_cells("acc", m)
        lines.append(f"| {_esc(name)} | {value} | {ci} | {m.n} |")
    return lines


def _mark(flag: bool | None) -> str:
    return "—" if flag is None else ("✓" if flag else "✗")


def _group_table(rows: list[GroupRow]) -> list[str]:
    lines = [
        "| group | source | spurious attribute | items | acc | anchor | spurious | counter | consistent | failed | unparsed |",
        "|---|---|---|---:|---:|:-:|---:|---:|:-:|---:|---:|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {_esc(r.group_id)} | {_esc(r.source_benchmark)} | {_esc(r.spurious_attribute)} | {r.n_items} | "
            f"{_pct(r.acc)} | {_mark(r.anchor_correct)} | {_pct(r.spurious_acc)} | {_pct(r.counter_acc)} | "
            f"{_mark(r.consistent)} | {r.n_failed} | {r.n_unparsed} |"
        )
    return lines


def _worst_first(rows: list[GroupRow]) -> list[GroupRow]:
    return sorted(rows, key=lambda r: (r.acc is None, r.acc if r.acc is not None else 0.0, r.group_id))


def render_markdown(result: RunResult) -> str:
    """The text of report.md."""
    r, b, m, h, f = result, result.benchmark, result.model, result.harness, result.failures
    level = r.bootstrap.level
    where = "/".join(x for x in (b.config, b.split) if x) or "default"
    rev = f"@{_esc(b.revision)}" if b.revision else ""
    out = [
        f"# SpuriVerse report: {_esc(m.alias)} ({_code(m.checkpoint)})",
        "",
        f"Benchmark {_code(b.source)} ({_esc(where)}{rev}), fingerprint {_code(b.fingerprint[:12])} — "
        f"{b.n_items} items in {b.n_groups} groups ("
        + ", ".join(f"{_esc(k)} {v}" for k, v in sorted(b.counts.items())) + "). "
        f"Strategy `{r.strategy}`, scoring `{r.scoring}`{', CircularEval' if r.circular else ''}"
        f"{', blind (no image)' if m.blind else ''}. Created {_esc(r.created)}.",
        "",
        *([f"> **Note:** {_esc(m.note)}", ""] if m.note else []),
        "## Metrics",
        "",
        *_metrics_table(r.metrics, level),
        "",
        f"Failures: failed {f.n_failed} ({_pct(f.failed_rate)} %), unparsed {f.n_unparsed} "
        f"({_pct(f.unparsed_rate)} %) of {f.n_samples} items — "
        + ("counted as wrong." if r.failures_count_as_wrong else "excluded from accuracy denominators.")
        + (f" Missing (no complete sample): {f.n_missing}." if f.n_missing else "")
        + (" By type: " + ", ".join(f"{_esc(k)} {v}" for k, v in sorted(f.by_type.items())) + "." if f.by_type else ""),
        "",
        (f"Intervals: {100 * level:g} % percentile bootstrap over whole groups (control items as their own "
         f"clusters), {r.bootstrap.iterations} iterations, seed {r.bootstrap.seed}; none where fewer than 2 "
         "groups (clusters) contribute." if r.bootstrap.iterations else "Intervals: not computed (bootstrap off).")
        + " Gaps are in percentage points.",
        "",
        f"![accuracy by split]({SPLITS_PNG})",
        "",
    ]
    if r.breakdowns:
        out += ["## Breakdowns", ""]
        for name, values in r.breakdowns.items():
            out += [f"### {_esc(BREAKDOWN_TITLES.get(name, name))}", "", *_breakdown_table(values, level), ""]
    rows = _worst_first(r.per_group)
    out += ["## Per group", "", f"![per-group accuracy]({PER_GROUP_PNG})", ""]
    if rows:
        out += [f"Worst {min(WORST_N, len(rows))} of {len(rows)} groups:", "", *_group_table(rows[:WORST_N]), ""]
    if len(rows) > WORST_N:
        full = sorted(r.per_group, key=lambda g: g.group_id)
        out += [f"<details><summary>All {len(rows)} groups</summary>", "", *_group_table(full), "", "</details>", ""]
    timings = ", ".join(f"{_esc(k)} {v:.1f} s" for k, v in sorted(r.timings.items())) or "—"
    packages = ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in sorted(r.packages.items())) or "—"
    g = r.generation
    out += [
        "## Run",
        "",
        f"- Model: alias {_code(m.alias)}, backend {_code(m.backend)}, checkpoint {_code(m.checkpoint)}"
        f"{', revision ' + _code(m.revision) if m.revision else ''}{', dtype ' + _esc(m.dtype) if m.dtype else ''}"
        f"{', device ' + _esc(m.device) if m.device else ''}"
        f"{', provider ' + _code(m.provider) if m.provider else ''}"
        f"{', quantization ' + _esc(m.quantization) if m.quantization else ''}",
        f"- Benchmark: {_code(b.source)}, layout {b.layout}, fingerprint {_code(b.fingerprint)}",
        f"- Strategy `{r.strategy}`, scoring `{r.scoring}`, CircularEval {'on' if r.circular else 'off'}, seed {r.seed}",
        f"- Generation: max_new_tokens {g.max_new_tokens}, do_sample {g.do_sample}, temperature "
        + ("provider default" if g.temperature is None else f"{g.temperature:g}")
        + "".join(f", {k} {_esc(str(v))}" for k, v in _extra_generation(g))
        + (f", top_logprobs {g.top_logprobs}" if g.top_logprobs is not None else ""),
        f"- Prompt hash {_code(r.prompt_hash)}, parser version {_code(r.parser_version)}",
        f"- Harness: spuriverse {_esc(h.version)}, commit {_code((h.git_commit or 'unknown')[:12])}"
        + ("" if h.dirty is None else (", dirty working tree" if h.dirty else ", clean")),
        f"- Timings: {timings}",
        f"- Packages: {packages}",
        f"- Samples: {_code(r.samples_file)}" + (f" (sha256 {_code(r.samples_sha256[:16] + '…')})" if r.samples_sha256 else ""),
        f"- Schema version {_esc(r.schema_version)}",
        "",
    ]
    return "\n".join(out)


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
        handles = [Patch(color="#3182bd", label="consistent"), Patch(color="#e6550d", label="not consistent")]
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
