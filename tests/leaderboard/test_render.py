"""Leaderboard pages (README.md, index.html): content, escaping of hostile strings, embedded data,
determinism, atomic writes, speed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from html.parser import HTMLParser

import pytest
from pydantic import ValidationError

from spuriverse.leaderboard.render import (
    COLUMNS,
    clean,
    render_board,
    render_html,
    render_markdown,
)
from spuriverse.schema import Leaderboard, LeaderboardEntry, MetricValue, PairedTest

METRIC_KEYS = ("overall_acc", "anchor_acc", "spurious_acc", "counter_acc", "control_acc", "mean_group_acc",
               "group_consistency", "gap_control_spurious")  # fmt: skip
EVIL_SCRIPT = "<script>alert(1)</script>"
HOSTILE = [
    EVIL_SCRIPT,
    "pipe | name\nwith newline\r| and more |",
    "bidi \u202eevil\u202c zero\u200bwidth\u200d\ufeff",
    "[click](https://evil.example) **bold** `code` _em_ ~strike~ &amp; <b>x</b> <!-- c -->",
    "back\\slash \\| escaped pipe",
]
HOSTILE_MODEL = "../../etc/passwd"


def metric(v: float | None, n: int = 100, half: float = 0.04) -> MetricValue:
    if v is None:
        return MetricValue(value=None, n=0)
    return MetricValue(value=v, ci_low=round(v - half, 6), ci_high=round(v + half, 6), n=n)


def make_entry(i: int, groups: list[str], *, name: str | None = None, model: str | None = None,
               baseline: bool = False, flags: list[str] | None = None, verified: bool = True,
               anchor: float | None = -1.0) -> LeaderboardEntry:
    """Entry i: accuracy falls with i (so the given order is a valid ranking)."""
    base = 0.9 - 0.6 * i / (i + 10)
    metrics = {k: metric(round(base - 0.01 * j, 6)) for j, k in enumerate(METRIC_KEYS)}
    metrics["anchor_acc"] = metric(round(0.35 + ((i * 37) % 50) / 100, 6) if anchor == -1.0 else anchor)
    metrics["gap_control_spurious"] = metric(round(0.05 + 0.003 * i, 6), half=0.02)
    per_group = {g: round(((i * 7 + k * 13) % 101) / 100, 4) for k, g in enumerate(groups)}
    if groups and i % 3 == 1:
        per_group[groups[0]] = None  # a group without data
    return LeaderboardEntry(
        slug=f"model-{i:04d}", display_name=name if name is not None else f"Model {i}",
        model=model if model is not None else f"org/model-{i}", backend="hf", checkpoint=f"org/model-{i}",
        revision="abc123" if i % 2 else None, strategy=("direct", "cot", "spurious_aware")[i % 3],
        scoring="generate", circular=i % 4 == 0, prompt_hash="ph", parser_version="1", config_key=f"k{i}",
        submitted=f"2026-10-{1 + i % 28:02d}T12:00:00+00:00", run_created="2026-10-01T00:00:00+00:00",
        harness_version="0.1.0", baseline=baseline, verified=verified, flags=flags or [], metrics=metrics,
        failed_rate=0.001 * (i % 7), unparsed_rate=0.002, n_items=500, per_group=per_group,
        samples_sha256="0" * 64,
    )


def make_board(n: int = 8, n_groups: int = 6, names: list[str] | None = None, models: list[str] | None = None,
               **entry_kw) -> Leaderboard:
    """n entries (the last two are baselines, entry 2 is flagged, entry 3 unverified), vs_next set."""
    groups = [f"group-{k:03d}" for k in range(n_groups)]
    entries = []
    for i in range(n):
        entries.append(make_entry(
            i, groups, name=names[i] if names and i < len(names) else None,
            model=models[i] if models and i < len(models) else None, baseline=i >= n - 2,
            flags=["7.2 % of items failed or unparsed (policy limit 5.0 %)"] if i == 2 else None,
            verified=i != 3, **entry_kw))  # fmt: skip
    for i in range(n - 1):
        p = 0.0004 if i % 2 == 0 else 0.41
        vs = PairedTest(other=entries[i + 1].slug, diff=0.02, diff_ci=(0.005, 0.035) if i % 2 == 0 else None,
                        p_value=p, method="mcnemar-exact", significant=p < 0.05)
        entries[i] = entries[i].model_copy(update={"vs_next": vs})
    return Leaderboard(name="spuriverse-v1", fingerprint="f" * 16, updated="2026-11-01T00:00:00+00:00",
                       groups=groups, entries=entries)


def table_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("|")]


def split_row(line: str) -> list[str]:
    """Cells of a markdown table row, honouring backslash escapes (so `\\|` stays in its cell)."""
    cells, cur, tokens = [], "", re.findall(r"\\.|[^\\|]+|\|", line)
    for t in tokens:
        if t == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += t
    assert cur.strip() == "", line
    return [c.strip() for c in cells[1:]]


class _Tables(HTMLParser):
    """Collects <script> tags and the text of each #board body row's cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict] = []
        self.rows: list[list[str]] = []
        self.in_board = self.in_body = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        elif tag == "table" and a.get("id") == "board":
            self.in_board = True
        elif tag == "tbody" and self.in_board:
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append([])
        elif tag == "td" and self.in_body:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.in_board = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parse_html(text: str) -> _Tables:
    p = _Tables()
    p.feed(text)
    p.close()
    return p


