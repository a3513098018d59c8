"""`spuriverse curate publish`: a dataset folder that datasets, load_benchmark (long and wide) and
`spuriverse eval` read; controls that never touch mined or judged items; deterministic bytes; the card;
clear refusals; an offline --push that fails without touching the local folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from helpers.curate_data import make_curation_dir
from spuriverse.persist import atomic_write_text
from spuriverse.persist import append_jsonl
from spuriverse.curate.publish import PARQUET, PublishError, PublishOptions, publish
from spuriverse.curate.publish_card import CardMissing
from spuriverse.curate.source import make_source_spec, write_source_spec
from spuriverse.cli import main
from spuriverse.data import load_benchmark
from spuriverse.eval.runner import EvalOptions, run_eval
from spuriverse.schema import Judgment, ModelGap, SynthProvenance, Verification
from spuriverse.synth.base import image_sha256

CARD = "# test-bench\n\nA benchmark for the tests: tiny images, nothing real.\n"


def write_image(build: Path, cid: str, variant: str, k: int) -> None:
    folder = build / "images" / cid / variant
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (24, 24), ((41 * k) % 256, 90 if variant == "spurious" else 210, len(cid) * 5 % 256))
    im.save(folder / f"{k}.png")
    prov = SynthProvenance(
        candidate_id=cid, variant=variant, k=k, status="ok", backend="inpaint", model_id="tiny|inpaint",
        prompt=f"a {variant} scene | {k}", seed=500 + k, width=24, height=24, steps=2, guidance=7.5,
        mask_sha256="ab" * 32, mask_box=(0.5, 0.25, 1.0, 0.75), safety_checker="disabled", image_file=f"{k}.png",
        image_sha256=image_sha256(im), created="2026-11-22T00:00:00Z")
    atomic_write_text(folder / f"{k}.json", prov.model_dump_json(indent=1) + "\n")


def write_source(folder: Path, ids: list[int]) -> Path:
    """A JSONL source benchmark (generic mapping) with images beside it."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for q in ids:
        Image.new("RGB", (16, 16), (q % 256, 30, 60)).save(folder / "images" / f"{q}.png")
        lines.append(json.dumps({"question_id": str(q), "question": f"Question {q}?", "options": ["yes", "no"],
                                 "answer": "B", "image": f"images/{q}.png", "category": "cat"}))
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "questions.jsonl"


def verification(cid: str, kept: bool) -> Verification:
    gap = ModelGap(model="random", n_spurious=3, n_counter=3, acc_spurious=0.0, acc_counter=0.5 if kept else 0.0,
                   gap=0.5 if kept else 0.0, ci_low=0.0, ci_high=1.0, passes=kept)
    return Verification(candidate_id=cid, threshold=0.25, policy="any", models=["random"], n_bootstrap=100, seed=0,
                        per_model=[gap], kept=kept)


@pytest.fixture
def build(tmp_path) -> Path:
    b = make_curation_dir(tmp_path / "build", n=3)
    for cid in ("aokvqa-1000", "aokvqa-1001", "aokvqa-1002"):
        for variant in ("spurious", "counter"):
            for k in range(3 if variant == "spurious" else 2):
                write_image(b, cid, variant, k)
    (b / "images" / "aokvqa-1001" / "spurious" / "2.png").unlink()  # a torn image: not published
    append_jsonl(b / "judgments.jsonl", Judgment(candidate_id="aokvqa-1015", judge="other-judge", prompt_hash="h",
                                                 spurious=False))  # judged, never mined: still no control
    atomic_write_text(b / "verification.jsonl", "".join(
        verification(c, k).model_dump_json() + "\n"
        for c, k in (("aokvqa-1000", True), ("aokvqa-1001", True), ("aokvqa-1002", False))))
    src = write_source(tmp_path / "source", list(range(1000, 1020)))
    write_source_spec(b, make_source_spec(str(src), name="aokvqa"))
    (tmp_path / "card.md").write_text("---\nlicense: mit\n---\n" + CARD)
    return b


def opts(tmp_path: Path, out: str = "ds", **kw) -> PublishOptions:
    return PublishOptions(out=tmp_path / out, name="test-bench", card=tmp_path / "card.md", **kw)


