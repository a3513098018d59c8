"""Leaderboard pages, rendered from `leaderboard.json` alone: `README.md` and a self-contained
`index.html` (inline CSS and JS, no network: it works from file://).

Output is a pure function of the board: no clock, no random ids, entries and groups in their given
order, so the same JSON always gives byte-identical files.

Both pages are Jinja2 templates (`templates/`) whose environments escape every printed value
(`spuriverse.templating`), so safety holds by construction. Every string from the board is hostile
input. `clean` first makes control and format characters (newlines, bidi overrides, zero-width
characters) visible as `\\uXXXX` (newlines and tabs become spaces); then markdown cells backslash-escape
the markdown syntax characters and entity-escape `< > &` (`md`), HTML is autoescaped, and the data
embedded for the page's script is JSON with `< > &` U+2028 U+2029 written as `\\u003c` etc., so it can
never close its script tag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from jinja2 import Template

from spuriverse.persist import atomic_write_bytes
from spuriverse.schema import Leaderboard, LeaderboardEntry, MetricValue, PairedTest
from spuriverse.templating import Markup, html_environment, markdown_environment

SOURCE, README, INDEX = "leaderboard.json", "README.md", "index.html"

METRICS: tuple[tuple[str, str], ...] = (
    ("overall_acc", "overall"),
    ("anchor_acc", "anchor"),
    ("spurious_acc", "spurious"),
    ("control_acc", "control"),
    ("group_consistency", "group consistency"),
    ("gap_control_spurious", "gap control−spurious"),
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool
    first_dir: str  # direction of the first click in the page: "asc" | "desc"


COLUMNS: tuple[Column, ...] = (
    Column("rank", "rank", True, "asc"),
    Column("name", "model", False, "asc"),
    Column("model", "model id", False, "asc"),
    *(Column(k, label, True, "desc") for k, label in METRICS),
    Column("failed", "failed %", True, "asc"),
    Column("strategy", "strategy", False, "asc"),
    Column("date", "date", False, "desc"),
    Column("verified", "verified", True, "desc"),
    Column("flags", "flags", False, "asc"),
    Column("next", "≠ next", True, "asc"),
)


@dataclass(frozen=True)
class Cell:
    """One table cell, unescaped: `main` and a smaller `sub` text, the page's sort key, a tooltip.
    `ours`: the text is formatted numbers only (no user string), written to markdown as is."""

    main: str
    sub: str = ""
    sort: float | str | None = None
    title: str = ""
    ours: bool = False


# ---------------------------------------------------------------------------------------------
# escaping


def clean(text: object) -> str:
    """Printable text: newlines, tabs and other spaces become " "; every other invisible or control
    character (bidi overrides, zero-width, BOM, lone surrogates) is shown as \\uXXXX."""
    s = str(text)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        if ch.isprintable():
            out.append(ch)
        elif ch in "\n\r\t" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            cp = ord(ch)
            out.append(f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")
    return "".join(out)


_MD = str.maketrans({
    "\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "~": "\\~",
    "<": "&lt;", ">": "&gt;", "&": "&amp;",
})  # fmt: skip


def md(text: object) -> str:
    """Safe inside a GitHub-markdown table cell: no table break, link, emphasis, code or raw HTML."""
    return clean(text).translate(_MD)


def _finite(obj: object) -> object:
    """NaN / infinity (which the schema lets through in nested MetricValues) as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def script_json(data: object) -> str:
    """JSON for a <script type="application/json"> element: ASCII only, and `<`, `>`, `&`
    (hence `</script>` and `<!--`) never appear raw; the escapes are still valid JSON.
    Non-finite numbers become null (JSON has no NaN)."""
    try:
        text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # U+2028/9: ensure_ascii


# ---------------------------------------------------------------------------------------------
# cells (shared by both pages)


