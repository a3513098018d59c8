"""The runner end to end on tiny real-architecture models: batching, determinism, resume, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.bench_data import long_rows, write_long_dataset
from spuriverse.eval.results import score_run
from spuriverse.eval.runner import EvalOptions, RunConfigMismatch, run_eval

VOLATILE = ("timestamp", "latency_s")


def stable_lines(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        d = json.loads(line)
        for k in VOLATILE:
            d.pop(k, None)
        out.append(d)
    return out


def assert_same_samples(a: list[dict], b: list[dict], atol: float = 1e-5) -> None:
    """Identical samples; log-probs may differ by float noise when batches are composed differently."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        lx, ly = x.pop("logprobs"), y.pop("logprobs")
        assert x == y
        assert (lx is None) == (ly is None)
        if lx is not None:
            assert lx.keys() == ly.keys() and all(abs(lx[k] - ly[k]) <= atol for k in lx)


def run(model, dataset, out, **kw):
    kw.setdefault("n_bootstrap", 200)
    kw.setdefault("progress", False)
    kw.setdefault("report", False)
    return run_eval(EvalOptions(model=str(model), dataset=str(dataset), output_dir=out, **kw))


@pytest.mark.parametrize("scoring", ["logprob", "generate"])
def test_batch_size_does_not_change_results(tiny_llava, small_benchmark, tmp_path, scoring):
    runs = {}
    for bs in (1, 4, 16):
        run(tiny_llava, small_benchmark, tmp_path / f"bs{bs}", batch_size=bs, scoring=scoring, max_new_tokens=6)
        runs[bs] = stable_lines(tmp_path / f"bs{bs}")
    ref = runs[1]
    assert len(ref) == 36
    for bs in (4, 16):
        assert [s["prediction"] for s in runs[bs]] == [s["prediction"] for s in ref]
        assert [s["raw"] for s in runs[bs]] == [s["raw"] for s in ref]
        for a, b in zip(runs[bs], ref):
            assert a["logprobs"].keys() == b["logprobs"].keys()
            assert all(abs(a["logprobs"][k] - b["logprobs"][k]) <= 1e-5 for k in a["logprobs"])


def test_second_architecture_is_batch_invariant(tiny_llava_next, small_benchmark, tmp_path):
    """LLaVA-NeXT: anyres tiling gives each image its own token count; left padding copes."""
    run(tiny_llava_next, small_benchmark, tmp_path / "a", batch_size=1, limit=12)
    run(tiny_llava_next, small_benchmark, tmp_path / "b", batch_size=8, limit=12)
    a, b = stable_lines(tmp_path / "a"), stable_lines(tmp_path / "b")
    assert [s["prediction"] for s in a] == [s["prediction"] for s in b]
    for x, y in zip(a, b):
        assert all(abs(x["logprobs"][k] - y["logprobs"][k]) <= 1e-5 for k in x["logprobs"])


def test_identical_runs_give_identical_samples(tiny_llava, small_benchmark, tmp_path):
    run(tiny_llava, small_benchmark, tmp_path / "a", batch_size=4)
    run(tiny_llava, small_benchmark, tmp_path / "b", batch_size=4)
    assert stable_lines(tmp_path / "a") == stable_lines(tmp_path / "b")
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    rb = json.loads((tmp_path / "b" / "results.json").read_text())
    assert ra["metrics"] == rb["metrics"] and ra["benchmark"]["fingerprint"] == rb["benchmark"]["fingerprint"]


def test_sample_lines_carry_the_contract_fields(tiny_llava, small_benchmark, tmp_path):
    result = run(tiny_llava, small_benchmark, tmp_path / "r", limit=5)
    line = stable_lines(tmp_path / "r")[0]
    for key in ("item_id", "group_id", "variant", "answer", "prediction", "correct", "parse_status",
                "error", "raw", "logprobs", "prompt_hash"):
        assert key in line
    assert line["parse_status"] == "logprob" and line["prompt_hash"] == result.prompt_hash
    assert result.failures.n_missing == 0 and result.failures.n_samples == 5


def test_resume_continues_and_never_duplicates(tiny_llava, small_benchmark, tmp_path):
    full = tmp_path / "full"
    run(tiny_llava, small_benchmark, full, batch_size=4)
    part = tmp_path / "part"
    first = run(tiny_llava, small_benchmark, part, batch_size=4, limit=10)
    assert first.failures.n_samples == 10
    # simulate a kill in the middle of writing a line: a partial trailing line
    with open(part / "samples.jsonl", "a") as f:
        f.write('{"index": 10, "item_id": "g002/spurious_1", "rotat')
    run(tiny_llava, small_benchmark, part, batch_size=4)
    assert_same_samples(stable_lines(part), stable_lines(full))