def test_folder_loads_everywhere_with_clean_controls(build, tmp_path):
    import datasets

    s = publish(build, opts(tmp_path, controls=5, seed=7, wide=True))
    out = tmp_path / "ds"
    assert s.counts == {"anchor": 2, "spurious": 5, "counter": 4, "control": 5}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["README.md", f"data/{PARQUET}", "provenance.jsonl", f"wide/{PARQUET}"]

    ds = datasets.load_dataset(str(out), split="test")
    assert isinstance(ds.features["image"], datasets.Image) and len(ds) == 16
    row = ds[0]
    assert (row["item_id"], row["variant"], row["group_id"], row["answer"]) == \
        ("aokvqa-1000/anchor", "anchor", "aokvqa-1000", "A")
    assert row["image"].size == (64, 48) and json.loads(row["provenance"])["kind"] == "anchor"
    assert row["spurious_attribute"] == "bags beside the man" and row["source_id"] == "1000"
    ids = ds["item_id"]
    assert "aokvqa-1001/spurious_2" not in ids and "aokvqa-1002/anchor" not in ids
    spur = ds[ids.index("aokvqa-1000/spurious_1")]
    assert SynthProvenance.model_validate_json(spur["provenance"]).seed == 501
    assert len((out / "provenance.jsonl").read_text().splitlines()) == 9

    # controls: the 5 smallest sha256("7:<qid>") among source items neither mined nor judged
    eligible = [q for q in range(1000, 1020) if q not in (1000, 1001, 1002, 1015)]
    expect = sorted(eligible, key=lambda q: hashlib.sha256(f"7:{q}".encode()).hexdigest())[:5]
    controls = [r for r in ds if r["variant"] == "control"]
    assert sorted(r["source_id"] for r in controls) == sorted(str(q) for q in expect)
    assert controls[0]["item_id"].startswith("control/aokvqa-") and controls[0]["source_benchmark"] == "aokvqa"
    assert s.controls["excluded"] == 4 and s.controls["scanned"] == 20

    bench = load_benchmark(str(out))
    assert bench.info().counts == s.counts and bench.info().n_groups == 2
    result = run_eval(EvalOptions(model="random", dataset=str(out), output_dir=tmp_path / "run", n_bootstrap=50,
                                  progress=False, report=False))
    assert result.failures.n_samples == 16 and result.failures.n_failed == 0

    wide = load_benchmark(str(out), config="wide")
    assert wide.layout == "wide" and wide.info().counts == {"anchor": 2, "spurious": 5}
    assert {i.item_id for i in wide.items()} >= {"aokvqa/1000/anchor", "aokvqa/1001/spurious_2"}
    assert "aokvqa/1001/spurious_3" not in {i.item_id for i in wide.items()}  # 1001 has 2 spurious images
    assert datasets.load_dataset(str(out), "wide", split="test").features["spurious_group_3"] == datasets.Image()

    readme = (out / "README.md").read_text()
    meta = yaml.safe_load(readme.split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]] == ["default", "wide"] and meta["license"] == "other"
    assert {i["config_name"] for i in meta["dataset_info"]} == {"default", "wide"}
    assert "license: mit" not in readme and "A benchmark for the tests" in readme
    assert "**0.25**" in readme and "`random`" in readme and "`fake-judge` (3)" in readme
    assert "`other-judge` (1)" in readme and "seed **7**" in readme and "4 of 20 source items" in readme
    assert "| `aokvqa-1000/spurious_0` | inpaint | tiny\\|inpaint | a spurious scene \\| 0 | 500 |" in readme
    assert "[0.5, 0.25, 1.0, 0.75]" in readme and "Unverified" not in readme


