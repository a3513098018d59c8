"""Rescale + normalize as a lookup of the processor's own values: the same pixels as the stock
processor call, bit for bit, on the families it applies to; the stock call everywhere else."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from spuriverse.models.base import ImageInput, Request
from spuriverse.models.hf import HFBackend
from spuriverse.models.pixels import PixelTable


def _png(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def images() -> list[bytes]:
    """Every byte value in every channel, odd sizes, each PIL mode the loader converts, a JPEG."""
    rng = np.random.default_rng(0)
    full = np.arange(256 * 3, dtype=np.int64).reshape(16, 48) % 256
    rgb_all = np.stack([full, np.roll(full, 7), np.roll(full, 100)], axis=-1).astype(np.uint8)
    noise = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    return [
        _png(Image.fromarray(rgb_all)),
        _png(Image.fromarray(noise)),
        _png(Image.fromarray(rng.integers(0, 256, (90, 12, 4), dtype=np.uint8), "RGBA")),
        _png(Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L")),
        _png(Image.fromarray(noise).convert("P")),
        _png(Image.fromarray(np.where(noise > 127, 255, 0).astype(np.uint8))),
        _png(Image.fromarray(noise[:1, :1])),
        _png(Image.fromarray(noise), "JPEG"),
    ]


def requests(backend: HFBackend) -> list[Request]:
    return [Request(system=None, prompt=f"What is in picture {i}?", image=ImageInput.from_bytes(b), letters=("A", "B"))
            for i, b in enumerate(images())]


def stock_pixels(backend: HFBackend, reqs: list[Request]) -> torch.Tensor:
    """transformers' own processor call, nothing of ours in between."""
    texts = [backend.render(r) for r in reqs]
    assert all(r.image is not None for r in reqs)
    batch = backend.processor(text=texts, images=[[r.image.pil()] for r in reqs if r.image is not None],
                              return_tensors="pt", padding=True)
    return batch["pixel_values"]


@pytest.mark.parametrize("fixture", ["tiny_llava", "tiny_paligemma"])
def test_lookup_equals_the_processor_bit_for_bit(fixture, request):
    backend = HFBackend(str(request.getfixturevalue(fixture)))
    assert backend._pixel_table is not None  # CLIP (LLaVA-1.5) and SigLIP (PaliGemma): the PIL backend
    reqs = requests(backend)
    got = backend._inputs(reqs, [backend.render(r) for r in reqs])["pixel_values"]
    want = stock_pixels(backend, reqs)
    assert got.dtype == want.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(got, want)
    assert got.is_contiguous()
    # and the lookup really ran: the processor alone, told to stop after the crop, gives bytes
    raw = backend.processor(text=[backend.render(reqs[0])], images=[[reqs[0].image.pil()]], return_tensors="pt",
                            **PixelTable.overrides)["pixel_values"]
    assert raw.dtype == torch.uint8


def test_other_settings_of_the_processor_are_followed(tiny_llava):
    """A table follows the processor's settings: its own mean and std, rescale or normalize off."""
    backend = HFBackend(str(tiny_llava))
    ip = backend.processor.image_processor
    reqs = requests(backend)
    for settings in ({"image_mean": [0.1, 0.7, 0.3], "image_std": [0.9, 0.05, 0.333]},
                     {"do_normalize": False}, {"do_rescale": False}):
        saved = {k: getattr(ip, k) for k in settings}
        try:
            for k, v in settings.items():
                setattr(ip, k, v)
            backend._pixel_table = PixelTable.for_processor(backend.processor)
            backend._local.processor = backend.processor
            got = backend._inputs(reqs, [backend.render(r) for r in reqs])["pixel_values"]
            assert torch.equal(got, stock_pixels(backend, reqs)), settings
        finally:
            for k, v in saved.items():
                setattr(ip, k, v)
    ip.do_rescale = ip.do_normalize = False
    try:
        assert PixelTable.for_processor(backend.processor) is None  # nothing to look up: the stock call
    finally:
        ip.do_rescale = ip.do_normalize = True


@pytest.mark.parametrize("fixture", ["tiny_llava_next", "tiny_idefics3"])
def test_families_with_their_own_preprocessing_keep_the_stock_call(fixture, request):
    backend = HFBackend(str(request.getfixturevalue(fixture)))
    assert backend._pixel_table is None


def test_pixels_the_table_was_not_made_for_are_redone_the_stock_way(tiny_llava):
    backend = HFBackend(str(tiny_llava))
    table = backend._pixel_table
    assert table is not None
    assert table.apply(torch.zeros(2, 3, 4, 4)) is None  # floats: not bytes
    assert table.apply(torch.zeros(2, 4, 4, 4, dtype=torch.uint8)) is None  # four channels for a 3-channel table
    # a table for 4 channels refuses the processor's 3-channel bytes: the backend redoes the batch
    backend._pixel_table = PixelTable(np.zeros((4, 256), dtype=np.float32))
    reqs = requests(backend)
    got = backend._inputs(reqs, [backend.render(r) for r in reqs])["pixel_values"]
    assert torch.equal(got, stock_pixels(backend, reqs))
