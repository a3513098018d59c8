"""The diagnosis as a page: `report.md` and `report.html`, with `images/` (the query images and the
training images that appear in a strip). Per query: its answer, the measurement, the spurious-support
ratio, and strips of the most supporting and most opposing training images with their scores; then
the per-group summary and the training examples with the highest self-influence."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from spuriverse.persist import atomic_write_bytes, atomic_write_text
from spuriverse.schema.core import LETTERS, MetricValue
from spuriverse.schema.influence import (
    InfluenceManifest,
    Influential,
    InfluenceSummary,
    QueryInfluence,
    SelfInfluenceRow,
)
from spuriverse.train.data import TrainExample

N_SELF = 20
CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
.strip{display:flex;gap:6px;flex-wrap:wrap;margin:4px 0 12px}
.cell{text-align:center;font-size:11px;width:84px;word-break:break-all}
.cell img,.q img{width:80px;height:80px;object-fit:contain;image-rendering:pixelated;border:3px solid #ddd}
.cue img{border-color:#d33;outline:2px solid #d33;outline-offset:2px}
b.c{color:#d33}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}
.q{display:flex;gap:12px;align-items:flex-start}"""


class _Images:
    """Writes each image once, under a name derived from its position (never from an id)."""

    def __init__(self, out: Path) -> None:
        self.out, self.done = out, set[str]()

    def path(self, prefix: str, index: int, data: bytes | None) -> str | None:
        if data is None:
            return None
        try:
            fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
        except (UnidentifiedImageError, OSError):
            return None
        name = f"images/{prefix}{index:06d}.{'jpg' if fmt == 'jpeg' else fmt}"
        if name not in self.done:
            atomic_write_bytes(self.out / name, data)
            self.done.add(name)
        return name


def _fmt(m: MetricValue) -> str:
    if m.value is None:
        return "n/a"
    ci = f" [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None and m.ci_high is not None else ""
    return f"{m.value:.3f}{ci} (n={m.n})"


def _strip_cells(items: Sequence[Influential], index: dict[str, int], train: Sequence[TrainExample],
                 images: _Images) -> list[tuple[str | None, str, bool]]:
    cells = []
    for it in items:
        i = index[it.train_id]
        cells.append((images.path("t", i, train[i].image), f"{it.train_id} {it.score:+.3g}", bool(it.has_cue)))
    return cells


def _html_strip(cells: list[tuple[str | None, str, bool]]) -> str:
    parts = [f'<div class="cell{" cue" if cue else ""}"><img src="{html.escape(src or "")}" alt=""><br>'
             f'{"<b class=c>cue</b> " if cue else ""}{html.escape(label)}</div>' for src, label, cue in cells]
    return f'<div class="strip">{"".join(parts)}</div>'


def _md_strip(cells: list[tuple[str | None, str, bool]]) -> str:
    if not cells:
        return "(none)\n"
    head = " | ".join(f"![]({src})" if src else "-" for src, _, _ in cells)
    labels = " | ".join(f"{label}{' **cue**' if cue else ''}" for _, label, cue in cells)
    return f"| {head} |\n|{'---|' * len(cells)}\n| {labels} |\n"


def _query_text(r: QueryInfluence, q: TrainExample) -> str:
    opts = "  ".join(f"({LETTERS[k]}) {o}" for k, o in enumerate(q.options))
    ratio = "no cue" if r.spurious_support is None else (
        f"{r.spurious_support.value:.2f} [{r.spurious_support.ci_low:.2f}, {r.spurious_support.ci_high:.2f}] of "
        f"{r.spurious_support.k} (base rate {r.spurious_support.base_rate:.3f})")
    return (f"{q.question} {opts} | answer {r.answer}, model {r.predicted}, measured {r.measured} "
            f"(f = {r.measurement:+.3f}) | cue: {r.cue or 'none'} | spurious support: {ratio}")