def embedded_json(text: str) -> str:
    m = re.search(r'<script type="application/json" id="board-data">(.*?)</script>', text, re.S)
    assert m, "no embedded board data"
    return m.group(1)


# ---------------------------------------------------------------------------------------------


def test_markdown_ranked_rows_with_intervals():
    board = make_board(8)
    md = render_markdown(board)
    assert md.startswith("# spuriverse-v1")
    assert "f" * 16 in md and "rejected" in md and "α = 0.05" in md
    lines = table_lines(md)
    assert len(lines) == 2 + len(board.entries)
    header = split_row(lines[0])
    assert header == [c.label for c in COLUMNS]
    col = {c.key: k for k, c in enumerate(COLUMNS)}
    for rank, (line, e) in enumerate(zip(lines[2:], board.entries), 1):
        cells = split_row(line)
        assert len(cells) == len(COLUMNS)
        assert cells[col["rank"]] == str(rank)
        assert cells[col["name"]].startswith(e.display_name)
        m = e.metrics["overall_acc"]
        assert cells[col["overall_acc"]] == f"{100 * m.value:.1f} [{100 * m.ci_low:.1f}, {100 * m.ci_high:.1f}]"
        g = e.metrics["gap_control_spurious"]
        assert cells[col["gap_control_spurious"]] == f"{100 * g.value:+.1f} [{100 * g.ci_low:+.1f}, {100 * g.ci_high:+.1f}]"
        assert cells[col["date"]] == e.submitted[:10]
        assert cells[col["verified"]] == ("✓" if e.verified else "✗")
        assert cells[col["strategy"]].startswith(e.strategy.replace("_", "\\_"))
        assert ("(baseline)" in cells[col["name"]]) == e.baseline
        nxt = cells[col["next"]]
        if e.vs_next is None:
            assert nxt == "—"
        elif e.vs_next.significant:
            assert nxt == "yes (p &lt; 0.001)"  # "<" is entity-escaped in markdown
        else:
            assert nxt == "no (p = 0.410)"
    flagged = split_row(lines[2 + 2])
    assert flagged[col["flags"]].startswith("7.2 % of items failed")
    assert split_row(lines[2])[col["flags"]] == "—"