def test_same_inputs_give_identical_bytes_whatever_the_source_order(build, tmp_path):
    publish(build, opts(tmp_path, "a", controls=4, seed=1, wide=True))
    write_source(tmp_path / "source", list(range(1019, 999, -1)))  # the same items, reversed
    publish(build, opts(tmp_path, "b", controls=4, seed=1, wide=True))
    for rel in (f"data/{PARQUET}", f"wide/{PARQUET}", "README.md", "provenance.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    publish(build, opts(tmp_path, "c", controls=4, seed=2))
    assert (tmp_path / "a" / "data" / PARQUET).read_bytes() != (tmp_path / "c" / "data" / PARQUET).read_bytes()


def test_refusals_are_clear_and_leave_no_trace(build, tmp_path):
    (build / "verification.jsonl").rename(build / "v.bak")
    with pytest.raises(PublishError, match="curate verify"):
        publish(build, opts(tmp_path))
    s = publish(build, opts(tmp_path, unverified=True))
    assert s.n_candidates == 3 and "**Unverified.**" in (tmp_path / "ds" / "README.md").read_text()
    (build / "v.bak").rename(build / "verification.jsonl")

    with pytest.raises(PublishError, match="--overwrite"):
        publish(build, opts(tmp_path))
    assert publish(build, opts(tmp_path, overwrite=True)).n_candidates == 2
    with pytest.raises(CardMissing, match="Write one first"):
        publish(build, PublishOptions(out=tmp_path / "x", name="no-such-card"))
    (build / "source.json").unlink()
    with pytest.raises(PublishError, match="source.json"):
        publish(build, opts(tmp_path, "y", controls=3))
    atomic_write_text(build / "verification.jsonl", verification("aokvqa-1000", False).model_dump_json() + "\n")
    with pytest.raises(PublishError, match="0 of 1 kept"):
        publish(build, opts(tmp_path, "z"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
    assert not list(tmp_path.glob(".*publish-*"))  # no temporary folder (the lock file of ds stays)
    assert main(["curate", "publish", str(build), "--out", str(tmp_path / "z"), "--name", "test-bench",
                 "--card", str(tmp_path / "card.md")]) == 2


def test_push_offline_fails_cleanly(build, tmp_path):
    with pytest.raises(PublishError, match="local folder is complete"):
        publish(build, opts(tmp_path, push="someone/test-bench"))
    assert load_benchmark(str(tmp_path / "ds")).info().n_items == 11


def test_cli_publishes_real_synth_output(tmp_path, tiny_sd, capsys):
    from spuriverse.synth.runner import SynthOptions, build_backend, synthesize

    build = make_curation_dir(tmp_path / "b", n=1)
    synthesize(build, build_backend("text2img", str(tiny_sd)), SynthOptions(n=1, width=32, height=32, steps=1,
                                                                            progress=False))
    (tmp_path / "card.md").write_text(CARD)
    out = tmp_path / "ds"
    assert main(["curate", "publish", str(build), "--out", str(out), "--name", "test-bench", "--card",
                 str(tmp_path / "card.md"), "--unverified", "--wide"]) == 0
    assert "(UNVERIFIED)" in capsys.readouterr().out
    bench = load_benchmark(str(out))
    assert bench.info().counts == {"anchor": 1, "spurious": 1, "counter": 1}
    readme = (out / "README.md").read_text()
    assert f"| text2img | {tiny_sd} | a man waiting at a curb with bags, photo |" in readme
    assert load_benchmark(str(out), config="wide").info().counts == {"anchor": 1, "spurious": 1}


def test_killed_publish_then_rerun_gives_the_same_folder(build, tmp_path):
    """SIGKILL `spuriverse curate publish` at several moments; each re-run sweeps what the killed run left
    beside the output and ends with the same bytes as an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def args(out: Path) -> list[str]:
        return [sys.executable, "-m", "spuriverse", "curate", "publish", str(build), "--out", str(out), "--name",
                "test-bench", "--card", str(tmp_path / "card.md"), "--controls", "5", "--wide", "--overwrite"]

    def snapshot(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    ref = tmp_path / "ref" / "ds"
    subprocess.run(args(ref), check=True, env=env, capture_output=True)
    expected = snapshot(ref)
    out = tmp_path / "killed" / "ds"
    for delay in (0.5, 1.5, 2.5, 3.5):
        proc = subprocess.Popen(args(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        subprocess.run(args(out), check=True, env=env, capture_output=True)
        assert snapshot(out) == expected
        leftovers = [p.name for p in out.parent.iterdir() if p.name not in ("ds", ".ds.publish.lock")]
        assert leftovers == []


def test_a_killed_swap_puts_the_previous_version_back(build, tmp_path):
    """Killed between moving the old folder aside and renaming the new one in: the next run restores
    the old one first (nothing lost), then replaces it as asked."""
    out = tmp_path / "ds"
    opts = PublishOptions(out=out, name="test-bench", card=tmp_path / "card.md", overwrite=True)
    publish(build, opts)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    out.rename(tmp_path / ".ds.old-12345")  # what a kill between the renames leaves
    (tmp_path / ".ds.publish-abcd").mkdir()  # and a killed run's temporary folder
    publish(build, opts)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == [".ds.publish.lock"]
