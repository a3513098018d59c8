"""The leaderboard page in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium),
page opened from file:// with no network. Skipped when Chromium or the playwright package is absent
(`make install` installs both)."""

from __future__ import annotations

import os
import time

from helpers.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from spuriverse.leaderboard.render import COLUMNS, render_board
from spuriverse.schema import Leaderboard, LeaderboardEntry, MetricValue, PairedTest

EVIL = "<script>window.__pwned=1</script>Evil"
N_GROUPS = 7
ANCHORS = [0.61, 0.93, None, 0.47, 0.78, 0.55]  # distinct values, one missing (sorts last both ways)

sync_api = require_browser()


def _metric(v: float | None) -> MetricValue:
    return MetricValue(value=v, n=0) if v is None else MetricValue(value=v, ci_low=v - 0.03, ci_high=v + 0.03, n=80)


def make_board() -> Leaderboard:
    groups = [f"g{k}-{'texture' if k % 2 else 'background'}" for k in range(N_GROUPS)]
    names = ["Alpha-VL 7B", EVIL, "Gamma | pipes", "Delta\u202eevil", "Random baseline", "Blind baseline"]
    entries = []
    for i, (name, anchor) in enumerate(zip(names, ANCHORS)):
        overall = 0.9 - 0.1 * i
        metrics = {k: _metric(overall - d) for k, d in (("overall_acc", 0), ("spurious_acc", 0.05),
                                                        ("control_acc", -0.02), ("group_consistency", 0.2))}
        metrics["anchor_acc"] = _metric(anchor)
        metrics["gap_control_spurious"] = _metric(0.07)
        per_group = {g: round(((i * 5 + k * 3) % 11) / 10, 2) for k, g in enumerate(groups)}
        per_group[groups[-1]] = None
        entries.append(LeaderboardEntry(
            slug=f"m{i}", display_name=name, model=f"org/m{i}" if i != 3 else "../../etc/passwd", backend="hf",
            checkpoint=f"org/m{i}", strategy="direct", scoring="generate", prompt_hash="p", parser_version="1",
            config_key=f"k{i}", submitted="2026-10-30T10:00:00+00:00", run_created="2026-10-29T10:00:00+00:00",
            harness_version="0.1.0", baseline=i >= 4, flags=["flagged for test"] if i == 2 else [], metrics=metrics,
            failed_rate=0.01, unparsed_rate=0.0, n_items=200, per_group=per_group, samples_sha256="0" * 64,
            vs_next=None if i == len(names) - 1 else PairedTest(other=f"m{i + 1}", diff=0.1, p_value=0.01 * i,
                                                                 method="mcnemar", significant=i < 3),
        ))  # fmt: skip
    return Leaderboard(name="browser-test", fingerprint="abc123", updated="2026-11-01T00:00:00+00:00",
                       groups=groups, entries=entries)


def _column(page, key: str) -> list[float | None]:
    k = [c.key for c in COLUMNS].index(key) + 1
    texts = page.locator(f"#board tbody tr td:nth-child({k})").all_text_contents()
    return [None if t.strip() == "—" else float(t.split()[0]) for t in texts]


def test_page_in_chromium(tmp_path):
    t0 = time.perf_counter()
    board = make_board()
    (tmp_path / "leaderboard.json").write_text(board.model_dump_json(indent=1), "utf-8")
    index = render_board(tmp_path)[1]
    n, g = len(board.entries), len(board.groups)
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = ctx.new_page()
            page.set_default_timeout(5000)
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(index.as_uri())
            page.wait_for_selector("#heatmap td.hm-cell")

            # the rows, in rank order
            rows = page.locator("#board tbody tr")
            assert rows.count() == n
            assert _column(page, "rank") == [float(i) for i in range(1, n + 1)]

            # sort by anchor: first click highest first, second click reversed; missing stays last
            present = [a for a in ANCHORS if a is not None]
            desc = [round(100 * a, 1) for a in sorted(present, reverse=True)] + [None]
            asc = [round(100 * a, 1) for a in sorted(present)] + [None]
            anchor = page.get_by_role("button", name="anchor", exact=True)
            anchor.click()
            assert _column(page, "anchor_acc") == desc
            assert page.locator("#board th", has=anchor).get_attribute("aria-sort") == "descending"
            anchor.click()
            assert _column(page, "anchor_acc") == asc
            assert page.locator("#board th", has=anchor).get_attribute("aria-sort") == "ascending"
            # keyboard: headers are buttons (focus + Enter sorts)
            page.get_by_role("button", name="rank", exact=True).focus()
            page.keyboard.press("Enter")
            assert _column(page, "rank") == [float(i) for i in range(1, n + 1)]

            # the hostile name is literal text, and its script never ran
            assert page.get_by_text(EVIL, exact=True).count() == 1
            assert page.evaluate("window.__pwned") is None
            assert page.get_by_text("../../etc/passwd", exact=True).count() == 1
            assert "Delta\\u202eevil" in page.locator("#board").inner_text()

            # heatmap: entries x groups cells, a tooltip with the value, missing cells marked
            cells = page.locator("#heatmap td.hm-cell")
            assert cells.count() == n * g
            assert page.locator("#heatmap td.hm-cell.missing").count() == n
            assert page.locator("#heatmap tbody th").count() == n
            first = cells.first.get_attribute("title")
            assert first.startswith("Alpha-VL 7B · g0-background: ") and first.endswith(" %")
            assert page.locator("#heatmap tbody th").nth(1).text_content() == f"2. {EVIL}"

            if os.environ.get("SPURIVERSE_SCREENSHOT"):
                page.screenshot(path=os.environ["SPURIVERSE_SCREENSHOT"], full_page=True)
        finally:
            ctx.close()

    assert errors == [], errors
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    print(f"\nbrowser test: {time.perf_counter() - t0:.2f} s")