def test_missing_metric_shows_dash():
    board = make_board(3, anchor=None)
    col = [c.key for c in COLUMNS].index("anchor_acc")
    for line in table_lines(render_markdown(board))[2:]:
        assert split_row(line)[col] == "—"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_escaped_in_markdown(hostile):
    board = make_board(4, names=["ok", hostile], models=[HOSTILE_MODEL, HOSTILE_MODEL])
    md = render_markdown(board)
    lines = table_lines(md)
    assert len(lines) == 2 + 4, "a newline in a name must not break the table"
    for line in lines:
        assert len(split_row(line)) == len(COLUMNS)
    assert "<" not in md and ">" not in md.replace("&gt;", "")
    assert not re.search(r"<script", md, re.I)
    for ch in "\u202e\u202c\u200b\u200d\ufeff\r":
        assert ch not in md
    if "[click]" in hostile:
        assert "\\[click\\](https://evil.example)" in md  # a bracket escape: no link text, no target
    name_cell = split_row(lines[3])[1]
    # every markdown-active character in the cell is backslash-escaped (or an entity)
    assert not re.search(r"(?<!\\)[`*_\[\]~|]", re.sub(r"\\\\", "", name_cell))
    assert "../../etc/passwd" in md  # shown as plain text (it is only ever text, never a path)


def test_clean_makes_invisible_characters_visible():
    assert clean("a\nb\tc\r") == "a b c "
    assert clean("x\u202ey\u200bz\ufeff") == "x\\u202ey\\u200bz\\ufeff"
    assert clean("\U000e0041") == "\\U000e0041"  # tag character (Cf)
    assert clean("nb\u00a0sp") == "nb sp"
    assert clean("Ünïcödé 模型 🤖") == "Ünïcödé 模型 🤖"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_escaped_in_html(hostile):
    board = make_board(4, names=["ok", hostile], models=[HOSTILE_MODEL, HOSTILE_MODEL])
    text = render_html(board)
    assert len(re.findall(r"<script", text, re.I)) == 2, "only our own two script tags"
    assert len(re.findall(r"</script", text, re.I)) == 2
    for ch in "\u202e\u202c\u200b\u200d\ufeff\u2028\u2029":
        assert ch not in text
    parsed = parse_html(text)
    assert [s.get("type") for s in parsed.scripts] == ["application/json", None]
    assert len(parsed.rows) == 4
    for row in parsed.rows:
        assert len(row) == len(COLUMNS)
    assert parsed.rows[1][1] == clean(hostile), "the name is displayed literally"
    assert parsed.rows[0][2] == HOSTILE_MODEL
    if hostile == EVIL_SCRIPT:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_embedded_json_is_the_board_and_cannot_close_the_script():
    board = make_board(5, names=["</script><script>alert(1)</script>", "a\u2028b\u2029c & <!-- x -->"])
    text = render_html(board)
    raw = embedded_json(text)
    assert not set(raw) & set("<>&\u2028\u2029")
    assert json.loads(raw) == board.model_dump(mode="json")
    assert Leaderboard.model_validate(json.loads(raw)) == board


