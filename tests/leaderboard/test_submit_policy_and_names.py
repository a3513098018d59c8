"""Leaderboard submissions that must be ACCEPTED safely or handled by policy: the failed/unparsed
threshold (reject or flag), hostile model and display names (sanitized, never escaping the board
folder), baseline impersonation, resubmission, and the CLI's exit code on rejection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from leaderboard_helpers import (
    SLUG,
    assert_rejected,
    bad_chars,
    diff_snapshots,
    fail_sample,
    mutate_run,
    read_samples,
    snapshot,
)

from spuriverse.leaderboard.board import read_board, submit
from spuriverse.leaderboard.verify import SubmissionRejected
from spuriverse.schema import Leaderboard


# --------------------------------------------------------------------------------------------
# failure policy


def _with_failures(src: Path, dst: Path, n: int) -> Path:
    """`n` samples become failed API calls; every score rebuilt honestly, so only the policy
    check can object."""

    def fn(r, s):
        for x in s[4 : 4 + n]:
            fail_sample(x)

    return mutate_run(src, dst, fn, rescore_metrics=True)


def _with_unparsed(src: Path, dst: Path, n: int) -> Path:
    def fn(r, s):
        for x in s[4 : 4 + n]:
            x.update(raw="I cannot tell.", prediction=None, correct=False, parse_status="unparsed")

    return mutate_run(src, dst, fn, rescore_metrics=True)


def test_failed_rate_over_policy_is_rejected(world, llava_run):
    run = _with_failures(llava_run, world.runs / "failed", 3)  # 3/36 = 8.3 % > 5 %
    assert_rejected(world, run, "8.3 %", "failed or unparsed", "5.0 %")


def test_unparsed_rate_over_policy_is_rejected(world, random_run):
    run = _with_unparsed(random_run, world.runs / "unparsed", 2)  # 2/36 = 5.6 % > 5 %
    assert_rejected(world, run, "5.6 %", "failed or unparsed")


def test_failed_rate_under_policy_is_accepted(world, llava_run):
    run = _with_failures(llava_run, world.runs / "failed", 1)  # 2.8 %
    out = submit(run, world.leaderboards)
    assert out.status == "added" and out.entry.flags == []
    assert out.entry.failed_rate == pytest.approx(1 / 36)


def test_failed_rate_over_policy_is_flagged_when_the_board_says_flag(world, llava_run):
    path = world.board / "leaderboard.json"
    board = Leaderboard.model_validate_json(path.read_text())
    board.policy.on_exceed = "flag"
    path.write_text(board.model_dump_json(indent=1) + "\n")
    run = _with_failures(llava_run, world.runs / "failed", 3)
    out = submit(run, world.leaderboards)
    assert out.status == "added"
    assert len(out.entry.flags) == 1 and "8.3 %" in out.entry.flags[0]
    stored = next(e for e in read_board(world.board).entries if e.slug == out.slug)
    assert stored.flags == out.entry.flags and stored.failed_rate == pytest.approx(3 / 36)


# --------------------------------------------------------------------------------------------
# hostile names: sanitized and accepted

HOSTILE_NAMES = [
    pytest.param("../../../etc/passwd", id="dotdot-path"),
    pytest.param("/abs/path/model", id="absolute-path"),
    pytest.param("..\\..\\windows\\system32", id="backslash-path"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("<script>alert(1)</script>", id="script-tag"),
    pytest.param("x\" onmouseover=\"alert(1)", id="attribute-break"),
    pytest.param("| a | b |\n# heading", id="markdown-table-break"),
    pytest.param("m" * 500, id="500-chars"),
    pytest.param("evil\u202egnp.exe", id="bidi-override"),
    pytest.param("gp\u200dt\u200b-4", id="zero-width"),
    pytest.param("\uff27\uff30\uff34\uff0d\uff14", id="fullwidth"),
    pytest.param("g\u0440t-4\u043e", id="cyrillic-homoglyphs"),
    pytest.param("\u0440\u0430\u0443\u0440\u0430\u0406", id="all-cyrillic"),
    pytest.param("", id="empty"),
    pytest.param("   \t ", id="whitespace"),
    pytest.param("\u200b\u200d\u2060", id="only-format-chars"),
    pytest.param("\x00\x1b[31mred\x07", id="control-chars"),
    pytest.param("line1\nline2\u2028line3", id="line-separators"),
    pytest.param("\U0001f600\U0001f4a9", id="emoji-only"),
]


@pytest.mark.parametrize("alias", HOSTILE_NAMES)
def test_hostile_model_name_is_sanitized_and_accepted(world, frequent_run, alias):
    run = mutate_run(frequent_run, world.runs / "run", lambda r, s: r["model"].update(alias=alias))
    before = snapshot(world.root)
    out = submit(run, world.leaderboards)
    after = snapshot(world.root)

    assert out.status == "added"
    assert SLUG.match(out.slug) and ".." not in out.slug, out.slug
    subs = (world.board / "submissions").resolve()
    folder = world.board / "submissions" / out.slug
    assert folder.resolve().parent == subs and folder.is_dir() and not folder.is_symlink()
    assert {p.name for p in folder.iterdir()} == {"results.json", "samples.jsonl.gz", "outcomes.json"}
    changed = diff_snapshots(before, after)
    outside = [c for c in changed if not c.split(": ", 1)[1].startswith("leaderboards/demo/")]
    assert not outside, f"written outside the board: {outside}"
    assert all(c.split(": ", 1)[1].startswith(f"leaderboards/demo/submissions/{out.slug}")
               or c.split(": ", 1)[1] in {"leaderboards/demo/leaderboard.json", "leaderboards/demo/README.md",
                                          "leaderboards/demo/index.html"}
               for c in changed), changed

    board = read_board(world.board)
    assert len(board.entries) == 3 and len({e.slug for e in board.entries}) == 3
    entry = next(e for e in board.entries if e.slug == out.slug)
    for text in (entry.display_name, entry.model):
        assert text.strip() and not bad_chars(text), (text, bad_chars(text))
        assert len(text) <= 200
    html = (world.board / "index.html").read_text("utf-8")
    readme = (world.board / "README.md").read_text("utf-8")
    for page in (html, readme):
        assert "\u202e" not in page and "\u200d" not in page and "\x1b" not in page and "\x00" not in page
    assert "<script>alert(1)</script>" not in html and 'onmouseover="alert(1)' not in html


@pytest.mark.parametrize("display_name", [
    "<img src=x onerror=alert(1)>", "a\u202eb\u200dc\x00d", "n" * 500,
    pytest.param("  \u200b", id="blank"),
])
def test_hostile_display_name_is_sanitized(world, frequent_run, display_name):
    out = submit(frequent_run, world.leaderboards, display_name=display_name)
    entry = next(e for e in read_board(world.board).entries if e.slug == out.slug)
    assert not bad_chars(entry.display_name) and len(entry.display_name) <= 200
    assert entry.display_name.strip(), "a blank display name should fall back to the model name"
    assert "<img src=x onerror=alert(1)>" not in (world.board / "index.html").read_text("utf-8")


def test_free_text_fields_of_results_are_sanitized(world, frequent_run):
    """Strings other than the alias also reach leaderboard.json and the pages."""
    evil = "\u202e<script>alert(1)</script>\x1b\u200d"

    def fn(r, s):
        r["model"].update(backend=evil, checkpoint=evil, revision=evil)
        r["harness"]["version"] = evil
        r["prompt_hash"] = evil
        r["created"] = evil

    run = mutate_run(frequent_run, world.runs / "run", fn)
    out = submit(run, world.leaderboards)
    entry = next(e for e in read_board(world.board).entries if e.slug == out.slug)
    for field, value in entry.model_dump().items():
        if isinstance(value, str):
            assert not bad_chars(value), f"entry.{field} keeps {bad_chars(value)}: {value!r}"
    assert "<script>alert(1)</script>" not in (world.board / "index.html").read_text("utf-8")


def test_claiming_a_baseline_identity_is_rejected(world, frequent_run):
    """A run dressed up as the `random` baseline (same backend/alias/checkpoint/config, so the same
    slug) must neither replace the board's baseline nor inherit its baseline mark."""

    def fn(r, s):
        r["model"].update(alias="random", checkpoint="random")

    run = mutate_run(frequent_run, world.runs / "run", fn)
    before = snapshot(world.root)
    with pytest.raises(SubmissionRejected, match="one of the board's baselines"):
        submit(run, world.leaderboards)
    assert snapshot(world.root) == before


