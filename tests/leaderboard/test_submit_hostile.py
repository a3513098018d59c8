"""Hostile and broken submissions: each is rejected with a message naming what is wrong, and the
leaderboard folder (and the rest of the test's world: the other board, the run being submitted)
stays byte-identical, with no new file or folder. Hostile model names are sanitized and accepted.

Every mutation starts from a VALID run (see conftest.py) and changes one thing; `mutate_run`
re-hashes the samples so each case reaches the check it is aimed at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from leaderboard_helpers import (
    assert_rejected,
    fail_sample,
    first,
    mutate_run,
    other_letter,
    raw_results,
    raw_samples,
    write_results,
)

from spuriverse.leaderboard.store import UnsafeName
from spuriverse.leaderboard.verify import MAX_LINE_BYTES, MAX_RESULTS_BYTES



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