@pytest.mark.parametrize("bad", ['"value":NaN,', '"value":1e999,', '"value":-Infinity,'])
def test_non_finite_metrics_are_refused_and_nothing_is_written(tmp_path, bad):
    """NaN/inf are not JSON and not metrics: a board file holding one does not validate, and
    render_board leaves the folder untouched."""
    board = make_board(3)
    text = board.model_dump_json().replace('"value":0.9,', bad, 1)
    with pytest.raises(ValueError, match="finite"):
        Leaderboard.model_validate_json(text)
    (tmp_path / "leaderboard.json").write_text(text)
    with pytest.raises(ValueError):
        render_board(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.json"]


def test_csp_forbids_network_and_pins_the_script():
    text = render_html(make_board(3))
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text).group(1)
    assert "default-src 'none'" in csp and "img-src data:" in csp
    js = re.search(r"<script>(.*?)</script>", text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert not re.search(r"(src|href)=\"(https?:)?//", text), "no external resources"
    assert "http://" not in text and "https://" not in text


def test_server_side_rows_carry_sort_keys():
    board = make_board(6)
    text = render_html(board)
    k = [c.key for c in COLUMNS].index("anchor_acc")
    rows = re.findall(r'<tr data-rank="(\d+)"[^>]*>(.*?)</tr>', text)
    assert [int(r) for r, _ in rows] == list(range(1, 7))
    for (_, row), e in zip(rows, board.entries):
        vals = re.findall(r'<td class="[a-z]+ c-[a-z_]+" data-v="([^"]*)"', row)
        assert float(vals[k]) == e.metrics["anchor_acc"].value
    assert text.count('<th scope="col"') == len(COLUMNS)
    assert text.count("<button type=\"button\">") == len(COLUMNS)


def test_empty_board_renders():
    board = Leaderboard(name="empty", fingerprint="abc", updated="2026-11-01T00:00:00+00:00")
    assert len(table_lines(render_markdown(board))) == 3
    text = render_html(board)
    assert "No entries yet." in text
    assert json.loads(embedded_json(text))["entries"] == []


def test_deterministic(tmp_path):
    board = make_board(12, names=HOSTILE)
    assert render_markdown(board) == render_markdown(board)
    assert render_html(board) == render_html(board)
    dirs = [tmp_path / "a", tmp_path / "b"]
    outputs = []
    for d in dirs:
        d.mkdir()
        (d / "leaderboard.json").write_text(board.model_dump_json(indent=1), "utf-8")
        render_board(d)
        first = {p.name: p.read_bytes() for p in render_board(d)}  # twice: the same bytes
        outputs.append({n: (d / n).read_bytes() for n in ("README.md", "index.html")})
        assert first == outputs[-1]
    assert outputs[0] == outputs[1]
    # a board reparsed from its own JSON (what the CLI does) renders identically
    again = Leaderboard.model_validate_json(board.model_dump_json())
    assert render_html(again) == render_html(board) and render_markdown(again) == render_markdown(board)


def test_render_board_writes_atomically(tmp_path, monkeypatch):
    board = make_board(5)
    (tmp_path / "leaderboard.json").write_text(board.model_dump_json(indent=1), "utf-8")
    paths = render_board(tmp_path)
    assert paths == [tmp_path / "README.md", tmp_path / "index.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "index.html", "leaderboard.json"]
    assert paths[0].read_text("utf-8") == render_markdown(board)
    assert paths[1].read_text("utf-8") == render_html(board)
    before = {p.name: p.read_bytes() for p in paths}

    # a failure at the rename leaves the old pages and no temporary file
    (tmp_path / "leaderboard.json").write_text(make_board(6).model_dump_json(), "utf-8")

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        render_board(tmp_path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in paths} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "index.html", "leaderboard.json"]

    # an invalid board is refused before anything is written
    (tmp_path / "leaderboard.json").write_text('{"name": "x", "entries": "nope"}', "utf-8")
    with pytest.raises(ValidationError):
        render_board(tmp_path)
    assert {p.name: p.read_bytes() for p in paths} == before


def test_speed_1000_entries_124_groups():
    t0 = time.perf_counter()
    board = make_board(1000, n_groups=124)
    text = board.model_dump_json()
    t1 = time.perf_counter()
    board = Leaderboard.model_validate_json(text)
    t2 = time.perf_counter()
    md = render_markdown(board)
    t3 = time.perf_counter()
    page = render_html(board)
    t4 = time.perf_counter()
    print(f"\n1000 entries x 124 groups: build {t1 - t0:.3f} s, validate {t2 - t1:.3f} s, "
          f"markdown {t3 - t2:.3f} s ({len(md) / 1e3:.0f} kB), html {t4 - t3:.3f} s ({len(page) / 1e6:.2f} MB), "
          f"render total {t4 - t2:.3f} s")
    assert len(table_lines(md)) == 1002
    assert page.count('<tr data-rank="') == 1000
