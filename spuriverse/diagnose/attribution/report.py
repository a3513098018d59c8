"""The end of an attribution run: rows merged in benchmark order, `summary.json`, the figures (an overlay
per item, a grid per group: anchor vs its spurious images) and `report.md` / `report.html`."""

from __future__ import annotations

import html
import io
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from spuriverse.diagnose.attribution.files import (
    MANIFEST, REPORT_HTML, REPORT_MD, ROWS, SANITY, SUMMARY, read_map, read_rows, read_sanity, slug, write_canonical,
)
from spuriverse.diagnose.attribution.summary import summarize
from spuriverse.persist import atomic_write_bytes, atomic_write_text
from spuriverse.schema import Item, MetricValue
from spuriverse.schema.attribution import AttributionManifest, AttributionRow, AttributionSummary

if TYPE_CHECKING:
    from spuriverse.diagnose.attribution.runner import AttributionRun

GRID_COLUMNS = 12
SIGNED = {"ig", "input_x_gradient", "occlusion"}  # maps with a sign (the others are non-negative)
COLUMNS = (("cue_mass", "cue mass"), ("core_mass", "core mass"), ("cue_area", "cue area"), ("core_area", "core area"),
           ("pointing_cue", "points at cue"), ("pointing_core", "points at core"), ("deletion_auc", "deletion AUC"),
           ("insertion_auc", "insertion AUC"), ("infidelity", "infidelity"), ("sensitivity_max", "sensitivity-max"),
           ("accuracy", "accuracy"))


def finish(run: AttributionRun, selected: list[tuple[int, Item]]) -> AttributionSummary:
    """Merge, summarise, draw and report (main process)."""
    order = {m: k for k, m in enumerate(run.config.methods)}
    rows = read_rows(run.run_dir)
    write_canonical(run.run_dir, ROWS, rows, key=lambda r: (r.index, order.get(r.method, len(order))))
    sanity = read_sanity(run.run_dir)
    index = {it.item_id: i for i, it in selected}
    write_canonical(run.run_dir, SANITY, sanity, key=lambda s: (index.get(s.item_id, -1), s.item_id,
                                                                 order.get(s.method, len(order))))
    manifest = AttributionManifest.model_validate_json((run.run_dir / MANIFEST).read_text("utf-8"))
    summary = summarize(run.run_dir, run.config, manifest.invariance, rows, sanity, run.opts.n_bootstrap)
    atomic_write_text(run.run_dir / SUMMARY, summary.model_dump_json(indent=2) + "\n")
    grids = draw_figures(run, rows)
    atomic_write_text(run.run_dir / REPORT_MD, render_markdown(manifest, summary, grids))
    atomic_write_text(run.run_dir / REPORT_HTML, render_html(manifest, summary, grids))
    return summary


# -- figures (drawn with numpy + PIL: a matplotlib figure per item costs ~1 s) ------------------------
CELL = 112  # pixels of the longer side of one panel
MASK_COLOURS = ((0, 255, 0), (255, 0, 0))  # core green, cue red


def _boundary(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _panel(image: np.ndarray, raster: np.ndarray | None, method: str, masks: tuple) -> Image.Image:
    """The image (and the map over it, 60 % opaque: signed maps blue-white-red around 0, non-negative ones
    inferno), mask outlines on top, scaled to `CELL`."""
    import matplotlib

    h, w = image.shape[:2]
    size = (max(1, round(w * CELL / max(h, w))), max(1, round(h * CELL / max(h, w))))
    out = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.NEAREST), dtype=np.float32) / 255
    if raster is not None:
        if method in SIGNED:
            lim = float(np.abs(raster).max()) or 1.0
            rgb = matplotlib.colormaps["bwr"]((raster / lim + 1) / 2)[..., :3]
        else:
            lo, hi = float(raster.min()), float(raster.max())
            rgb = matplotlib.colormaps["inferno"]((raster - lo) / ((hi - lo) or 1.0))[..., :3]
        heat = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).resize(size, Image.Resampling.NEAREST), np.float32) / 255
        out = 0.4 * out + 0.6 * heat
    out = (out * 255).astype(np.uint8)
    for mask, colour in zip(masks, MASK_COLOURS):
        if mask is not None and mask.any() and not mask.all():
            big = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 127
            out[_boundary(big)] = colour
    return Image.fromarray(out)


