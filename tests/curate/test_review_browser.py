"""The review page in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium) against
the app served by uvicorn on a free loopback port in a thread. Skipped when Chromium or the
playwright package is absent, a failure in CI (as tests/leaderboard/test_browser.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from helpers.curate_data import anchor_png, make_curation_dir
from spuriverse.data.curation import read_jsonl
from spuriverse.persist import append_jsonl
from spuriverse.curate.review_app import BackgroundServer, create_app
from spuriverse.schema import ErrorRecord, Judgment, ReviewDecision, SynthProvenance

EVIL_Q = "<script>window.__pwned=1</script>Is <b>this</b> evil?"
EVIL_R = '<img src=x onerror="window.__pwned=2">rationale'
EDITED = "a man at a curb, rain on the street, jars and skis"  # a, r, s, j, k typed into a field: no shortcut

sync_api = require_browser()


def make_dir(root: Path) -> Path:
    """aokvqa-1000..1002 (spurious, undecided; 1000 with synthesized images), aokvqa-2000 (hostile
    text), aokvqa-3000 (not spurious: listed only with 'show all')."""
    make_curation_dir(root, n=3)
    (root / "reviews.jsonl").unlink()
    anchor_png(root / "anchors/evil.png", 3)
    for cid, question, spurious in (("aokvqa-2000", EVIL_Q, True), ("aokvqa-3000", "Plain?", False)):
        append_jsonl(root / "errors.jsonl", ErrorRecord(
            candidate_id=cid, source="aokvqa", question_id=cid, question=question, options=["yes", "no"],
            answer="A", prediction="B", raw=EVIL_Q, image="anchors/evil.png"))
        append_jsonl(root / "judgments.jsonl", Judgment(
            candidate_id=cid, judge="fake-judge", prompt_hash="h", spurious=spurious, rationale=EVIL_R,
            spurious_attributes=[EVIL_Q, "bags, suitcases"] if spurious else [], positive=EVIL_Q, negative="plain"))
    for variant in ("spurious", "counter"):
        for k in range(2):
            folder = root / "images" / "aokvqa-1000" / variant
            anchor_png(folder / f"{k}.png", k)
            (folder / f"{k}.json").write_text(SynthProvenance(
                candidate_id="aokvqa-1000", variant=variant, k=k, status="ok", backend="text2img",
                model_id="tiny-sd", prompt=f"{variant} prompt {k}", seed=7 + k, width=64, height=48, steps=2,
                guidance=7.5, safety_checker="none", image_file=f"{k}.png", created="2026-11-22T00:00:00Z",
            ).model_dump_json(), "utf-8")
    return root


def test_review_page_in_chromium(tmp_path):
    t0 = time.perf_counter()
    build = make_dir(tmp_path / "b")
    errors: list[str] = []
    requests: list[str] = []
    with BackgroundServer(create_app(build, "carol")) as srv, sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1300, "height": 900})
        try:
            page = ctx.new_page()
            page.set_default_timeout(5000)
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            cid = page.locator("#cid")

            def at(expected: str) -> None:
                sync_api.expect(cid).to_have_text(expected)

            page.goto(srv.url)
            at("aokvqa-1000")
            sync_api.expect(page.locator("#progress")).to_contain_text("0 / 4 decided")
            assert page.locator("#list li").count() == 4
            # synthesized images with their prompt and seed
            spurious = page.locator("#img-spurious img")
            sync_api.expect(spurious).to_have_count(2)
            assert spurious.nth(1).get_attribute("title").startswith("spurious prompt 1\nseed 8")
            assert page.locator("#img-counter figcaption").first.text_content() == "#0 seed 7: counter prompt 0"
            # a retrying property check (Playwright's own world): wait_for_function polls with eval, which the
            # page's CSP (script-src 'self') refuses whenever the image has not loaded at the first check
            sync_api.expect(page.locator("#anchor")).to_have_js_property("naturalWidth", 64)

            page.keyboard.press("a")  # accept aokvqa-1000
            at("aokvqa-1001")
            page.keyboard.press("r")  # reject aokvqa-1001
            at("aokvqa-1002")
            sync_api.expect(page.locator("#progress")).to_contain_text("2 / 4 decided")

            # edit a description: typing shortcut letters in a field decides nothing
            field = page.locator("#f-positive")
            field.click()
            page.keyboard.press("Control+a")
            page.keyboard.type(EDITED)
            assert field.input_value() == EDITED
            at("aokvqa-1002")
            assert len(list(read_jsonl(build / "reviews.jsonl", ReviewDecision))) == 2
            page.keyboard.press("Escape")
            page.keyboard.press("a")  # accept aokvqa-1002 with the edit
            at("aokvqa-2000")

            # the hostile candidate: its text is text, its scripts never ran
            assert page.locator("#question").text_content() == EVIL_Q
            assert page.locator("#rationale").text_content() == EVIL_R
            assert page.locator("#raw").text_content() == EVIL_Q
            assert page.locator("#f-spurious_attributes").input_value() == f"{EVIL_Q}\nbags, suitcases"
            assert page.evaluate("window.__pwned") is None
            assert page.locator("#card script, #card b, #card img[src='x']").count() == 0

            # reload: the decisions and the edit are still there; it opens at the first undecided one
            page.reload()
            at("aokvqa-2000")
            sync_api.expect(page.locator("#progress")).to_contain_text("3 / 4 decided")
            assert page.locator("#list li .badge").all_text_contents() == ["accept", "reject", "accept", "—"]
            page.keyboard.press("s")  # skip the last one, untouched (its attribute with a comma stays whole)
            sync_api.expect(page.locator("#progress")).to_contain_text("4 / 4 decided")
            sync_api.expect(page.locator("#decision")).to_contain_text("skip by carol")
            assert page.locator("#list li .badge").all_text_contents() == ["accept", "reject", "accept", "skip"]
            page.locator("#list li[data-cid='aokvqa-1002']").click()
            at("aokvqa-1002")
            assert page.locator("#f-positive").input_value() == EDITED
            assert page.locator("#decision").text_content().startswith("accept by carol at ")
            assert page.locator("#edited").text_content() == "edited vs the judge: positive"
            page.keyboard.press("k")
            at("aokvqa-1001")
            sync_api.expect(page.locator("#decision")).to_contain_text("reject by carol")

            # show all: the not-spurious candidate appears
            page.locator("#show-all").check()
            sync_api.expect(page.locator("#list li")).to_have_count(5)
            sync_api.expect(page.locator("#progress")).to_contain_text("4 / 5 decided")
            at("aokvqa-3000")  # the first undecided one
            assert page.locator("#verdict").text_content() == "judged not spurious"
            assert page.evaluate("window.__pwned") is None
        finally:
            ctx.close()

    assert errors == [], errors
    assert all(u.startswith(srv.url) for u in requests), requests
    lines = [json.loads(x) for x in (build / "reviews.jsonl").read_text().splitlines()]
    assert [(x["candidate_id"], x["decision"], x["reviewer"]) for x in lines] == [
        ("aokvqa-1000", "accept", "carol"), ("aokvqa-1001", "reject", "carol"), ("aokvqa-1002", "accept", "carol"),
        ("aokvqa-2000", "skip", "carol")]
    none = {k: None for k in lines[0]["edits"]}
    assert [lines[i]["edits"] for i in (0, 1, 3)] == [none] * 3
    assert {k: v for k, v in lines[2]["edits"].items() if v is not None} == {"positive": EDITED}
    print(f"\nreview browser test: {time.perf_counter() - t0:.2f} s")
