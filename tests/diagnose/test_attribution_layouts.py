"""Maps land where the pixels were: a lit patch, through each family's real processor and model.

An image is drawn twice, plain and with one bright box. The difference of the processed `pixel_values`
(a stand-in attribution, non-zero only where the box went) is carried back to the original raster by the
family's layout: it must land on the box (LLaVA's centre crop, LLaVA-NeXT's squashed view + tiles,
Idefics3's global view and tiles, Qwen2-VL's pre-patchified 2x2-merge order). At the token sites (the
vision tower's last used layer; the projected embeddings) the token whose features changed most must be
the one drawn over the box (Qwen2.5-VL: its window order undone).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from spuriverse.diagnose.attribution.geometry import Frame, to_raster, views_to_raster
from spuriverse.diagnose.attribution.layouts import UnsupportedArchitecture, layout_for
from spuriverse.models.base import ImageInput, Request
from spuriverse.models.hf import HFBackend


@pytest.fixture(scope="module")
def tiny_qwen2_vl(tmp_path_factory):
    from helpers.tiny_archs import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("qwen2-vl"))


@pytest.fixture(scope="module")
def tiny_qwen2_5_vl(tmp_path_factory):
    from helpers.tiny_archs import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen2-5-vl"))


def _inputs(backend: HFBackend, pixels: np.ndarray) -> dict[str, torch.Tensor]:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    r = Request(system=None, prompt="What is it? (A) x (B) y", image=ImageInput.from_bytes(buf.getvalue()),
                letters=("A", "B"))
    return backend._inputs([r], [backend.render(r)])


def _site_tokens(backend, layout, which: str, inputs) -> torch.Tensor:
    module, kind = layout.site(which)
    caught = []
    if kind == "input":
        handle = module.register_forward_pre_hook(lambda m, a: caught.append(a[0].detach()))
    else:
        handle = module.register_forward_hook(lambda m, a, out: caught.append(out.detach()))
    with torch.no_grad():
        backend.model(**inputs, logits_to_keep=1)
    handle.remove()
    return layout.tokens_to_batch(which, caught[0], 1)[0]


def _check_lit_patch(model_dir, size: tuple[int, int], box: tuple[int, int, int, int], tweak=None) -> int:
    """Returns the number of views; asserts pixel and token maps land on `box` (y0, y1, x0, x1)."""
    backend = HFBackend(str(model_dir), device="cpu")
    if tweak:
        tweak(backend.processor.image_processor)
    w, h = size
    y0, y1, x0, x1 = box
    plain = np.full((h, w, 3), 90, np.uint8)
    lit = plain.copy()
    lit[y0:y1, x0:x1] = 250
    layout = layout_for(backend.model, backend.processor)
    a, b = _inputs(backend, plain), _inputs(backend, lit)
    geo = layout.geometry(b, 0, size)
    diff = layout.pack(b)[0][0] - layout.pack(a)[0][0]
    raster = views_to_raster(layout.pixel_planes(diff, geo), geo.frames, h, w).abs()
    inside = raster[max(0, y0 - 1): y1 + 1, max(0, x0 - 1): x1 + 1].sum() / raster.sum()
    assert inside > 0.9, f"pixels: only {inside:.2f} of the map on the lit box"
    peak = np.unravel_index(int(raster.argmax()), raster.shape)
    assert y0 <= peak[0] < y1 and x0 <= peak[1] < x1
    centre = ((y0 + y1) // 2, (x0 + x1) // 2)
    for which in ("vision", "embedding"):
        change = (_site_tokens(backend, layout, which, b) - _site_tokens(backend, layout, which, a)).norm(dim=-1)
        tokens = views_to_raster(layout.token_planes(which, change, geo), geo.frames, h, w)
        assert torch.isclose(tokens[centre], tokens.max(), rtol=1e-5), f"{which}: the most changed token is not on the box"
    return len(geo.frames)


def test_llava_centre_crop(tiny_llava):
    # 40x32: the shorter side is already 32, the crop cuts 4 px on each side; token (1, 2) of the crop
    assert _check_lit_patch(tiny_llava, (40, 32), (8, 16, 20, 28)) == 1


def test_llava_next_squashed_view_and_tiles(tiny_llava_next):
    # 64x32 -> best pinpoint 32x64: the whole image squashed to 32x32, then two 32x32 tiles
    assert _check_lit_patch(tiny_llava_next, (64, 32), (8, 16, 40, 48)) == 3


def test_idefics3_global_view(tiny_idefics3):
    # 48x40 resized to 32x32 (no splitting): one view, tokens 12x10 px, embeddings (2x2 shuffle) 24x20 px
    assert _check_lit_patch(tiny_idefics3, (48, 40), (10, 20, 24, 36)) == 1


def test_idefics3_tiles_then_global_view(tiny_idefics3):
    def split(ip):
        ip.do_image_splitting, ip.size = True, {"longest_edge": 64}

    # 64x48 -> 64x64 for the encoder: 2x2 tiles of 32 (rows first), then the global view
    assert _check_lit_patch(tiny_idefics3, (64, 48), (6, 12, 40, 48), split) == 5


def test_qwen2_vl_merge_order(tiny_qwen2_vl):
    # 84x56 -> 84x56 (multiples of 28): 4x6 patches of 14 px in 2x2-merge-window order; the box is patch
    # (1, 2): second row, first column of its merge window (a swapped order lands elsewhere)
    assert _check_lit_patch(tiny_qwen2_vl, (84, 56), (14, 28, 28, 42)) == 1


def test_qwen2_5_vl_window_order(tiny_qwen2_5_vl):
    # 84x56 -> 56x28 (max_pixels): 2x4 patches of 14 px (21x28 px of the original), merge units in windows
    assert _check_lit_patch(tiny_qwen2_5_vl, (84, 56), (28, 56, 42, 63)) == 1


def test_to_raster_keeps_the_sum_and_drops_padding():
    plane = torch.rand(4, 6)
    frame = Frame.original(10, 9).resize(4, 6)  # non-integer scale factors
    assert torch.isclose(to_raster(plane, frame, 10, 9).sum(), plane.sum(), rtol=1e-5)
    padded = Frame.original(4, 4).pad(2, 0, 8, 4)  # rows 0-1 and 6-7 of the view are padding
    out = to_raster(torch.ones(8, 4), padded, 4, 4)
    assert torch.allclose(out, torch.ones(4, 4))


def test_unknown_family_is_refused(tiny_paligemma):
    backend = HFBackend(str(tiny_paligemma), device="cpu")
    with pytest.raises(UnsupportedArchitecture, match="paligemma.*supported: idefics3, llava"):
        layout_for(backend.model, backend.processor)