# --------------------------------------------------------------------------------------------
# resubmission


def test_identical_resubmission_is_a_no_op(world, llava_run):
    first_out = submit(llava_run, world.leaderboards)
    assert first_out.status == "added"
    before = snapshot(world.root)
    again = submit(llava_run, world.leaderboards)
    assert again.status == "unchanged" and again.slug == first_out.slug
    after = snapshot(world.root)
    assert after == before, diff_snapshots(before, after)


def test_resubmission_with_other_samples_replaces_the_entry(world, llava_run):
    first_out = submit(llava_run, world.leaderboards)

    def flip(r, s):  # swap the two best log-probs of a few items: new predictions, all consistent
        for x in s[:6]:
            lp = x["logprobs"]
            a, b = sorted(lp, key=lp.get, reverse=True)[:2]
            lp[a], lp[b] = lp[b], lp[a]
            x.update(prediction=b, correct=b == x["answer"])

    run = mutate_run(llava_run, world.runs / "again", flip, rescore_metrics=True)
    out = submit(run, world.leaderboards)
    assert out.status == "updated" and out.slug == first_out.slug
    board = read_board(world.board)
    assert [e.slug for e in board.entries].count(out.slug) == 1 and len(board.entries) == 3
    entry = next(e for e in board.entries if e.slug == out.slug)
    assert entry.samples_sha256 == json.loads((run / "results.json").read_text())["samples_sha256"]
    assert entry.samples_sha256 != first_out.entry.samples_sha256
    stored = (world.board / "submissions" / out.slug / "results.json").read_text()
    assert json.loads(stored)["samples_sha256"] == entry.samples_sha256


