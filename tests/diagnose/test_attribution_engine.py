"""Attribution through the real forward of each family: IG completeness, every method on every supported
family, and maps that do not depend on the batch size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from spuriverse.diagnose.attribution import AttributionOptions, MethodParams, run_attribution
from spuriverse.diagnose.attribution.engine import Attributor
from spuriverse.diagnose.attribution.files import read_map, read_rows
from spuriverse.diagnose.attribution.methods import METHODS
from spuriverse.models.base import ImageInput, Request
from spuriverse.models.hf import HFBackend


def _requests(n: int, size: tuple[int, int]) -> list[Request]:
    out = []
    for i in range(n):
        buf = io.BytesIO()
        pixels = (np.random.default_rng(i).random((size[1], size[0], 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(buf, format="PNG")
        out.append(Request(system=None, prompt=f"Question {i}? " + "word " * i + "(A) x (B) y (C) z",
                           image=ImageInput.from_bytes(buf.getvalue()), letters=("A", "B", "C")))
    return out


@pytest.fixture(scope="module")
def families(tiny_llava, tiny_llava_next, tiny_idefics3, tmp_path_factory):
    from helpers.tiny_archs import build_tiny_qwen2_5_vl

    qwen = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen-engine"))
    return {"llava": tiny_llava, "llava_next": tiny_llava_next, "idefics3": tiny_idefics3, "qwen2_5_vl": qwen}


@pytest.mark.parametrize("family", ["llava", "llava_next", "idefics3", "qwen2_5_vl"])
def test_every_method_runs_and_ig_is_complete(families, family):
    """Each method gives a finite map of the original size; IG's attributions sum to score(x) - score(baseline)
    within 1e-3 + 5 %, in both input spaces (pixels; projected image-token embeddings)."""
    backend = HFBackend(str(families[family]), device="cpu")
    att = Attributor(backend, target="contrast", baseline="mean")
    batch = att.prepare(["a", "b"], _requests(2, (48, 40)), ["A", "C"])
    params = MethodParams(ig_steps=16, smooth_samples=2, occlusion_patch=16)
    for name, method in METHODS.items():
        for space in method.spaces:
            a = method.run(att, batch, space, params)
            rasters = att.rasters(a, batch)
            assert all(r.shape == (40, 48) and np.isfinite(r).all() for r in rasters), (name, space)
            assert any(np.abs(r).sum() > 0 for r in rasters), (name, space)
            if name == "ig":
                total = a.values.flatten(1).sum(1)
                gap = a.score - a.score_baseline
                assert ((total - gap).abs() <= 1e-3 + 0.05 * gap.abs()).all(), (space, total, gap)


def _maps(model, dataset, out, batch_size: int, methods: list[str]) -> dict:
    run_attribution(AttributionOptions(
        model=str(model), dataset=str(dataset), out=out, methods=methods, metrics=[], sanity_items=0, limit=8,
        params=MethodParams(ig_steps=8, smooth_samples=2, occlusion_patch=8), batch_size=batch_size, progress=False, n_bootstrap=10))
    return {(r.item_id, r.method): read_map(out, r.map_file) for r in read_rows(out)}


def test_maps_identical_at_batch_sizes_1_and_8(tiny_llava, world_bench, small_benchmark, tmp_path):
    """8 planted-cue items (prompts of one length: no padding): bit-identical maps for every method. Items
    whose prompts differ in length (here 5 of one group, 3 of another) are left-padded together; then the
    maps agree to float32 rounding of
    the padded forward (measured: 1.5e-6 of the map's maximum for gradient methods, 1e-6 absolute for
    occlusion, whose values are differences of scores)."""
    methods = list(METHODS)
    one, eight = (_maps(tiny_llava, world_bench, tmp_path / f"w{b}", b, methods) for b in (1, 8))
    assert one.keys() == eight.keys() and len(one) == 8 * len(methods)
    for key in one:
        assert np.array_equal(one[key], eight[key]), key
    one, eight = (_maps(tiny_llava, small_benchmark, tmp_path / f"p{b}", b, ["ig", "occlusion"]) for b in (1, 8))
    for key in one:
        scale = 1.0 if key[1] == "occlusion" else float(np.abs(one[key]).max())
        np.testing.assert_allclose(eight[key], one[key], rtol=0, atol=1e-5 * scale, err_msg=str(key))


def test_the_score_is_the_log_prob_scorers_forward(tiny_llava, world_bench, tmp_path):
    """The attributed letters' log-softmax is `spuriverse eval --scoring logprob`'s own numbers, renormalised
    over the options (eval records full-vocabulary log-probs at the letters): same inputs, same position."""
    from spuriverse.eval.runner import EvalOptions, run_eval
    from spuriverse.eval.samples import read_run_samples

    run_eval(EvalOptions(model=str(tiny_llava), dataset=str(world_bench), output_dir=tmp_path / "eval",
                         scoring="logprob", progress=False, report=False, n_bootstrap=10))
    samples = {s.item_id: s for s in read_run_samples(tmp_path / "eval")}
    rows = _maps(tiny_llava, world_bench, tmp_path / "attr", 8, ["saliency"])
    for r in read_rows(tmp_path / "attr"):
        s = samples[r.item_id]
        full = np.array([s.logprobs[k] for k in r.logprobs])
        ours = np.array(list(r.logprobs.values()))
        np.testing.assert_allclose(ours, full - np.logaddexp.reduce(full), atol=1e-5)
        assert r.prediction == s.prediction
    assert len(rows) == 8
