"""Hostile and broken submissions: each is rejected with a message naming what is wrong, and the
leaderboard folder (and the rest of the test's world: the other board, the run being submitted)
stays byte-identical, with no new file or folder. Hostile model names are sanitized and accepted.

Every mutation starts from a VALID run (see conftest.py) and changes one thing; `mutate_run`
re-hashes the samples so each case reaches the check it is aimed at.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from leaderboard_helpers import (
    diff_snapshots,
    mutate_run,
    read_samples,
    snapshot,
    write_results,
)

from spuriverse.leaderboard.board import read_board, submit
from spuriverse.leaderboard.store import UnsafeName
from spuriverse.leaderboard.verify import MAX_LINE_BYTES, MAX_RESULTS_BYTES, SubmissionRejected
from spuriverse.schema import Leaderboard, letters_for

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


# --------------------------------------------------------------------------------------------
# assertions


def assert_rejected(world, run: Path, *needles: str, exc: type[Exception] = SubmissionRejected,
                    **kw) -> str:
    """submit() raises `exc` whose message contains every needle, and nothing on disk changed
    (the whole world: both boards, the run folders)."""
    before = snapshot(world.root)
    with pytest.raises(exc) as info:
        submit(run, world.leaderboards, **kw)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"message {msg!r} does not name {needle!r}"
    after = snapshot(world.root)
    assert after == before, f"a rejected submission changed the disk: {diff_snapshots(before, after)}"
    return msg


def bad_chars(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in BAD_CATEGORIES]


# --------------------------------------------------------------------------------------------
# small mutation helpers (all take the results dict and the list of sample dicts)


def first(samples: list[dict], pred: Callable[[dict], bool]) -> dict:
    s = next((s for s in samples if pred(s)), None)
    assert s is not None, "the fixture run has no sample of the kind this case needs"
    return s


def other_letter(s: dict, not_: str | None = None) -> str:
    return next(c for c in letters_for(s["n_options"]) if c != (not_ or s["prediction"]))


def fail_sample(s: dict) -> None:
    """Make a sample a failed API call, consistently with the Sample schema."""
    s.update(prediction=None, correct=False, parse_status=None, error="x", error_type="api", raw=None,
             logprobs=None)


def raw_results(run: Path, edit: Callable[[str], str | bytes]) -> None:
    """Rewrite results.json's text/bytes directly (for what json.dumps cannot produce)."""
    path = run / "results.json"
    out = edit(path.read_text("utf-8"))
    path.write_bytes(out if isinstance(out, bytes) else out.encode("utf-8"))