def test_valid_runs_are_accepted(world, llava_run, random_run, frequent_run):
    """The fixtures themselves are valid (so every rejection above is due to its one mutation)."""
    slugs = {submit(r, world.leaderboards).slug for r in (llava_run, random_run, frequent_run)}
    board = read_board(world.board)
    assert len(slugs) == 3 and len(board.entries) == 5
    assert all(SLUG.match(e.slug) for e in board.entries)
    assert {len(read_samples(r)) for r in (llava_run, random_run, frequent_run)} == {36}


def test_cli_rejection_exits_3_and_changes_nothing(world, llava_run):
    def inflate(results, samples):
        results["metrics"]["overall_acc"]["value"] += 0.1

    run = mutate_run(llava_run, world.runs / "run", inflate)
    before = snapshot(world.root)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "spuriverse", "submit", str(run), "--leaderboard-dir",
                           str(world.leaderboards)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "rejected" in proc.stderr and "overall_acc.value" in proc.stderr
    after = snapshot(world.root)
    assert after == before, diff_snapshots(before, after)


# --------------------------------------------------------------------------------------------
# parser versions: a run is re-parsed with the rules it was scored with


def _scored_with_parser_1_0(src: Path, dst: Path) -> Path:
    """A generate-scored run whose first answer is a cut-off reasoning trace: parser 1.0 read the
    trace's `Answer: (X)` (strict); parser 1.1 records it unparsed."""

    def fn(r, s):
        r.update(parser_version="1.0")
        x = s[0]
        x.update(raw=f"<think>Answer: ({x['prediction']}) because", parse_status="strict")

    return mutate_run(src, dst, fn, rescore_metrics=True)


def test_run_scored_with_an_older_parser_still_verifies(world, random_run):
    run = _scored_with_parser_1_0(random_run, world.runs / "parser-1.0")
    out = submit(run, world.leaderboards)
    assert out.status == "added" and out.entry.verified and out.entry.parser_version == "1.0"


def test_older_parser_rules_are_not_a_loophole(world, random_run):
    run = _scored_with_parser_1_0(random_run, world.runs / "parser-1.1")
    results = json.loads((run / "results.json").read_text("utf-8"))
    results["parser_version"] = "1.1"  # the same answers claimed under today's rules
    (run / "results.json").write_text(json.dumps(results), "utf-8")
    assert_rejected(world, run, "g000/", "parses to None")