def _figure(path: Path, cells: list[list[Image.Image]], col_titles: list[str], row_titles: list[str]) -> None:
    """A sheet of panels with column and row titles, written atomically as PNG."""
    from PIL import ImageDraw

    left, top, pad = 72, 16, 4
    sheet = Image.new("RGB", (left + len(cells[0]) * (CELL + pad), top + len(cells) * (CELL + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(col_titles):
        draw.text((left + c * (CELL + pad), 2), title[:18], fill="black")
    for r, row in enumerate(cells):
        y = top + r * (CELL + pad)
        draw.text((2, y + CELL // 2 - 6), row_titles[r][:11], fill="black")
        for c, panel in enumerate(row):
            sheet.paste(panel, (left + c * (CELL + pad), y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def draw_figures(run: AttributionRun, rows: list[AttributionRow]) -> dict[str, str]:
    """Overlay PNGs (one per item: the image, then each method; masks outlined: core green, cue red) and one
    grid per group with several items (anchor first, then spurious, counter, control; at most
    `GRID_COLUMNS`). Streams the items; only the small panels of a group's first columns are kept.
    Returns group -> grid path (relative)."""
    from spuriverse.diagnose.attribution.runner import load_item

    methods = run.config.methods
    by_item: dict[str, dict[str, AttributionRow]] = defaultdict(dict)
    for r in rows:
        by_item[r.item_id][r.method] = r
    wanted = {r.index for r in rows}
    rank = {"anchor": 0, "spurious": 1, "counter": 2, "control": 3}
    groups: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for li in run.bench.iter_items(lambda i, _: i in wanted):
        it = load_item(run, li)
        image, masks = np.asarray(it.request.image.pil()), (it.core, it.cue)  # type: ignore[union-attr]
        mine = by_item[li.item.item_id]
        panels = [_panel(image, None, "", masks)] + [
            _panel(image, read_map(run.run_dir, mine[m].map_file) if m in mine else None, m, masks) for m in methods]
        overlay = run.run_dir / "overlays" / f"{slug(li.item.item_id)}.png"
        if not overlay.exists():
            _figure(overlay, [panels], ["image", *methods], [li.item.variant])
        members = groups[li.item.group_id]
        members.append((rank[li.item.variant], li.item.item_id, li.item.variant, panels))
        members.sort(key=lambda m: (m[0], m[1]))
        del members[GRID_COLUMNS:]
    grids = {}
    for group, members in groups.items():
        if len(members) < 2:
            continue
        cells = [[m[3][k] for m in members] for k in range(len(methods) + 1)]
        rel = Path("grids") / f"{slug(group)}.png"
        _figure(run.run_dir / rel, cells, [m[2] for m in members], ["image", *methods])
        grids[group] = rel.as_posix()
    return grids


# -- text ---------------------------------------------------------------------------------------------
def fmt(m: MetricValue | None) -> str:
    if m is None or m.value is None:
        return "-"
    ci = f" [{m.ci_low:.3g}, {m.ci_high:.3g}]" if m.ci_low is not None and m.ci_high is not None else ""
    return f"{m.value:.3g}{ci}"


def _tables(summary: AttributionSummary) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the markdown and the HTML report."""
    used = [(k, label) for k, label in COLUMNS if any(k in r.metrics for r in summary.rows)]
    tables = []
    for scope, test in (("by variant", lambda s: not s.startswith("group:")), ("by group", lambda s: s.startswith("group:"))):
        body = [[r.method, r.slice, str(r.n_items), *(fmt(r.metrics.get(k)) for k, _ in used)]
                for r in summary.rows if test(r.slice)]
        if body:
            tables.append((f"Scores {scope} (mean [95% group-bootstrap interval])",
                           ["method", "slice", "items", *(label for _, label in used)], body))
    if summary.agreement:
        tables.append(("Cross-method agreement (Spearman rank correlation of the maps)", ["methods", "mean"],
                       [[k.replace("|", " vs "), fmt(v)] for k, v in summary.agreement.items()]))
    if summary.sanity:
        tables.append(("Model-randomisation sanity check (Spearman, trained vs all weights redrawn: "
                       "low means the map depends on the model)", ["method", "mean"],
                       [[k, fmt(v)] for k, v in summary.sanity.items()]))
    return tables


def _header(manifest: AttributionManifest, summary: AttributionSummary) -> list[str]:
    c = manifest.config
    raw = " **(raw pre-softmax logits: NOT shift-invariant; see Lerma & Lucas, arXiv 2307.03305)**" if (
        c.raw_logits and "not shift-invariant" in manifest.invariance) else ""
    return [
        f"Model: {manifest.model.alias} ({manifest.model.checkpoint}); dataset: {manifest.benchmark.source} "
        f"({summary.n_items} items)",
        f"Target: `{c.target}` letter score; {manifest.invariance}{raw}",
        f"Methods: {', '.join(c.methods)} (captum); gradient methods on the {c.input}; IG {c.ig_steps} steps; "
        f"baseline: {manifest.baseline_description}",
        "Maps are on the original image raster. Masses and pointing use absolute attribution; an area is the "
        "mask's share of the image (the mass of a uniform map). Overlays: core mask green, cue mask red.",
    ]


def render_markdown(manifest: AttributionManifest, summary: AttributionSummary, grids: dict[str, str]) -> str:
    lines = ["# Attribution report", ""] + [f"- {h}" for h in _header(manifest, summary)] + [""]
    for title, head, body in _tables(summary):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body] + [""]
    if grids:
        lines += ["## Groups: anchor vs spurious images", ""]
        lines += [f"### {g}\n\n![{g}]({p})\n" for g, p in grids.items()]
    return "\n".join(lines) + "\n"


def render_html(manifest: AttributionManifest, summary: AttributionSummary, grids: dict[str, str]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Attribution report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style></head><body>",
             "<h1>Attribution report</h1><ul>"]
    parts += [f"<li>{e(h).replace('**', '')}</li>" for h in _header(manifest, summary)] + ["</ul>"]
    for title, head, body in _tables(summary):
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body]
        parts.append("</table>")
    if grids:
        parts.append("<h2>Groups: anchor vs spurious images</h2>")
        parts += [f"<h3>{e(g)}</h3><img src='{e(p)}' alt='{e(g)}'>" for g, p in grids.items()]
    return "".join(parts) + "</body></html>\n"