def raw_samples(run: Path, line_index: int, new_line: bytes) -> None:
    """Replace one line of samples.jsonl by raw bytes, then fix the hash so the line is read."""
    path = run / "samples.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[line_index] = new_line
    path.write_bytes(b"\n".join(lines))
    results = json.loads((run / "results.json").read_text("utf-8"))
    results["samples_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    write_results(run, results)


# Each builder: (valid run folder, destination) -> the path to submit.  Cases are grouped by the
# check that must catch them.


def b_not_json(src, dst):
    run = mutate_run(src, dst)
    (run / "results.json").write_text("this is not JSON {", "utf-8")
    return run


def b_truncated(src, dst):
    run = mutate_run(src, dst)
    raw_results(run, lambda t: t[: len(t) // 2])
    return run


def b_array(src, dst):
    run = mutate_run(src, dst)
    raw_results(run, lambda t: f"[{t}]")
    return run


def b_duplicate_key(src, dst):
    run = mutate_run(src, dst)
    raw_results(run, lambda t: t.replace("{", '{\n  "seed": 12345,', 1))
    return run


def b_not_utf8(src, dst):
    run = mutate_run(src, dst)
    raw_results(run, lambda t: t.encode("utf-8").replace(b'"direct"', b'"dir\xff\xfeect"', 1))
    return run


def b_deep_nesting(src, dst):
    run = mutate_run(src, dst)
    depth = 200_000
    raw_results(run, lambda t: t.replace('"packages": {', '"packages": {"x": ' + "[" * depth + "]" * depth + ",", 1))
    return run


def b_no_results(src, dst):
    run = mutate_run(src, dst)
    (run / "results.json").unlink()
    return run


def b_results_directory(src, dst):
    run = mutate_run(src, dst)
    (run / "results.json").unlink()
    (run / "results.json").mkdir()
    return run


def b_huge_results(src, dst):
    return mutate_run(src, dst, lambda r, s: r["harness"].update(git_commit="x" * (MAX_RESULTS_BYTES + 100_000)))


def non_finite(where: str, const: str):
    def build(src, dst):
        token = "1234567.5"  # a unique placeholder replaced by the bare constant

        def fn(r, s):
            if where == "metric":
                r["metrics"]["overall_acc"]["value"] = float(token)
            elif where == "ci":
                r["metrics"]["mean_group_acc"]["ci_high"] = float(token)
            else:
                r["timings"]["total_s"] = float(token)

        run = mutate_run(src, dst, fn)
        raw_results(run, lambda t: t.replace(token, const, 1))
        return run

    return build


def b_overflow_literal(src, dst):
    """1e999 is not a NaN/Infinity constant, but Python's json parses it to inf."""
    token = "1234567.5"
    run = mutate_run(src, dst, lambda r, s: r["timings"].update(total_s=float(token)))
    raw_results(run, lambda t: t.replace(token, "1e999", 1))
    return run


def b_missing_field(src, dst):
    return mutate_run(src, dst, lambda r, s: r.pop("prompt_hash"))


def b_wrong_type(src, dst):
    return mutate_run(src, dst, lambda r, s: r.update(seed="zero"))


def b_extra_field(src, dst):
    return mutate_run(src, dst, lambda r, s: r.update(leaderboard_rank=1))


def b_bad_strategy(src, dst):
    return mutate_run(src, dst, lambda r, s: r.update(strategy="cheat"))


def b_nested_wrong_type(src, dst):
    return mutate_run(src, dst, lambda r, s: r["metrics"]["overall_acc"].update(value="very high"))


def b_samples_missing(src, dst):
    run = mutate_run(src, dst)
    (run / "samples.jsonl").unlink()
    return run


def b_samples_dev_zero(src, dst):
    run = mutate_run(src, dst)
    (run / "samples.jsonl").unlink()
    (run / "samples.jsonl").symlink_to("/dev/zero")
    return run


def b_samples_parent(src, dst):
    run = mutate_run(src, dst, lambda r, s: r.update(samples_file="../samples.jsonl"))
    (run.parent / "samples.jsonl").write_bytes((run / "samples.jsonl").read_bytes())  # a valid copy there
    return run


def b_samples_absolute(src, dst):
    dst_abs = str((Path(dst) / "samples.jsonl").resolve())  # the real, valid file, by absolute path
    return mutate_run(src, dst, lambda r, s: r.update(samples_file=dst_abs))


def b_samples_subfolder(src, dst):
    run = mutate_run(src, dst, lambda r, s: r.update(samples_file="sub/samples.jsonl"))
    (run / "sub").mkdir()
    (run / "sub" / "samples.jsonl").write_bytes((run / "samples.jsonl").read_bytes())
    return run


def b_no_sha(src, dst):
    return mutate_run(src, dst, lambda r, s: r.update(samples_sha256=None), rehash_samples=False)


def b_sha_mismatch(src, dst):
    def fn(r, s):
        s[0]["latency_s"] = 0.123  # any edit, hash not updated

    return mutate_run(src, dst, fn, rehash_samples=False)


def b_line_not_json(src, dst):
    run = mutate_run(src, dst)
    raw_samples(run, 2, b"{this is not json")
    return run


def b_line_nan(src, dst):
    run = mutate_run(src, dst)
    line = (run / "samples.jsonl").read_bytes().split(b"\n")[2]
    raw_samples(run, 2, re.sub(rb'"latency_s":[^,]*', b'"latency_s":NaN', line))
    return run


def b_line_duplicate_key(src, dst):
    run = mutate_run(src, dst)
    line = (run / "samples.jsonl").read_bytes().split(b"\n")[2]
    raw_samples(run, 2, line.replace(b"{", b'{"correct":true,', 1))
    return run


def b_line_array(src, dst):
    run = mutate_run(src, dst)
    raw_samples(run, 2, b'["g000/anchor_0", "A", true]')
    return run


def b_line_schema(src, dst):
    return mutate_run(src, dst, lambda r, s: s[2].update(variant="bogus"))


def b_line_extra_field(src, dst):
    return mutate_run(src, dst, lambda r, s: s[2].update(hacked=True))


def b_line_missing_field(src, dst):
    return mutate_run(src, dst, lambda r, s: s[2].pop("n_options"))


def b_line_too_long(src, dst):
    return mutate_run(src, dst, lambda r, s: s[2].update(category="x" * (MAX_LINE_BYTES + 10)))


def b_missing_item(src, dst):
    return mutate_run(src, dst, lambda r, s: s.pop(5))


def b_duplicate_item(src, dst):
    return mutate_run(src, dst, lambda r, s: s.append(dict(s[5])))


def b_extra_item(src, dst):
    return mutate_run(src, dst, lambda r, s: s.append({**s[5], "item_id": "g999/extra_0", "index": 999}))


def b_group_changed(src, dst):
    return mutate_run(src, dst, lambda r, s: s[1].update(group_id="g005"))


def b_variant_changed(src, dst):
    # a spurious item claimed as counter (counter items do not count in overall accuracy)
    return mutate_run(src, dst, lambda r, s: first(s, lambda x: x["variant"] == "spurious").update(variant="counter"))


def b_option_count_changed(src, dst):
    return mutate_run(src, dst, lambda r, s: first(s, lambda x: x["n_options"] == 2).update(n_options=4))


def b_rotation_not_circular(src, dst):
    return mutate_run(src, dst, lambda r, s: s[1].update(rotation=1))


def b_answer_changed(src, dst):
    """The answer key is rewritten to the model's (wrong) prediction: prediction/correct stay consistent."""

    def fn(r, s):
        x = first(s, lambda x: x["prediction"] is not None and not x["correct"])
        x.update(answer=x["prediction"], correct=True)

    return mutate_run(src, dst, fn, rescore_metrics=True)


def b_parser_version(src, dst):
    return mutate_run(src, dst, lambda r, s: r.update(parser_version="0.9"))


def b_scoring_mismatch(src, dst):
    return mutate_run(src, dst, lambda r, s: s[3].update(scoring="logprob"))


def b_raw_mismatch(src, dst):
    """generate scoring: raw says (A), prediction B ('correct' consistent with B)."""

    def fn(r, s):
        x = s[0]
        x.update(raw="(A)", prediction="B", correct=x["answer"] == "B", parse_status="strict")

    return mutate_run(src, dst, fn, rescore_metrics=True)


def b_parse_status_lie(src, dst):
    return mutate_run(src, dst, lambda r, s: s[0].update(parse_status="heuristic"), rescore_metrics=True)


def b_raw_nonsense(src, dst):
    """The prediction is kept but the raw text no longer supports any letter."""
    return mutate_run(src, dst, lambda r, s: s[0].update(raw="I cannot tell."), rescore_metrics=True)


def b_not_argmax(src, dst):
    def fn(r, s):
        x = s[0]
        best = max(x["logprobs"], key=x["logprobs"].get)
        wrong = other_letter(x, best)
        x.update(prediction=wrong, correct=wrong == x["answer"])

    return mutate_run(src, dst, fn, rescore_metrics=True)


def b_logprob_extra_letter(src, dst):
    def fn(r, s):
        x = first(s, lambda x: x["n_options"] == 2)
        x["logprobs"]["F"] = 0.0

    return mutate_run(src, dst, fn)


def b_correct_inconsistent(src, dst):
    return mutate_run(src, dst, lambda r, s: first(s, lambda x: x["correct"]).update(correct=False))


def bump(metric: str, part: str, delta: float):
    def fn(r, s):
        r["metrics"][metric][part] += delta

    return fn


def b_inflated_acc(src, dst):
    return mutate_run(src, dst, bump("overall_acc", "value", 0.1))


def b_ci_changed(src, dst):
    return mutate_run(src, dst, bump("overall_acc", "ci_low", 0.01))


def b_metric_n_changed(src, dst):
    return mutate_run(src, dst, bump("overall_acc", "n", 100))


def b_metric_removed(src, dst):
    return mutate_run(src, dst, lambda r, s: r["metrics"].pop("overall_acc"))


def b_metric_added(src, dst):
    return mutate_run(src, dst, lambda r, s: r["metrics"].update(sota_score={"value": 1.0, "ci_low": 1.0,
                                                                             "ci_high": 1.0, "n": 1}))


def b_failures_changed(src, dst):
    return mutate_run(src, dst, lambda r, s: r["failures"].update(n_failed=r["failures"]["n_failed"] + 2))


def b_failures_hidden(src, dst):
    """Samples really failed, metrics rescored honestly, but the failure counts claim none."""

    def fn(r, s):
        fail_sample(s[4])

    run = mutate_run(src, dst, fn, rescore_metrics=True)
    res = json.loads((run / "results.json").read_text())
    res["failures"].update(n_failed=0, failed_rate=0.0, by_type={})
    write_results(run, res)
    return run


def b_bootstrap_absurd(src, dst):
    return mutate_run(src, dst, lambda r, s: r["bootstrap"].update(iterations=10**9))


def b_bootstrap_negative(src, dst):
    return mutate_run(src, dst, lambda r, s: r["bootstrap"].update(iterations=-5))


def b_bootstrap_level(src, dst):
    return mutate_run(src, dst, lambda r, s: r["bootstrap"].update(level=1.5))


def b_bootstrap_seed(src, dst):
    return mutate_run(src, dst, lambda r, s: r["bootstrap"].update(seed=r["bootstrap"]["seed"] + 1))


def b_wrong_fingerprint(src, dst):
    return mutate_run(src, dst, lambda r, s: r["benchmark"].update(fingerprint="sha256:" + "0" * 64))


def b_fabricated_per_group(src, dst):
    """Headline metrics honest, per-group table fabricated (every group 100 %)."""

    def fn(r, s):
        for g in r["per_group"]:
            g.update(acc=1.0, anchor_correct=True, spurious_acc=1.0, consistent=True)

    return mutate_run(src, dst, fn)


def b_fabricated_breakdown(src, dst):
    def fn(r, s):
        for table in r["breakdowns"].values():
            for m in table.values():
                m.update(value=1.0, ci_low=1.0, ci_high=1.0)

    return mutate_run(src, dst, fn)


L, R, F = "llava_run", "random_run", "frequent_run"  # log-prob, generate (random), generate (frequent)

CASES = [
    # results.json: size and strict JSON
    pytest.param(L, b_not_json, ("results.json", "not valid JSON"), id="results-not-json"),
    pytest.param(L, b_truncated, ("results.json", "not valid JSON"), id="results-truncated"),
    pytest.param(L, b_array, ("results.json", "not a JSON object"), id="results-array"),
    pytest.param(L, b_duplicate_key, ("results.json", "duplicate JSON key 'seed'"), id="results-duplicate-key"),
    pytest.param(L, b_not_utf8, ("results.json", "not valid JSON"), id="results-not-utf8"),
    pytest.param(L, b_deep_nesting, ("results.json", "not valid JSON"), id="results-deep-nesting"),
    pytest.param(L, b_no_results, ("no results.json",), id="results-missing"),
    pytest.param(L, b_results_directory, ("no results.json",), id="results-is-a-folder"),
    pytest.param(L, b_huge_results, ("results.json", f"limit {MAX_RESULTS_BYTES}"), id="results-over-5MB"),
    # non-finite numbers: the error names the field that holds them
    pytest.param(L, non_finite("metric", "NaN"), ("results.json", "field 'metrics.overall_acc.value'", "finite"),
                 id="nan-metric-value"),
    pytest.param(L, non_finite("ci", "Infinity"), ("results.json", ".ci_high'", "finite"), id="infinity-ci-bound"),
    pytest.param(L, non_finite("timing", "-Infinity"), ("results.json", "field 'timings.", "finite"),
                 id="neg-infinity-timing"),
    pytest.param(L, non_finite("timing", "NaN"), ("results.json", "field 'timings.", "finite"), id="nan-timing"),
    pytest.param(L, b_overflow_literal, ("results.json", "timings", "finite"),
                 id="overflow-1e999-timing"),
    # results.json: schema
    pytest.param(L, b_missing_field, ("field 'prompt_hash'",), id="schema-missing-field"),
    pytest.param(L, b_wrong_type, ("field 'seed'",), id="schema-wrong-type"),
    pytest.param(L, b_extra_field, ("field 'leaderboard_rank'",), id="schema-extra-field"),
    pytest.param(L, b_bad_strategy, ("field 'strategy'",), id="schema-bad-strategy"),
    pytest.param(L, b_nested_wrong_type, ("field 'metrics.overall_acc.value'",), id="schema-nested-type"),
    # the samples file
    pytest.param(L, b_samples_missing, ("samples.jsonl", "missing"), id="samples-missing"),
    pytest.param(L, b_samples_dev_zero, ("samples.jsonl",), id="samples-symlink-dev-zero"),
    pytest.param(L, b_samples_parent, ("samples_file", "../samples.jsonl"), id="samples-file-dotdot"),
    pytest.param(L, b_samples_absolute, ("samples_file",), id="samples-file-absolute"),
    pytest.param(L, b_samples_subfolder, ("samples_file", "sub/samples.jsonl"), id="samples-file-subfolder"),
    pytest.param(L, b_no_sha, ("samples_sha256",), id="samples-sha-null"),
    pytest.param(L, b_sha_mismatch, ("samples.jsonl", "sha256"), id="samples-sha-mismatch"),
    pytest.param(L, b_line_not_json, ("samples.jsonl:3", "not valid JSON"), id="line-not-json"),
    pytest.param(L, b_line_nan, ("samples.jsonl:3", "finite"), id="line-nan"),
    pytest.param(L, b_line_duplicate_key, ("samples.jsonl:3", "duplicate JSON key 'correct'"), id="line-duplicate-key"),
    pytest.param(L, b_line_array, ("samples.jsonl:3",), id="line-array"),
    pytest.param(L, b_line_schema, ("samples.jsonl:3", "field 'variant'"), id="line-bad-variant"),
    pytest.param(L, b_line_extra_field, ("samples.jsonl:3", "field 'hacked'"), id="line-extra-field"),
    pytest.param(L, b_line_missing_field, ("samples.jsonl:3", "field 'n_options'"), id="line-missing-field"),
    pytest.param(L, b_line_too_long, ("samples.jsonl:3", f"limit {MAX_LINE_BYTES}"), id="line-over-1MB"),
    # items against the registered benchmark
    pytest.param(L, b_missing_item, ("missing", "g001/anchor_0"), id="item-missing"),
    pytest.param(L, b_duplicate_item, ("g001/anchor_0", "more than once"), id="item-duplicate"),
    pytest.param(L, b_extra_item, ("g999/extra_0", "not in the registered benchmark"), id="item-extra"),
    pytest.param(L, b_group_changed, ("g000/spurious_1", "group"), id="item-group-changed"),
    pytest.param(L, b_variant_changed, ("g000/spurious_1", "variant"), id="item-variant-changed"),
    pytest.param(L, b_option_count_changed, ("g000/anchor_0", "option count"), id="item-option-count-changed"),
    pytest.param(L, b_rotation_not_circular, ("g000/spurious_1", "rotation"), id="item-rotation-not-circular"),
    pytest.param(F, b_answer_changed, ("registered answer",), id="item-answer-changed"),
    # predictions
    pytest.param(L, b_parser_version, ("parser version", "0.9"), id="parser-version"),
    pytest.param(R, b_scoring_mismatch, ("g000/spurious_3", "scoring"), id="sample-scoring-mismatch"),
    pytest.param(R, b_raw_mismatch, ("g000/anchor_0", "parses to 'A'"), id="generate-raw-vs-prediction"),
    pytest.param(R, b_parse_status_lie, ("g000/anchor_0", "heuristic"), id="generate-parse-status-lie"),
    pytest.param(R, b_raw_nonsense, ("g000/anchor_0", "parses to None"), id="generate-raw-unparseable"),
    pytest.param(L, b_not_argmax, ("g000/anchor_0", "arg-max"), id="logprob-not-argmax"),
    pytest.param(L, b_logprob_extra_letter, ("g000/anchor_0", "log-probs"), id="logprob-letter-not-option"),
    pytest.param(F, b_correct_inconsistent, ("'correct'",), id="correct-inconsistent"),
    # claimed scores against the re-score
    pytest.param(L, b_inflated_acc, ("overall_acc.value",), id="inflated-overall-acc"),
    pytest.param(L, b_ci_changed, ("overall_acc.ci_low",), id="ci-bound-changed"),
    pytest.param(L, b_metric_n_changed, ("overall_acc.n",), id="metric-n-changed"),
    pytest.param(L, b_metric_removed, ("overall_acc",), id="metric-removed"),
    pytest.param(L, b_metric_added, ("sota_score",), id="metric-invented"),
    pytest.param(L, b_failures_changed, ("failures",), id="failure-counts-changed"),
    pytest.param(L, b_failures_hidden, ("failures",), id="failures-hidden"),
    pytest.param(L, b_bootstrap_absurd, ("bootstrap.iterations",), id="bootstrap-absurd"),
    pytest.param(L, b_bootstrap_negative, ("bootstrap.iterations",),
                 id="bootstrap-negative"),
    pytest.param(L, b_bootstrap_level, ("bootstrap.level",),
                 id="bootstrap-level-out-of-range"),
    pytest.param(L, b_bootstrap_seed, ("ci_",), id="bootstrap-seed-changed"),
    pytest.param(L, b_fabricated_per_group, ("per_group",),
                 id="per-group-fabricated"),
    pytest.param(L, b_fabricated_breakdown, ("breakdowns",),
                 id="breakdowns-fabricated"),
    # which board
    pytest.param(L, b_wrong_fingerprint, ("fingerprint", "matches no registered leaderboard"), id="no-board-matches"),
]


@pytest.mark.parametrize(("base", "build", "needles"), CASES)
def test_hostile_submission_is_rejected_and_changes_nothing(world, request, base, build, needles):
    run = build(request.getfixturevalue(base), world.runs / "run")
    assert_rejected(world, run, *needles)


def test_case_count():
    assert len({p.id for p in CASES}) >= 30


def test_name_of_a_board_for_another_benchmark(world, llava_run):
    assert_rejected(world, llava_run, "fingerprint", "'other'", name="other")


def test_name_of_no_board(world, llava_run):
    assert_rejected(world, llava_run, "'nope'", name="nope")


@pytest.mark.parametrize("name", ["../x", "/abs", "../demo", "demo/../demo", "", "DEMO", ".hidden", "a" * 65])
def test_unsafe_board_name(world, llava_run, name):
    assert_rejected(world, llava_run, repr(name), exc=UnsafeName, name=name)


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
    run = b_inflated_acc(llava_run, world.runs / "run")
    before = snapshot(world.root)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "spuriverse", "submit", str(run), "--leaderboard-dir",
                           str(world.leaderboards)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "rejected" in proc.stderr and "overall_acc.value" in proc.stderr
    after = snapshot(world.root)
    assert after == before, diff_snapshots(before, after)