def test_resume_after_sigkill_matches_uninterrupted_run(tiny_llava, tmp_path):
    """A real `spuriverse eval` process killed with SIGKILL mid-run, then re-run."""
    data = write_long_dataset(tmp_path / "data", n_groups=20, n_controls=20)  # 120 items
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "spuriverse", "eval", "--model", str(tiny_llava), "--dataset", str(data),
           "--batch-size", "1", "--bootstrap", "50", "--no-progress", "--output-dir"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + [str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = killed / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if samples.exists() and samples.read_text().count("\n") >= 15:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = samples.read_text().count("\n")
    assert 15 <= n_before < 120, "the run was not killed mid-way"
    assert not (killed / "results.json").exists()
    subprocess.run(cmd + [str(killed)], env=env, check=True, capture_output=True)
    subprocess.run(cmd + [str(tmp_path / "clean")], env=env, check=True, capture_output=True)
    assert stable_lines(killed) == stable_lines(tmp_path / "clean")
    assert len(stable_lines(killed)) == 120


def test_other_configuration_in_the_same_folder_is_refused(tiny_llava, small_benchmark, tmp_path):
    run(tiny_llava, small_benchmark, tmp_path / "r", limit=3)
    with pytest.raises(RunConfigMismatch, match="strategy: 'direct' -> 'cot'"):
        run(tiny_llava, small_benchmark, tmp_path / "r", limit=3, strategy="cot", max_new_tokens=4)


def test_corrupt_image_is_an_error_record_not_a_score(tiny_llava, tmp_path):
    rows = long_rows(n_groups=2, n_controls=2)
    rows[1]["image"] = rows[1]["image"][:40]
    data = write_long_dataset(tmp_path / "d", rows)
    result = run(tiny_llava, data, tmp_path / "r", batch_size=4)
    lines = stable_lines(tmp_path / "r")
    bad = lines[1]
    assert bad["error_type"] == "image" and bad["prediction"] is None and bad["correct"] is False
    assert bad["parse_status"] is None
    assert sum(s["error"] is None for s in lines) == len(rows) - 1
    assert result.failures.n_failed == 1 and result.failures.by_type == {"image": 1}


def test_circular_asks_every_rotation(tiny_llava, small_benchmark, tmp_path):
    run(tiny_llava, small_benchmark, tmp_path / "c", circular=True, limit=6, batch_size=5)
    lines = stable_lines(tmp_path / "c")
    by_item: dict[str, list] = {}
    for s in lines:
        by_item.setdefault(s["item_id"], []).append(s)
    assert len(by_item) == 6
    for item_lines in by_item.values():
        n = item_lines[0]["n_options"]
        assert sorted(s["rotation"] for s in item_lines) == list(range(n))
        # the correct letter moves with the rotation
        assert len({s["answer"] for s in item_lines}) == n


def test_blind_runs_without_images_and_ignores_corrupt_ones(tiny_llava, tmp_path):
    rows = long_rows(n_groups=2, n_controls=1)
    rows[0]["image"] = b"broken"
    data = write_long_dataset(tmp_path / "d", rows)
    run(tiny_llava, data, tmp_path / "blind", blind=True)
    lines = stable_lines(tmp_path / "blind")
    assert all(s["error"] is None for s in lines)
    # without the image every item of a group sees the same text: identical log-probs
    g0 = [s["logprobs"] for s in lines if s["group_id"] == "g000"]
    assert all(lp == g0[0] for lp in g0)
    manifest = json.loads((tmp_path / "blind" / "run.json").read_text())
    assert manifest["config"]["blind"] is True and manifest["model"]["blind"] is True


def test_random_baseline_is_seeded_and_batch_invariant(small_benchmark, tmp_path):
    run("random", small_benchmark, tmp_path / "a", seed=3)
    run("random", small_benchmark, tmp_path / "b", seed=3, limit=20)
    run("random", small_benchmark, tmp_path / "b", seed=3)
    run("random", small_benchmark, tmp_path / "c", seed=4)
    a, b, c = (stable_lines(tmp_path / x) for x in "abc")
    assert a == b
    assert [s["prediction"] for s in a] != [s["prediction"] for s in c]
    assert all(s["parse_status"] == "strict" for s in a)


def test_frequent_baseline_answers_the_most_common_letter(tmp_path):
    rows = long_rows(n_groups=3, n_controls=3)
    for r in rows:
        r["answer"] = "B"
    data = write_long_dataset(tmp_path / "d", rows)
    result = run("frequent", data, tmp_path / "f")
    assert all(s["prediction"] == "B" for s in stable_lines(tmp_path / "f"))
    assert result.metrics["overall_acc"].value == 1.0


def test_score_recomputes_results_from_samples_alone(tiny_llava, small_benchmark, tmp_path):
    out = tmp_path / "r"
    result = run(tiny_llava, small_benchmark, out, n_bootstrap=300)
    (out / "results.json").unlink()
    rescored = score_run(out, n_bootstrap=300, report=False)
    assert rescored.metrics == result.metrics and rescored.per_group == result.per_group
    assert rescored.benchmark == result.benchmark and rescored.model == result.model


def test_nothing_to_do_skips_loading_the_model(small_benchmark, tmp_path, monkeypatch):
    run("random", small_benchmark, tmp_path / "r")
    import spuriverse.eval.runner as runner

    def boom(*a, **k):
        raise AssertionError("model built although every sample exists")

    monkeypatch.setattr(runner, "build_model", boom)
    result = run("random", small_benchmark, tmp_path / "r")
    assert result.failures.n_samples == 36


def test_chunks_are_capped_by_image_memory(small_benchmark, tmp_path, monkeypatch):
    import spuriverse.eval.runner as runner
    from spuriverse.models.baselines import RandomBaseline

    sizes: list[int] = []
    real = RandomBaseline.generate

    def counting(self, requests):
        sizes.append(len(requests))
        return real(self, requests)

    monkeypatch.setattr(RandomBaseline, "generate", counting)
    run("random", small_benchmark, tmp_path / "big")
    assert sizes == [36]  # one chunk: the baseline takes up to 1,024 requests
    sizes.clear()
    monkeypatch.setattr(runner, "CHUNK_IMAGE_BYTES", 1)  # every image exceeds the budget
    run("random", small_benchmark, tmp_path / "small")
    assert sizes == [1] * 36
    assert stable_lines(tmp_path / "big") == stable_lines(tmp_path / "small")
