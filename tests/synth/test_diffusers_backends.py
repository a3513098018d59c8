"""diffusers synthesis backends on tiny random-weight pipelines loaded through `from_pretrained`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from spuriverse.synth.base import SynthBackend, SynthRequest, image_sha256
from spuriverse.synth.diffusers_backends import InpaintBackend, InstructBackend, Text2ImageBackend


def req(prompt: str, seed: int, k: int = 0, **kw) -> SynthRequest:
    kw = {"width": 64, "height": 64, "steps": 2, **kw}
    return SynthRequest(candidate_id="c1", variant="spurious", k=k, prompt=prompt, seed=seed, **kw)


def shas(results) -> list[str | None]:
    return [image_sha256(r.image) if r.image is not None else None for r in results]


def noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8))


def box_mask(size, box) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def irregular_mask(size, seed: int = 1) -> Image.Image:
    """An ellipse, a polygon and scattered white pixels, plus grey (not white) pixels that must stay."""
    w, h = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse([w // 8, h // 6, w // 2, h * 2 // 3], fill=255)
    draw.polygon([(w * 3 // 5, 2), (w - 3, h // 3), (w * 2 // 3, h - 4)], fill=255)
    draw.line([(0, h - 1), (w - 1, 0)], fill=128, width=3)  # grey: preserved
    arr = np.array(mask)
    rs = np.random.RandomState(seed)
    arr[rs.rand(h, w) < 0.05] = 255
    return Image.fromarray(arr)


class _Proxy:
    """Stands in for a pipeline: `hook(pipe, **kwargs)` runs instead of `pipe(**kwargs)`."""

    def __init__(self, pipe, hook):
        self._pipe, self._hook = pipe, hook

    def __call__(self, **kwargs):
        return self._hook(self._pipe, **kwargs)

    def __getattr__(self, name):
        return getattr(self._pipe, name)


@pytest.fixture(scope="module")
def t2i(tiny_sd):
    backend = Text2ImageBackend(str(tiny_sd), batch_size=4)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def inpaint(tiny_inpaint):
    backend = InpaintBackend(str(tiny_inpaint), batch_size=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def instruct(tiny_pix2pix):
    backend = InstructBackend(str(tiny_pix2pix), batch_size=2, image_guidance_scale=1.3)
    yield backend
    backend.close()


def test_backends_load_through_from_pretrained(t2i, inpaint, instruct):
    for backend, kind, source, mask in ((t2i, "text2img", False, False), (inpaint, "inpaint", True, True),
                                        (instruct, "instruct", True, False)):
        assert isinstance(backend, SynthBackend)
        assert (backend.kind, backend.needs_source, backend.needs_mask) == (kind, source, mask)
        assert backend.revision is None  # a local folder has no commit
        assert backend._extra["scheduler"] == "DDIMScheduler"
        assert backend._extra["dtype"] == "float32" and backend._extra["device"] == "cpu"
    assert type(t2i.pipe).__name__ == "StableDiffusionPipeline"
    assert type(inpaint.pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert type(instruct.pipe).__name__ == "StableDiffusionInstructPix2PixPipeline"


def test_text2img_deterministic_also_after_reload(t2i, tiny_sd):
    r = req("a cat on the sofa", 11)
    first, again = t2i.generate([r]), t2i.generate([r])
    assert first[0].status == "ok" and first[0].safety == "disabled"
    assert first[0].image.size == (64, 64) and first[0].image.mode == "RGB"
    assert first[0].extra["call_batch"] == 4
    with Text2ImageBackend(str(tiny_sd), batch_size=4) as fresh:
        reloaded = fresh.generate([r])
    assert shas(first) == shas(again) == shas(reloaded)


def test_different_seeds_different_pixels(t2i):
    a, b = t2i.generate([req("a cat", 1), req("a cat", 2)])
    assert not np.array_equal(np.array(a.image), np.array(b.image))


def test_batch_composition_never_changes_pixels(t2i):
    """Padding every call to `batch_size` rows makes each image depend on its own request only:
    alone, at another position, with other prompts, negative prompts in other groups, a 6-request
    list split into 4 + 2: identical pixels."""
    x = req("a red car", 7)
    others = [req("a dog in the snow", 3), req("the sea", 4), req("an apple and a pear", 5)]
    alone = shas(t2i.generate([x]))[0]
    mixed = t2i.generate([others[0], x, req("blurry", 9, negative_prompt="ugly"), *others[1:], req("z", 8)])
    assert all(r.status == "ok" for r in mixed)
    assert shas(mixed)[1] == alone
    assert shas(t2i.generate([*others, x]))[3] == alone
    assert shas(t2i.generate(others[:1] + [x]))[1] == alone
    # batched call == one-at-a-time calls, request by request
    batch = [*others, x]
    assert shas(t2i.generate(batch)) == [shas(t2i.generate([r]))[0] for r in batch]


def test_odd_batch_size_random_compositions(tiny_sd):
    """An odd batch size (rows straddle thread chunks) and shuffled sub-batches: still identical."""
    import random

    rng = random.Random(0)
    words = "a cat dog red car sea snow apple pear the on in with tree house big".split()
    reqs = [req(" ".join(rng.choices(words, k=rng.randint(1, 7))), 100 + i, k=i) for i in range(8)]
    with Text2ImageBackend(str(tiny_sd), batch_size=5) as backend:
        ref = shas(backend.generate(reqs))
        for _ in range(2):
            sub = rng.sample(range(8), 6)
            assert shas(backend.generate([reqs[i] for i in sub])) == [ref[i] for i in sub]


def test_each_distinct_prompt_encoded_once(tiny_sd):
    with Text2ImageBackend(str(tiny_sd), batch_size=4) as backend:
        backend.generate([req("a cat", s) for s in range(4)])
        assert len(backend._encoded) == 2  # the prompt and the empty unconditional prompt
        backend.generate([req("a cat", s) for s in range(4, 8)] + [req("a dog", 9)])
        assert len(backend._encoded) == 3


def test_batch_size_itself_may_move_a_value_by_one(t2i, tiny_sd):
    """Documented limit: the pixels are a function of `batch_size` too (kernels are chosen by
    shape). A different batch size moves at most a few uint8 values by 1; the same batch size
    never does (previous test). `fixed_batch=False` calls are shaped by their request count."""
    r = req("a red car", 7)
    ref = np.array(t2i.generate([r])[0].image, dtype=int)
    with Text2ImageBackend(str(tiny_sd), batch_size=1) as one:
        single = np.array(one.generate([r])[0].image, dtype=int)
    assert np.abs(ref - single).max() <= 1
    assert (ref != single).mean() < 0.01


def test_negative_prompt_and_guidance_groups(t2i):
    rs = [req("a cat", 1), req("a cat", 1, negative_prompt="blurry"), req("a cat", 1, guidance=1.0)]
    out = t2i.generate(rs)
    assert [r.status for r in out] == ["ok"] * 3
    assert len(set(shas(out))) == 3
    assert shas(out)[1] == shas(t2i.generate([rs[1]]))[0]


@pytest.mark.parametrize("size", [(64, 64), (60, 45)])
def test_inpaint_preserves_every_unmasked_pixel(inpaint, size):
    source = noise_image(*size)
    masks = [box_mask(size, [10, 8, 40, 30]), irregular_mask(size)]
    rs = [req("add a hat", 5, k=i, source=source, mask=m) for i, m in enumerate(masks)]
    out = inpaint.generate(rs)
    src = np.array(source)
    for r, m in zip(out, masks):
        assert r.status == "ok", r.message
        assert r.image.size == size and r.image.mode == "RGB"
        res, repaint = np.array(r.image), np.array(m) == 255
        assert np.array_equal(res[~repaint], src[~repaint])  # every other pixel, exactly
        assert (res[repaint] != src[repaint]).any(axis=-1).mean() > 0.5
    if size == (60, 45):
        assert out[0].extra["call_size"] == "64x48"
    # deterministic, and the batch does not matter
    assert shas(inpaint.generate(rs[1:])) == shas(out)[1:]


def test_inpaint_strength_is_passed(inpaint):
    source, mask = noise_image(64, 64), box_mask((64, 64), [0, 0, 31, 31])
    full, half = inpaint.generate([req("x", 1, source=source, mask=mask), req("x", 1, source=source, mask=mask,
                                                                              strength=0.5)])
    assert full.status == half.status == "ok"
    assert image_sha256(full.image) != image_sha256(half.image)


def test_instruct_edit_keeps_source_size(instruct):
    source = noise_image(60, 45, seed=3)
    rs = [req("add a snowy background", 4, source=source), req("remove the dog", 5, source=source)]
    out = instruct.generate(rs)
    assert [r.status for r in out] == ["ok", "ok"]
    assert all(r.image.size == (60, 45) for r in out)
    assert out[0].extra["image_guidance_scale"] == 1.3 and out[0].extra["call_size"] == "64x48"
    assert shas(instruct.generate(rs[1:])) == shas(out)[1:]
    assert not np.array_equal(np.array(out[0].image), np.array(source))


def test_invalid_requests_fail_alone(inpaint, instruct):
    good = req("x", 1, source=noise_image(64, 64), mask=box_mask((64, 64), [0, 0, 9, 9]))
    out = inpaint.generate([
        req("no source", 1),
        req("no mask", 1, source=noise_image(64, 64)),
        req("bad mask", 1, source=noise_image(64, 64), mask=box_mask((32, 32), [0, 0, 9, 9])),
        good,
    ])
    assert [r.status for r in out] == ["failed", "failed", "failed", "ok"]
    assert "source" in out[0].message and "mask" in out[1].message and "differs" in out[2].message
    assert out[0].image is None
    bad = instruct.generate([req("x", 1, source=noise_image(64, 64), strength=0.5)])
    assert bad[0].status == "failed" and "strength" in bad[0].message


def test_one_raising_request_costs_one_failure(t2i, monkeypatch):
    rs = [req("a cat", 1), req("boom", 2), req("a dog", 3)]
    clean = shas(t2i.generate([rs[0], rs[2]]))
    calls = []

    def hook(pipe, **kw):
        calls.append(len(kw["prompt"]))
        if "boom" in kw["prompt"]:
            raise ValueError("this prompt breaks the pipeline\nsecond line")
        return pipe(**kw)

    monkeypatch.setattr(t2i, "pipe", _Proxy(t2i.pipe, hook))
    out = t2i.generate(rs)
    assert [r.status for r in out] == ["ok", "failed", "ok"]
    assert out[1].message == "ValueError: this prompt breaks the pipeline" and out[1].image is None
    assert calls == [4, 4, 4, 4]  # the batch, then each request alone (still padded to 4 rows)
    assert [shas(out)[0], shas(out)[2]] == clean  # retried alone, same pixels


def test_safety_checker_flags_become_refusals(t2i, monkeypatch):
    def hook(pipe, **kw):
        out = pipe(**kw)
        out.nsfw_content_detected = ["nsfw" in p for p in kw["prompt"]]
        return out

    monkeypatch.setattr(t2i, "_has_checker", True)  # as if the pipeline came with a checker
    monkeypatch.setattr(t2i, "pipe", _Proxy(t2i.pipe, hook))
    flagged, passed = t2i.generate([req("nsfw thing", 1), req("a cat", 2)])
    assert (flagged.status, flagged.image, flagged.safety) == ("refused", None, "flagged")
    assert flagged.message == "safety checker flagged the image"
    assert (passed.status, passed.safety) == ("ok", "passed") and passed.image is not None


def test_cpu_offload_on_cpu_warns_and_close(tiny_sd):
    with pytest.warns(UserWarning, match="cpu_offload"):
        backend = Text2ImageBackend(str(tiny_sd), device="cpu", batch_size=1, cpu_offload=True)
    backend.close()
    out = backend.generate([req("a cat", 1)])
    assert out[0].status == "failed" and "closed" in out[0].message


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")  # diffusers -> hf_hub
def test_hub_id_records_the_snapshot_commit(tiny_sd):
    """A hub id loads offline from the HF cache; `revision` is the snapshot's commit, not the ref."""
    import shutil
    from pathlib import Path

    from huggingface_hub import constants

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--spv-test--tiny-sd"
    shutil.copytree(tiny_sd, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    try:
        with Text2ImageBackend("spv-test/tiny-sd", revision="main", batch_size=1) as backend:
            assert backend.revision == sha
            assert backend.generate([req("a cat", 1)])[0].status == "ok"
    finally:
        shutil.rmtree(repo)


def test_unpadded_calls_and_power_of_two_threads(tiny_sd):
    with Text2ImageBackend(str(tiny_sd), batch_size=4, fixed_batch=False, cpu_threads=3) as backend:
        assert backend.cpu_threads == 2  # 3 threads would split rows mid-vector
        out = backend.generate([req("a cat", 1), req("a dog", 2)])
    assert [r.status for r in out] == ["ok", "ok"]
    assert out[0].extra["call_batch"] is None and out[0].extra["cpu_threads"] == 2