def write_report(out: Path, manifest: InfluenceManifest, summary: InfluenceSummary, records: Sequence[QueryInfluence],
                 self_rows: Sequence[SelfInfluenceRow], train: Sequence[TrainExample],
                 queries: Sequence[TrainExample]) -> None:
    images = _Images(out)
    index = {ex.item_id: i for i, ex in enumerate(train)}
    qindex = {ex.item_id: i for i, ex in enumerate(queries)}
    c = manifest.config
    head = (f"Training run {c.train_run}, method {c.method}, measurement {c.measurement}, top-{c.top_k}; "
            f"{manifest.n_train} training examples, {manifest.n_queries} queries. {manifest.sign_convention} "
            "In the strips, a red outline and the word 'cue' mark a training example that carries the query's cue.")
    overall = [("all queries with a cue", summary.overall), ("answered wrong", summary.overall_wrong),
               ("base rate of their cues", summary.base_rate)]
    md = [f"# Influence diagnosis\n\n{head}\n\n## Spurious-support ratio\n\n| | mean [95% CI] |\n|---|---|"]
    md += [f"| {name} | {_fmt(m)} |" for name, m in overall]
    doc = [f"<h1>Influence diagnosis</h1><p>{html.escape(head)}</p><h2>Spurious-support ratio</h2><table>"]
    doc += [f"<tr><td>{html.escape(name)}</td><td>{html.escape(_fmt(m))}</td></tr>" for name, m in overall]
    doc.append("</table><h3>Per group</h3><table><tr><th>group</th><th>queries</th><th>wrong</th><th>ratio</th>"
               "<th>base rate</th></tr>")
    md.append("\n### Per group\n\n| group | queries | wrong | ratio | base rate |\n|---|---|---|---|---|")
    for g in summary.groups:
        base = "n/a" if g.base_rate is None else f"{g.base_rate:.3f}"
        md.append(f"| {g.group_id} | {g.n_queries} | {g.n_answered_wrong} | {_fmt(g.ratio)} | {base} |")
        doc.append(f"<tr><td>{html.escape(g.group_id)}</td><td>{g.n_queries}</td><td>{g.n_answered_wrong}</td>"
                   f"<td>{html.escape(_fmt(g.ratio))}</td><td>{base}</td></tr>")
    doc.append("</table><h2>Queries</h2>")
    md.append("\n## Queries\n")
    for r in records:
        q = queries[qindex[r.item_id]]
        src, text = images.path("q", qindex[r.item_id], q.image), _query_text(r, q)
        sup, opp = (_strip_cells(x, index, train, images) for x in (r.supporting, r.opposing))
        md.append(f"### {r.item_id}\n\n{f'![]({src})' if src else ''}\n\n{text}\n\nSupporting:\n\n{_md_strip(sup)}\n"
                  f"Opposing:\n\n{_md_strip(opp)}")
        doc.append(f'<h3>{html.escape(r.item_id)}</h3><div class="q"><img src="{html.escape(src or "")}" alt="">'
                   f"<p>{html.escape(text)}</p></div><b>supporting</b>{_html_strip(sup)}<b>opposing</b>{_html_strip(opp)}")
    top = sorted(self_rows, key=lambda r: -r.self_influence)[:N_SELF]
    cells = [(images.path("t", index[r.train_id], train[index[r.train_id]].image),
              f"{r.train_id} {r.self_influence:.3g} (loss {r.loss:.2f})", False) for r in top]
    md.append(f"## Highest self-influence (atypical or mislabelled?)\n\n{_md_strip(cells)}")
    doc.append(f"<h2>Highest self-influence (atypical or mislabelled?)</h2>{_html_strip(cells)}")
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    atomic_write_text(out / "report.html", f"<!doctype html><html><head><meta charset='utf-8'><title>Influence "
                      f"diagnosis</title><style>{CSS}</style></head><body>{''.join(doc)}</body></html>\n")
