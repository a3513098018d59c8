"""`spuriverse curate verify`: the verification benchmark, gaps through the eval harness (baselines and a
tiny random-weight LLaVA), failures excluded, seeded bootstrap, resume after SIGKILL, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers.curate_data import make_curation_dir
from spuriverse.persist import atomic_write_text
from spuriverse.curate.verify import (
    BENCH_PARQUET,
    VerifyError,
    VerifyOptions,
    gap_of,
    model_slug,
    read_verifications,
    verify,
)
from spuriverse.cli import main
from spuriverse.data import load_benchmark
from spuriverse.schema import Sample, SynthProvenance
from spuriverse.synth.base import image_sha256

REPO = Path(__file__).resolve().parents[2]


def write_image(build: Path, cid: str, variant: str, k: int, status: str = "ok") -> None:
    """One synthesized image as `spuriverse synth` leaves it: PNG + SynthProvenance beside it."""
    folder = build / "images" / cid / variant
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (32, 32), ((37 * k) % 256, 100 if variant == "spurious" else 200, len(cid) * 7 % 256))
    if status == "ok":
        im.save(folder / f"{k}.png")
    prov = SynthProvenance(
        candidate_id=cid, variant=variant, k=k, status=status, backend="text2img", model_id="tiny-sd",
        prompt=f"{variant} scene", seed=1000 + k, width=32, height=32, steps=2, guidance=7.5,
        safety_checker="disabled", image_file=f"{k}.png" if status == "ok" else None,
        image_sha256=image_sha256(im) if status == "ok" else None, created="2026-11-22T00:00:00Z")
    atomic_write_text(folder / f"{k}.json", prov.model_dump_json(indent=1) + "\n")


def with_images(build: Path, n: int, cids=("aokvqa-1000", "aokvqa-1001")) -> Path:
    for cid in cids:
        for variant in ("spurious", "counter"):
            for k in range(n):
                write_image(build, cid, variant, k)
    return build


def sample(item_id: str, variant: str, correct: bool | None) -> Sample:
    """correct None: a failed request."""
    failed = correct is None
    return Sample(index=0, item_id=item_id, group_id="g", variant=variant, n_options=4, answer="A",
                  prediction=None if failed else ("A" if correct else "B"), correct=bool(correct),
                  parse_status=None if failed else "logprob", error="boom" if failed else None,
                  error_type="api" if failed else None, scoring="logprob", prompt_hash="h")


def test_gap_counts_failures_apart_and_bootstrap_is_seeded():
    sp = [sample(f"s{i}", "spurious", c) for i, c in enumerate([True, False, False, None])]
    co = [sample(f"c{i}", "counter", c) for i, c in enumerate([True, True, True, False, None])]
    g = gap_of("m", sp, co, threshold=0.2, n_bootstrap=500, confidence=0.95, seed=3, key="cand")
    assert (g.n_spurious, g.n_counter, g.failed) == (3, 4, 2)
    assert g.acc_spurious == pytest.approx(1 / 3) and g.acc_counter == pytest.approx(0.75)
    assert g.gap == pytest.approx(0.75 - 1 / 3) and g.passes
    assert g.ci_low <= g.gap <= g.ci_high
    assert gap_of("m", sp, co, 0.2, 500, 0.95, 3, "cand") == g
    assert gap_of("m", sp, co, 0.2, 500, 0.95, 4, "cand") != g  # another seed, another interval
    assert not gap_of("m", sp, co, threshold=g.gap, n_bootstrap=0, confidence=0.95, seed=3, key="c").passes
    none = gap_of("m", sp, [sample("c", "counter", None)], 0.0, 100, 0.95, 0, "c")
    assert (none.gap, none.passes, none.n_counter, none.failed, none.ci_low) == (None, False, 0, 2, None)


def test_model_slugs_are_safe_and_distinct():
    assert model_slug("random") == "random"
    slugs = {model_slug(m) for m in ("openai:gpt-4o", "openai_gpt-4o", "/tmp/x/tiny-llava", "random")}
    assert len(slugs) == 4 and all("/" not in s and ":" not in s for s in slugs)


def test_baselines_through_the_harness(tmp_path):
    build = with_images(make_curation_dir(tmp_path / "b", n=3, decisions=["accept", "accept", "reject"]), 3)
    write_image(build, "aokvqa-1000", "counter", 3, status="failed")  # never asked
    write_image(build, "aokvqa-1001", "spurious", 3, status="refused")
    opts = VerifyOptions(models=["frequent", "random"], threshold=-0.01, policy="all", n_bootstrap=200,
                         progress=False)
    res = verify(build, opts)
    bench = load_benchmark(str(build / "verify" / "benchmark"))
    items = list(bench.items())
    assert len(items) == res.n_items == 12 and bench.info().counts == {"spurious": 6, "counter": 6}
    first = items[0]
    assert (first.item_id, first.group_id, first.variant, first.answer) == \
        ("aokvqa-1000/spurious_0", "aokvqa-1000", "spurious", "A")
    assert first.question == "What is happening 0?" and first.spurious_attribute == "bags beside the man"
    assert {i.item_id for i in items} >= {"aokvqa-1001/counter_2"}
    assert not any("counter_3" in i.item_id or "spurious_3" in i.item_id for i in items)

    lines = read_verifications(build)
    assert [v.candidate_id for v in lines] == ["aokvqa-1000", "aokvqa-1001"]  # the rejected one is absent
    for v in lines:
        freq, rand = v.per_model
        # `frequent` answers the benchmark's most common letter (A, always right here): no gap
        assert (freq.model, freq.acc_spurious, freq.acc_counter, freq.gap, freq.passes) == \
            ("frequent", 1.0, 1.0, 0.0, True)
        assert (rand.n_spurious, rand.n_counter, rand.failed) == (3, 3, 0)
        assert rand.passes == (rand.gap > -0.01)
        assert v.kept == (freq.passes and rand.passes) and v.models == ["frequent", "random"]
    summary = json.loads((build / "verify_summary.json").read_text())
    assert summary["n_candidates"] == 2 and summary["n_kept"] == sum(v.kept for v in lines)
    assert summary["per_model"]["frequent"]["mean_gap"] == 0.0 and summary["threshold"] == -0.01
    assert (build / "verify" / "runs" / "random" / "samples.jsonl").read_text().count("\n") == 12

    # re-running: same bytes, benchmark untouched, nothing asked again
    parquet = build / "verify" / "benchmark" / BENCH_PARQUET
    before = (parquet.stat().st_mtime_ns, (build / "verification.jsonl").read_bytes())
    verify(build, opts)
    assert (parquet.stat().st_mtime_ns, (build / "verification.jsonl").read_bytes()) == before

    # the threshold is strict (gap > T), and policy any keeps what one model passes
    stricter = verify(build, VerifyOptions(models=["frequent", "random"], threshold=0.0, policy="any",
                                           n_bootstrap=0, progress=False))
    for v in stricter.verifications:
        assert not v.per_model[0].passes and v.kept == v.per_model[1].passes
        assert v.per_model[1].ci_low is None

    # new images since: the benchmark changes and the old runs are set aside, not mixed in
    write_image(build, "aokvqa-1001", "counter", 3)
    res = verify(build, opts)
    assert res.n_items == 13 and read_verifications(build)[1].per_model[1].n_counter == 4
    assert list((build / "verify" / "runs" / ".stale").iterdir())


def test_nothing_to_verify_is_a_clear_error(tmp_path):
    build = make_curation_dir(tmp_path / "b", n=1)
    with pytest.raises(VerifyError, match="spuriverse synth"):
        verify(build, VerifyOptions(models=["random"], threshold=0.1, progress=False))
    assert main(["curate", "verify", str(build), "--models", "random", "--threshold", "0.1", "--no-progress"]) == 2


def test_cli_with_a_tiny_llava(tmp_path, tiny_llava, capsys):
    build = with_images(make_curation_dir(tmp_path / "b", n=2), 2)
    code = main(["curate", "verify", str(build), "--models", f"{tiny_llava},random", "--threshold", "0.25",
                 "--n-bootstrap", "100", "--batch-size", "4", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "aokvqa-1000" in out and "kept" in out and "random: mean gap" in out
    lines = read_verifications(build)
    assert [g.model for g in lines[0].per_model] == [str(tiny_llava), "random"]
    g = lines[0].per_model[0]
    assert (g.n_spurious, g.n_counter, g.failed) == (2, 2, 0) and g.gap is not None
    run = build / "verify" / "runs" / model_slug(str(tiny_llava))
    assert (run / "samples.jsonl").read_text().count("\n") == 8 and (run / "results.json").exists()


def test_resume_after_sigkill_gives_the_same_verification(tmp_path, tiny_llava):
    cids = ("aokvqa-1000", "aokvqa-1001", "aokvqa-1002")
    killed = with_images(make_curation_dir(tmp_path / "killed", n=3), 12, cids)
    clean = with_images(make_curation_dir(tmp_path / "clean", n=3), 12, cids)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "spuriverse", "curate", "verify", "--models", f"{tiny_llava},random",
           "--threshold", "0.1", "--n-bootstrap", "100", "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen([*cmd, str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = killed / "verify" / "runs" / model_slug(str(tiny_llava)) / "samples.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline:
        if samples.exists() and samples.read_text().count("\n") >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = samples.read_text().count("\n")
    assert 5 <= n_before < 72, "the run was not killed mid-way"
    assert not (killed / "verification.jsonl").exists()
    subprocess.run([*cmd, str(killed)], env=env, check=True, capture_output=True)
    subprocess.run([*cmd, str(clean)], env=env, check=True, capture_output=True)
    assert (killed / "verification.jsonl").read_bytes() == (clean / "verification.jsonl").read_bytes()
    assert len(read_verifications(killed)) == 3
