"""Image-API synth backends (real openai / httpx2 clients) against the loopback fake image APIs."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image, ImageDraw

from spuriverse.synth.api_backends import OpenAIImagesBackend, StabilityBackend, alpha_mask, closest_aspect_ratio
from spuriverse.synth.base import SynthBackend, SynthRequest, image_sha256

from helpers.fake_images_api import OPENAI_REFUSAL, STABILITY_REFUSAL, FakeImagesServer, fake_image

KEY = "sk-test-images-key-4242"
FAST = {"backoff_base": 0.01, "timeout": 2.0}


def _req(i: int = 0, *, prompt: str | None = None, seed: int = 1, w: int = 64, h: int = 48, **kw) -> SynthRequest:
    return SynthRequest(candidate_id=f"c{i}", variant="spurious", k=i, prompt=prompt or f"prompt number {i}",
                        seed=seed, width=w, height=h, **kw)


def _source(size=(64, 48)) -> Image.Image:
    img = Image.new("RGB", size)
    img.putdata([(x * 4 % 256, y * 5 % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    return img


def _mask(size=(64, 48), box=(16, 8, 40, 30)) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rectangle(box, fill=255)
    return m


def _first_time(plan: dict[str, str]):
    """Faults: a request whose prompt is in `plan` gets that fault on its first attempt only."""
    seen: set[str] = set()
    lock = threading.Lock()

    def faults(i, path, fields):
        p = fields.get("prompt")
        with lock:
            if p in plan and p not in seen:
                seen.add(p)
                return plan[p]
        return None

    return faults


@pytest.fixture
def server():
    with FakeImagesServer() as srv:
        yield srv


def _openai(srv: FakeImagesServer, **kw) -> OpenAIImagesBackend:
    kw = {"model": "dall-e-2", "api_key": KEY, "concurrency": 3, **FAST, **kw}
    return OpenAIImagesBackend(base_url=srv.openai_base_url, **kw)


def _stability(srv: FakeImagesServer, **kw) -> StabilityBackend:
    return StabilityBackend(base_url=srv.stability_base_url, **{"api_key": KEY, "concurrency": 3, **FAST, **kw})


# ---------------------------------------------------------------- protocol
def test_protocol_attributes(server):
    for be, kind, edits in [(_openai(server), "openai", False), (_openai(server, mode="edit"), "openai", True),
                            (_stability(server), "stability", False), (_stability(server, mode="inpaint"), "stability", True)]:
        with be:
            assert isinstance(be, SynthBackend)
            assert (be.kind, be.revision, be.batch_size) == (kind, None, 3)
            assert be.needs_source is edits and be.needs_mask is edits
            if edits:
                with pytest.raises(ValueError, match="source"):
                    be.generate([_req()])
    with pytest.raises(ValueError, match="mode"):
        _openai(server, mode="inpaint")
    with pytest.raises(ValueError, match="unknown Stability model"):
        _stability(server, model="dall-e-3")


@pytest.mark.parametrize("wh, ratio", [((512, 512), "1:1"), ((1920, 1080), "16:9"), ((640, 480), "5:4"),
                                       ((480, 720), "2:3"), ((300, 700), "9:21"), ((1000, 560), "16:9")])
def test_closest_aspect_ratio(wh, ratio):
    assert closest_aspect_ratio(*wh) == ratio


# ---------------------------------------------------------------- OpenAI
def test_openai_generate_in_order_with_revised_prompt():
    with FakeImagesServer(latency=0.05) as srv, _openai(srv) as be:
        reqs = [_req(i) for i in range(7)]
        res = be.generate(reqs)
        assert [r.status for r in res] == ["ok"] * 7
        for r, q in zip(res, reqs):
            assert r.image.mode == "RGB" and r.image.size == (64, 48)
            assert image_sha256(r.image) == image_sha256(fake_image(q.prompt, None, (64, 48)))
            assert r.extra["revised_prompt"] == f"{q.prompt} (revised)"
            assert r.extra["seedable"] is False and r.safety == "n/a" and r.message is None
        body = srv.requests[0]["fields"]
        assert srv.requests[0]["path"] == "/v1/images/generations"
        assert {k: body[k] for k in ("model", "n", "size", "response_format")} == {
            "model": "dall-e-2", "n": 1, "size": "64x48", "response_format": "b64_json"}
        assert "seed" not in body
        assert 1 < srv.max_in_flight <= 3


def test_gpt_image_sends_no_response_format_and_recovers_if_rejected(server):
    with _openai(server, model="gpt-image-1", quality="low") as be:
        assert be.generate([_req(0)])[0].status == "ok"
        assert "response_format" not in server.requests[-1]["fields"]
        assert server.requests[-1]["fields"]["quality"] == "low"
        be._send_format = True  # as if the model were unknown: the 400 naming it turns it off, no failure
        res = be.generate([_req(1)])[0]
        assert res.status == "ok" and res.extra["attempts"] == 1
        assert [r["fields"].get("response_format") for r in server.requests[-2:]] == ["b64_json", None]


def test_openai_url_results_are_fetched():
    with FakeImagesServer(openai_url=True) as srv, _openai(srv) as be:
        res = be.generate([_req(3)])[0]
        assert res.status == "ok" and image_sha256(res.image) == image_sha256(fake_image(_req(3).prompt, None, (64, 48)))


def test_openai_edit_sends_source_and_alpha_mask(server):
    src, mask = _source(), _mask()
    with _openai(server, mode="edit") as be:
        res = be.generate([_req(0, source=src, mask=mask)])[0]
    assert res.status == "ok"
    rec, up = server.requests[0], server.uploads[0]
    assert rec["path"] == "/v1/images/edits"
    assert rec["fields"]["prompt"] == _req(0).prompt and rec["fields"]["model"] == "dall-e-2"
    assert rec["files"]["image"]["content_type"] == "image/png" and rec["files"]["mask"]["size"] == len(up["mask"])
    sent = Image.open(io.BytesIO(up["image"]))
    assert sent.format == "PNG" and sent.convert("RGB").tobytes() == src.tobytes()
    sent_mask = Image.open(io.BytesIO(up["mask"]))
    assert sent_mask.format == "PNG" and sent_mask.mode == "RGBA"
    alpha = sent_mask.getchannel("A").tobytes()
    assert alpha == bytes(0 if v == 255 else 255 for v in mask.tobytes())  # transparent exactly where white
    out, new = res.image, fake_image(_req(0).prompt, None, src.size)
    for xy in [(0, 0), (63, 47), (15, 20), (41, 31)]:  # outside the mask: the source's pixels
        assert out.getpixel(xy) == src.getpixel(xy)
    for xy in [(16, 8), (40, 30), (28, 19)]:  # inside: repainted
        assert out.getpixel(xy) == new.getpixel(xy)


def test_alpha_mask_resizes_to_the_source():
    m = alpha_mask(_mask((32, 24), (0, 0, 15, 23)), (64, 48))
    assert m.size == (64, 48) and m.getpixel((0, 0))[3] == 0 and m.getpixel((63, 0))[3] == 255


# ---------------------------------------------------------------- Stability
def test_stability_generate_is_deterministic_per_seed(server):
    with _stability(server) as be:
        a, b, c = be.generate([_req(0, prompt="a cow on a beach", seed=7, w=1024, h=576),
                               _req(1, prompt="a cow on a beach", seed=7, w=1024, h=576),
                               _req(2, prompt="a cow on a beach", seed=8, w=1024, h=576)])
    assert a.status == b.status == c.status == "ok"
    assert a.image.mode == "RGB" and a.image.tobytes() == b.image.tobytes() != c.image.tobytes()
    assert a.image.size == (96, 54)  # the fake's 16:9
    assert (a.extra["seed"], c.extra["seed"], a.extra["seedable"]) == (7, 8, True)
    assert a.extra["finish_reason"] == "SUCCESS" and a.extra["aspect_ratio"] == "16:9"
    assert sorted(r["fields"]["seed"] for r in server.requests) == ["7", "7", "8"]  # arrival order varies
    for rec in server.requests:
        assert rec["path"] == "/v2beta/stable-image/generate/ultra" and rec["accept"] == "image/*"
        f = rec["fields"]
        assert (f["aspect_ratio"], f["output_format"], f["prompt"]) == ("16:9", "png", "a cow on a beach")
        assert "model" not in f


def test_stability_sd3_sends_model_and_negative_prompt(server):
    with _stability(server, model="sd3.5-large", output_format="jpeg") as be:
        res = be.generate([_req(0, seed=5, w=512, h=768, negative_prompt="blurry")])[0]
    assert res.status == "ok" and res.image.mode == "RGB"
    rec = server.requests[0]
    assert rec["path"] == "/v2beta/stable-image/generate/sd3"
    assert {k: rec["fields"][k] for k in ("model", "negative_prompt", "aspect_ratio", "output_format")} == {
        "model": "sd3.5-large", "negative_prompt": "blurry", "aspect_ratio": "2:3", "output_format": "jpeg"}


def test_stability_inpaint_sends_image_and_mask(server):
    src, mask = _source(), _mask()
    with _stability(server, mode="inpaint") as be:
        res = be.generate([_req(0, seed=11, source=src, mask=mask)])[0]
    assert res.status == "ok" and res.image.size == src.size
    rec, up = server.requests[0], server.uploads[0]
    assert rec["path"] == "/v2beta/stable-image/edit/inpaint"
    assert (rec["fields"]["seed"], rec["fields"]["grow_mask"]) == ("11", "0") and "aspect_ratio" not in rec["fields"]
    assert Image.open(io.BytesIO(up["image"])).convert("RGB").tobytes() == src.tobytes()
    assert Image.open(io.BytesIO(up["mask"])).convert("L").tobytes() == mask.tobytes()
    new = fake_image(_req(0).prompt, 11, src.size)
    assert res.image.getpixel((0, 0)) == src.getpixel((0, 0)) and res.image.getpixel((20, 10)) == new.getpixel((20, 10))


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("fault", ["refuse", "moderation_blocked"])
def test_openai_refusal_is_recorded_not_retried(fault):
    with FakeImagesServer(faults=lambda i, p, f: fault if f["prompt"] == "bad" else None) as srv, _openai(srv) as be:
        res = be.generate([_req(0), _req(1, prompt="bad"), _req(2)])
        assert [r.status for r in res] == ["ok", "refused", "ok"]
        r = res[1]
        assert r.image is None and r.safety == "provider-filter" and r.message == OPENAI_REFUSAL
        assert r.extra["attempts"] == 1 and srv.n_requests == 3


@pytest.mark.parametrize("style", ["header", "403"])
@pytest.mark.parametrize("mode", ["generate", "inpaint"])
def test_stability_refusal_is_recorded(style, mode):
    faults = lambda i, p, f: "refuse" if f["prompt"] == "bad" else None  # noqa: E731
    extra = {"source": _source(), "mask": _mask()} if mode == "inpaint" else {}
    with FakeImagesServer(faults=faults, stability_refusal=style) as srv, _stability(srv, mode=mode) as be:
        res = be.generate([_req(0, **extra), _req(1, prompt="bad", **extra)])
        assert [r.status for r in res] == ["ok", "refused"]
        r = res[1]
        assert r.image is None and r.safety == "provider-filter" and srv.n_requests == 2
        assert (r.message == STABILITY_REFUSAL) if style == "403" else ("CONTENT_FILTERED" in r.message)


# ---------------------------------------------------------------- retries
PLAN = {"p-429": "429", "p-500": "500", "p-503": "503", "p-timeout": "timeout", "p-garbage": "garbage"}


@pytest.mark.parametrize("provider", ["openai", "stability"])
def test_transient_faults_are_retried_then_ok(provider):
    prompts = ["p-ok", *PLAN]
    with FakeImagesServer(faults=_first_time(PLAN), hang_s=1.5) as srv:
        make = _openai if provider == "openai" else _stability
        with make(srv, timeout=0.5, concurrency=6) as be:
            res = be.generate([_req(i, prompt=p) for i, p in enumerate(prompts)])
        assert [r.status for r in res] == ["ok"] * len(prompts), [r.message for r in res]
        assert [r.extra["attempts"] for r in res] == [1] + [2] * len(PLAN)
        assert [r.extra.get("revised_prompt", p) for r, p in zip(res, prompts)] == [
            f"{p} (revised)" if provider == "openai" else p for p in prompts]  # in order
        assert srv.n_requests == 1 + 2 * len(PLAN)


@pytest.mark.parametrize("provider", ["openai", "stability"])
def test_permanent_500_fails_after_max_retries(provider):
    with FakeImagesServer(faults=lambda i, p, f: "500") as srv:
        make = _openai if provider == "openai" else _stability
        with make(srv, max_retries=2) as be:
            res = be.generate([_req(0)])[0]
        assert res.status == "failed" and res.image is None and srv.n_requests == 3
        assert "500" in res.message and "after 3 attempts" in res.message and res.extra["attempts"] == 3


@pytest.mark.parametrize("provider", ["openai", "stability"])
def test_400_is_not_retried(provider):
    with FakeImagesServer(faults=lambda i, p, f: "400") as srv:
        make = _openai if provider == "openai" else _stability
        with make(srv) as be:
            res = be.generate([_req(0)])[0]
        assert res.status == "failed" and srv.n_requests == 1 and "fake fault 400" in res.message


# ---------------------------------------------------------------- key hygiene
@pytest.mark.parametrize("provider", ["openai", "stability"])
def test_key_is_sent_but_never_echoed(provider):
    make = _openai if provider == "openai" else _stability
    with FakeImagesServer(require_key=KEY) as srv, make(srv) as be:
        assert be.generate([_req(0)])[0].status == "ok"  # Authorization: Bearer KEY
    with FakeImagesServer(require_key="another-key") as srv, make(srv) as be:
        res = be.generate([_req(0)])[0]  # the 401 echoes our key
        assert res.status == "failed" and srv.n_requests == 1 and "401" in res.message
        for text in (res.message, repr(res), repr(be), str(vars(be).get("base_url"))):
            assert KEY not in text
        assert "***" in res.message


def test_missing_key_is_a_clear_error(monkeypatch, server):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("STABILITY_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as e:
        OpenAIImagesBackend(base_url=server.openai_base_url)
    assert "api_key" in str(e.value)
    with pytest.raises(ValueError, match="STABILITY_API_KEY"):
        StabilityBackend(base_url=server.stability_base_url)
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    with StabilityBackend(base_url=server.stability_base_url, **FAST) as be:
        assert be.generate([_req(0)])[0].status == "ok"
