"""`spuriverse synth` over a curation folder with tiny real pipelines and the loopback image API:
layout, determinism, resume after a kill, provenance, masked-region preservation, refusals, shards."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.curate_data import make_curation_dir
from spuriverse.data.curation import accepted_candidates
from spuriverse.schema import SynthProvenance
from spuriverse.synth.base import derive_seed, image_sha256
from spuriverse.synth.runner import SynthInputError, SynthOptions, build_backend, synthesize, synthesize_candidate

REPO = Path(__file__).resolve().parents[2]
FAST = dict(width=64, height=64, steps=2, progress=False)


def files(curation_dir: Path) -> dict[str, bytes]:
    """Every image and provenance file, minus the per-run timestamp in provenance."""
    out = {}
    for p in sorted((curation_dir / "images").rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.suffix == ".json":
                prov = SynthProvenance.model_validate_json(data)
                data = prov.model_copy(update={"created": ""}).model_dump_json().encode()
            out[str(p.relative_to(curation_dir))] = data
    return out


@pytest.fixture
def build(tmp_path):
    return make_curation_dir(tmp_path / "build", n=2)


def test_layout_and_complete_provenance(build, tiny_sd):
    backend = build_backend("text2img", str(tiny_sd), batch_size=4)
    summary = synthesize(build, backend, SynthOptions(n=2, **FAST))
    assert (summary.made, summary.skipped, summary.failed) == (8, 0, 0)
    for c in accepted_candidates(build):
        for variant, text in (("spurious", c.positive), ("counter", c.negative)):
            for k in range(2):
                png = build / "images" / c.candidate_id / variant / f"{k}.png"
                prov = SynthProvenance.model_validate_json(png.with_suffix(".json").read_text())
                assert prov.status == "ok" and prov.image_file == png.name and prov.prompt == text
                assert prov.seed == derive_seed(0, c.candidate_id, variant, k)
                assert (prov.backend, prov.model_id, prov.steps, prov.width, prov.height) == \
                    ("text2img", str(tiny_sd), 2, 64, 64)
                assert prov.safety_checker == "disabled" and "diffusers" in prov.versions
                assert prov.image_sha256 == image_sha256(Image.open(png).convert("RGB"))
    assert not list(build.rglob("*.tmp"))


def test_same_inputs_give_identical_pixels_and_reruns_skip(build, tiny_sd, tmp_path):
    other = make_curation_dir(tmp_path / "other", n=2)
    synthesize(build, build_backend("text2img", str(tiny_sd), batch_size=4), SynthOptions(n=2, **FAST))
    # another folder, another backend instance, and batches composed differently (only 3 of 4 at first)
    synthesize(other, build_backend("text2img", str(tiny_sd), batch_size=4), SynthOptions(n=2, **FAST),
               candidates=["aokvqa-1001"])
    synthesize(other, build_backend("text2img", str(tiny_sd), batch_size=4), SynthOptions(n=2, **FAST))
    assert files(build) == files(other)
    prov = SynthProvenance.model_validate_json((build / "images" / "aokvqa-1000" / "spurious" / "0.json").read_text())
    assert prov.extra["call_batch"] == 4  # pixels depend on the batch size: it is recorded
    again = synthesize(build, build_backend("text2img", str(tiny_sd)), SynthOptions(n=2, **FAST))
    assert (again.made, again.skipped) == (0, 8)
    more = synthesize(build, build_backend("text2img", str(tiny_sd)), SynthOptions(n=3, **FAST))
    assert (more.made, more.skipped) == (4, 8)  # only k=2 is new


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, tiny_sd):
    killed, clean = make_curation_dir(tmp_path / "killed", n=3), make_curation_dir(tmp_path / "clean", n=3)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "spuriverse", "synth", "--backend", "text2img", "--model", str(tiny_sd),
           "--n", "6", "--width", "64", "--height", "64", "--steps", "2", "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen([*cmd, str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "images").rglob("*.json"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(list((killed / "images").rglob("*.json")))
    assert 5 <= n_before < 36, "the run was not killed mid-way"
    subprocess.run([*cmd, str(killed)], env=env, check=True, capture_output=True)
    subprocess.run([*cmd, str(clean)], env=env, check=True, capture_output=True)
    assert files(killed) == files(clean) and len(files(clean)) == 72
    assert not list(killed.rglob("*.tmp"))


def test_inpainting_keeps_everything_outside_the_cue_box(build, tiny_inpaint):
    backend = build_backend("inpaint", str(tiny_inpaint), batch_size=2)
    synthesize(build, backend, SynthOptions(n=1, steps=2, progress=False))
    c = accepted_candidates(build)[0]
    anchor = np.asarray(Image.open(build / c.anchor_image).convert("RGB"))
    out = np.asarray(Image.open(build / "images" / c.candidate_id / "spurious" / "0.png").convert("RGB"))
    assert out.shape == anchor.shape
    h, w = anchor.shape[:2]
    x0, y0, x1, y1 = c.mask_box
    outside = np.ones((h, w), bool)
    outside[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] = False
    assert np.array_equal(out[outside], anchor[outside])
    prov = SynthProvenance.model_validate_json((build / "images" / c.candidate_id / "spurious" / "0.json").read_text())
    assert prov.mask_box == c.mask_box and prov.mask_sha256 and prov.source_image_sha256


def test_instruction_editing_asks_to_add_and_remove_the_cue(build, tiny_pix2pix):
    synthesize(build, build_backend("instruct", str(tiny_pix2pix)), SynthOptions(n=1, steps=2, progress=False))
    c = accepted_candidates(build)[0]
    read = lambda v: SynthProvenance.model_validate_json((build / "images" / c.candidate_id / v / "0.json").read_text())  # noqa: E731
    assert read("spurious").prompt == f"add {c.spurious_attributes[0]}"
    assert read("counter").prompt == f"remove {c.spurious_attributes[0]}"


def test_editing_without_an_anchor_or_mask_is_a_clear_error(tmp_path, tiny_inpaint):
    build = make_curation_dir(tmp_path / "b", n=1, mask_box=None)
    with pytest.raises(SynthInputError, match="has no mask"):
        synthesize(build, build_backend("inpaint", str(tiny_inpaint)), SynthOptions(n=1, progress=False))
    assert not (build / "images").exists()  # validated before anything is written


def test_shards_write_the_same_files_as_one_process(tmp_path, tiny_sd, monkeypatch):
    one, two = make_curation_dir(tmp_path / "one", n=3), make_curation_dir(tmp_path / "two", n=3)
    synthesize(one, build_backend("text2img", str(tiny_sd)), SynthOptions(n=2, **FAST))
    for rank in (0, 1):  # what accelerate launch / torchrun set for each process
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        synthesize(two, build_backend("text2img", str(tiny_sd)), SynthOptions(n=2, **FAST))
    assert files(one) == files(two)


def test_python_api_for_one_candidate(build, tiny_sd):
    c = accepted_candidates(build)[1]
    written = synthesize_candidate(c, build_backend("text2img", str(tiny_sd)), build, SynthOptions(n=1, **FAST))
    assert [(p.variant, p.k, p.status) for p in written] == [("spurious", 0, "ok"), ("counter", 0, "ok")]
    assert sorted(p.name for p in (build / "images").iterdir()) == [c.candidate_id]


def test_api_refusals_are_recorded_and_not_retried(build, monkeypatch):
    from helpers.fake_images_api import FakeImagesServer

    def refuse_snow(i, path, fields):
        return "refuse" if "snow" in str(fields.get("prompt", "")) else None

    with FakeImagesServer(faults=refuse_snow) as srv:
        backend = build_backend("openai", "gpt-image-1", base_url=srv.openai_base_url, api_key="sk-test")
        summary = synthesize(build, backend, SynthOptions(n=1, width=64, height=64, progress=False))
        refused = [p for p in summary.provenance if p.status == "refused"]
        assert len(refused) == 1 and "snow" in refused[0].prompt and refused[0].image_file is None
        assert refused[0].safety_checker == "provider-filter" and refused[0].message
        assert not (build / "images" / refused[0].candidate_id / refused[0].variant / "0.png").exists()
        again = synthesize(build, backend, SynthOptions(n=1, width=64, height=64, progress=False))
        assert (again.made, again.skipped, again.refused) == (0, 4, 0)  # a refusal would repeat: kept
    for p in build.rglob("*.json"):
        assert b"sk-test" not in p.read_bytes()


def test_png_bytes_are_stable(build, tiny_sd):
    synthesize(build, build_backend("text2img", str(tiny_sd)), SynthOptions(n=1, **FAST))
    first = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (build / "images").rglob("*.png")}
    shutil.rmtree(build / "images")  # (the test's own folder)
    synthesize(build, build_backend("text2img", str(tiny_sd)), SynthOptions(n=1, **FAST))
    assert first == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (build / "images").rglob("*.png")}


def test_accelerate_launch_two_processes_write_the_same_files(tmp_path, tiny_sd):
    """A real 2-process launch (`--multi_gpu` + ACCELERATE_USE_CPU: `--cpu` would run one process)."""
    import socket

    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("accelerate is not installed next to this interpreter")
    one, two = make_curation_dir(tmp_path / "one", n=3), make_curation_dir(tmp_path / "two", n=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    args = ["-m", "spuriverse", "synth", "--backend", "text2img", "--model", str(tiny_sd), "--n", "2",
            "--width", "64", "--height", "64", "--steps", "2", "--no-progress"]
    r = subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port",
                        str(port), *args, str(two)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("made ") == 2  # both processes worked
    subprocess.run([sys.executable, *args, str(one)], env=env, check=True, capture_output=True, timeout=300)
    assert files(one) == files(two) and len(files(one)) == 24