def pct(x: float | None, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _metric(m: MetricValue | None, signed: bool) -> Cell:
    if m is None or m.value is None or not math.isfinite(m.value):
        return Cell("—", title="no data")
    ci = f"[{pct(m.ci_low, signed)}, {pct(m.ci_high, signed)}]" if m.ci_low is not None and m.ci_high is not None else ""
    return Cell(pct(m.value, signed), ci, m.value, f"n = {m.n}", ours=True)


def _p(p: float | None) -> str:
    return "" if p is None else ("(p < 0.001)" if p < 0.001 else f"(p = {p:.3f})")


def _next(t: PairedTest | None) -> Cell:
    if t is None:
        return Cell("—")
    diff = f"diff {pct(t.diff, True)} pp" if t.diff is not None else "diff —"
    if t.diff_ci is not None:
        diff += f" [{pct(t.diff_ci[0], True)}, {pct(t.diff_ci[1], True)}]"
    sort = t.p_value if t.p_value is not None else (0.0 if t.significant else 1.0)
    return Cell("yes" if t.significant else "no", _p(t.p_value), sort, f"vs {t.other}: {diff} ({t.method})")


def entry_cells(rank: int, e: LeaderboardEntry) -> list[Cell]:
    """The row of one entry, in COLUMNS order."""
    tags = ", ".join(t for t, on in (("circular", e.circular), ("blind", e.blind)) if on)
    tags = f"({tags})" if tags else ""
    ckpt = e.checkpoint + (f"@{e.revision}" if e.revision else "")
    date = e.submitted.split("T")[0][:10]
    return [
        Cell(str(rank), sort=rank, ours=True),
        Cell(e.display_name, "(baseline)" if e.baseline else "", clean(e.display_name).casefold(), e.slug),
        Cell(e.model, sort=clean(e.model).casefold(), title=f"{e.backend}: {ckpt}"),
        *(_metric(e.metrics.get(k), k.startswith("gap_")) for k, _ in METRICS),
        Cell(pct(e.failed_rate), sort=e.failed_rate,
             title=f"failed {pct(e.failed_rate)} %, unparsed {pct(e.unparsed_rate)} %", ours=True),
        Cell(e.strategy, tags, e.strategy, f"scoring: {e.scoring}, seed {e.seed}"),
        Cell(date, sort=date, title=e.submitted),
        Cell("✓" if e.verified else "✗", sort=int(e.verified),
             title="metrics recomputed from the samples" if e.verified else "not recomputed"),
        Cell("; ".join(e.flags) or "—", sort="; ".join(e.flags) or None),
        _next(e.vs_next),
    ]


def _policy(board: Leaderboard) -> str:
    p = board.policy
    action = "rejected" if p.on_exceed == "reject" else "flagged"
    return (f"runs with more than {100 * p.max_failed_rate:g} % failed or unparsed items are {action}; "
            f"each entry is compared with the next one down by a paired test at α = {p.alpha:g}")


# ---------------------------------------------------------------------------------------------
# the pages: templates/README.md.j2 and templates/index.html.j2


@cache
def _templates() -> tuple[Template, Template]:
    """(README.md, index.html): every printed value is escaped for its page unless it is Markup."""
    readme = markdown_environment("spuriverse.leaderboard", md).get_template("README.md.j2")
    index = html_environment("spuriverse.leaderboard", clean).get_template("index.html.j2")
    return readme, index


def render_markdown(board: Leaderboard) -> str:
    # cells of our own formatting (numbers) are written as they are, the others escaped
    rows = [[Markup(c.main + (" " + c.sub if c.sub else "")) if c.ours else c.main + (" " + c.sub if c.sub else "")
             for c in entry_cells(rank, e)] for rank, e in enumerate(board.entries, 1)]
    return _templates()[0].render(board=board, policy=_policy(board), columns=COLUMNS, rows=rows)


@cache
def _asset(name: str) -> str:
    text = resources.files("spuriverse.leaderboard").joinpath(name).read_text("utf-8")
    low = text.lower()
    if "</script" in low or "</style" in low or "<!--" in low:
        raise ValueError(f"{name} must not contain a closing script/style tag")
    return text


def _csp(js: str) -> str:
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class _Row:
    rank: int
    classes: str
    cells: list[tuple[Column, Cell, str]]  # (column, cell, its sort key as the page reads it)


def _row(rank: int, e: LeaderboardEntry) -> _Row:
    classes = " ".join(c for c, on in (("baseline", e.baseline), ("flagged", e.flags), ("unverified", not e.verified))
                       if on)
    cells = [(col, c, "" if c.sort is None else (repr(float(c.sort)) if col.numeric else str(c.sort)))
             for c, col in zip(entry_cells(rank, e), COLUMNS)]
    return _Row(rank, classes, cells)


def render_html(board: Leaderboard) -> str:
    # our own CSS, JS and CSP, and the board as script-safe JSON, go in as they are; all else is escaped
    css, js = _asset("page.css"), _asset("page.js")
    return _templates()[1].render(
        board=board, policy=_policy(board), columns=COLUMNS, csp=Markup(_csp(js)), css=Markup(css), js=Markup(js),
        rows=[_row(rank, e) for rank, e in enumerate(board.entries, 1)],
        data=Markup(script_json(board.model_dump(mode="json"))),
    )


def render_board(board_dir: Path) -> list[Path]:
    """Validate `board_dir/leaderboard.json` and (re)write README.md and index.html atomically."""
    board_dir = Path(board_dir)
    board = Leaderboard.model_validate_json((board_dir / SOURCE).read_bytes())
    out = []
    for name, text in ((README, render_markdown(board)), (INDEX, render_html(board))):
        atomic_write_bytes(board_dir / name, text.encode("utf-8"))
        out.append(board_dir / name)
    return out
