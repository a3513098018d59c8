"""Each architecture's pixel layout: one registry entry per family (`LAYOUTS`, keyed by config model_type).

A layout knows three things about its family:

- **pixels**: the processor's `pixel_values` as one batch-first tensor (captum expands inputs along the
  first dimension), and back to the model's keyword arguments (Qwen2-VL's are flat: patches of all
  images concatenated);
- **geometry**: the views of one image (`Frame`s) and how an attribution of `pixel_values` becomes one
  plane per view (channels summed; Qwen2-VL's pre-patchified 2x2-merge order undone);
- **token sites**: where the image tokens can be read and replaced: `vision` (the output of the vision
  tower's last layer the model uses, i.e. the projector's input: Grad-CAM runs there) and `embedding`
  (the projected image-token embeddings the language model reads), and where each token lies in its view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from spuriverse.diagnose.attribution.geometry import Frame, upsample_tokens

SITES = ("vision", "embedding")


class UnsupportedArchitecture(ValueError):
    """No pixel layout is known for this model family."""


@dataclass
class ItemGeometry:
    """One item's image: its original size (width, height), its views, and per-family details."""

    size: tuple[int, int]
    frames: list[Frame]
    plane_hw: tuple[int, int] = (0, 0)  # the processed plane each view sits in (views may be padded)
    extra: dict[str, Any] = field(default_factory=dict)


def _get(obj: Any, key: str) -> Any:
    """A size-dict entry (transformers stores sizes as dicts or `SizeDict`s)."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def clip_style_resize(frame: Frame, size: Any) -> Frame:
    """transformers' resize rule for `size`: {shortest_edge} keeps the aspect ratio (long side
    truncated), {height, width} is exact."""
    se, h, w = _get(size, "shortest_edge"), _get(size, "height"), _get(size, "width")
    if h and w:
        return frame.resize(int(h), int(w))
    if se and not _get(size, "longest_edge"):
        short, long = sorted((frame.height, frame.width))
        new_long = int(se * long / short)
        return frame.resize(se, new_long) if frame.height <= frame.width else frame.resize(new_long, se)
    raise UnsupportedArchitecture(f"unsupported image-processor resize setting {dict(size)!r}")


def plane_hw(pixels: torch.Tensor) -> tuple[int, int]:
    """(height, width) of the last two dimensions of a pixel tensor."""
    return int(pixels.shape[-2]), int(pixels.shape[-1])


def _planes_from_stack(attr: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
    """[V, C, H, W] (padded views; [C, H, W]: one view) -> one channel-summed plane per view, cropped to
    the view."""
    if attr.dim() == 3:
        attr = attr[None]
    return [attr[k].sum(0)[: f.height, : f.width] for k, f in enumerate(geo.frames)]


class Layout:
    """Base: batch-first pixel tensors, views and token sites of one family (see the module doc)."""

    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: Any, processor: Any) -> None:
        self.model, self.processor = model, processor
        self.image_processor = processor.image_processor
        self.config = model.config

    # -- pixels ------------------------------------------------------------------------------
    def pack(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(pixel tensor [N, ...], the other model inputs, each batch-first)."""
        static = {k: v for k, v in inputs.items() if k != "pixel_values"}
        return inputs["pixel_values"], static

    def model_kwargs(self, pixels: torch.Tensor, static: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**static, "pixel_values": pixels}

    def geometry(self, inputs: dict[str, torch.Tensor], row: int, size: tuple[int, int]) -> ItemGeometry:
        raise NotImplementedError

    def pixel_planes(self, attr: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
        """One item's attribution of its pixel tensor -> one plane per view."""
        return _planes_from_stack(attr, geo)

    # -- token sites ---------------------------------------------------------------------------
    def site(self, which: str) -> tuple[torch.nn.Module, str]:
        """(module, "input" | "output"): where the image tokens of `which` pass."""
        raise NotImplementedError

    def tokens_to_batch(self, which: str, x: torch.Tensor, n_items: int) -> torch.Tensor:
        """The site's tensor as [N, tokens, D]."""
        return x.reshape(n_items, -1, x.shape[-1])

    def tokens_from_batch(self, which: str, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return x.reshape(like.shape)

    def token_planes(self, which: str, values: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
        """One item's per-token values at a site -> one plane per view."""
        raise NotImplementedError


class LlavaLayout(Layout):
    """LLaVA-1.5: a CLIP-style processor (resize the shortest edge, centre crop), one view."""

    model_types = ("llava",)

    def _patch_chain(self, frame: Frame) -> Frame:
        ip = self.image_processor
        if getattr(ip, "do_resize", True):
            frame = clip_style_resize(frame, ip.size)
        if getattr(ip, "do_center_crop", False):
            frame = frame.center_crop(int(_get(ip.crop_size, "height")), int(_get(ip.crop_size, "width")))
        return frame

    def geometry(self, inputs: dict[str, torch.Tensor], row: int, size: tuple[int, int]) -> ItemGeometry:
        w, h = size
        frame = self._patch_chain(Frame.original(h, w))
        return ItemGeometry(size, [frame], plane_hw(inputs["pixel_values"]))

    def site(self, which: str) -> tuple[torch.nn.Module, str]:
        return self.model.model.multi_modal_projector, "input" if which == "vision" else "output"

    def token_planes(self, which: str, values: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
        per_view = values.reshape(len(geo.frames), -1)
        g = self.config.vision_config.image_size // self.config.vision_config.patch_size
        if per_view.shape[1] == g * g + 1:  # vision_feature_select_strategy "full": the CLS token first
            per_view = per_view[:, 1:]
        return [upsample_tokens(v.reshape(g, g), f.height, f.width) for v, f in zip(per_view, geo.frames)]


class LlavaNextLayout(LlavaLayout):
    """LLaVA-NeXT (anyres): view 0 is the whole image squashed to the crop size; then the tiles of the
    image resized into the best grid pinpoint and centre-padded, row by row. Batches pad the views
    with zeros (unused); `image_sizes` says how many each image has."""

    model_types = ("llava_next",)

    def _frames(self, h: int, w: int) -> list[Frame]:
        from transformers.image_processing_utils import select_best_resolution

        ip = self.image_processor
        size, crop = ip.size, getattr(ip, "crop_size", None)
        base = (_get(size, "height"), _get(size, "width")) if _get(size, "height") else (_get(size, "shortest_edge"),) * 2
        tile = _get(crop, "height") or _get(size, "height") or _get(size, "shortest_edge")
        original = Frame.original(h, w)
        bh, bw = select_best_resolution((h, w), ip.image_grid_pinpoints)
        if bw / w < bh / h:  # transformers' get_patch_output_size
            nh, nw = min(math.ceil(h * bw / w), bh), bw
        else:
            nh, nw = bh, min(math.ceil(w * bh / h), bw)
        canvas = original.resize(nh, nw).pad((bh - nh) // 2, (bw - nw) // 2, bh, bw)
        tiles = [canvas.crop(i, j, tile, tile) for i in range(0, bh, tile) for j in range(0, bw, tile)]
        return [self._patch_chain(f) for f in [original.resize(int(base[0]), int(base[1])), *tiles]]

    def geometry(self, inputs: dict[str, torch.Tensor], row: int, size: tuple[int, int]) -> ItemGeometry:
        w, h = size
        frames = self._frames(h, w)
        if len(frames) > inputs["pixel_values"].shape[1]:
            raise UnsupportedArchitecture(f"LLaVA-NeXT geometry: {len(frames)} views computed, the processor made "
                                          f"{inputs['pixel_values'].shape[1]}")
        return ItemGeometry(size, frames, plane_hw(inputs["pixel_values"]))


class Idefics3Layout(Layout):
    """Idefics3 / SmolVLM: resize the longest edge; with image splitting, tiles of the max image size
    row by row and then the global view; views padded at the bottom / right to the batch's largest."""

    model_types = ("idefics3",)

    def _frames(self, h: int, w: int) -> list[Frame]:
        from transformers.models.idefics3.image_processing_pil_idefics3 import get_resize_output_image_size

        ip = self.image_processor
        m = int(_get(ip.max_image_size, "longest_edge"))
        f = Frame.original(h, w)
        if ip.do_resize:
            f = f.resize(*get_resize_output_image_size(np.empty((1, h, w), np.uint8), int(_get(ip.size, "longest_edge"))))
        if not ip.do_image_splitting:
            return [f.resize(m, m)]
        if f.width >= f.height:  # resize_for_vision_encoder
            nw = math.ceil(f.width / m) * m
            nh = math.ceil(int(nw / (f.width / f.height)) / m) * m
        else:
            nh = math.ceil(f.height / m) * m
            nw = math.ceil(int(nh * (f.width / f.height)) / m) * m
        f = f.resize(nh, nw)
        if nh <= m and nw <= m:
            return [f]
        tiles = [f.crop(r * m, c * m, m, m) for r in range((nh - m) // m + 1) for c in range((nw - m) // m + 1)]
        return [*tiles, f.resize(m, m)]

    def geometry(self, inputs: dict[str, torch.Tensor], row: int, size: tuple[int, int]) -> ItemGeometry:
        w, h = size
        return ItemGeometry(size, self._frames(h, w), plane_hw(inputs["pixel_values"]))

    def site(self, which: str) -> tuple[torch.nn.Module, str]:
        return self.model.model.connector, "input" if which == "vision" else "output"

    def token_planes(self, which: str, values: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
        per_view = values.reshape(len(geo.frames), -1)
        g = math.isqrt(per_view.shape[1])
        ph, pw = geo.plane_hw
        return [upsample_tokens(v.reshape(g, g), ph, pw)[: f.height, : f.width] for v, f in zip(per_view, geo.frames)]


class Qwen2VLLayout(Layout):
    """Qwen2-VL / Qwen2.5-VL: one view resized to multiples of patch x merge; `pixel_values` are flat
    patches in 2x2-merge-window order (block row, block column, row in block, column in block), each
    patch (channel, time, row, column); the vision tower's merger reads 4 consecutive patches. Qwen2.5-VL's
    tower permutes the merge units into attention windows until after the merger."""

    model_types = ("qwen2_vl", "qwen2_5_vl")

    def __init__(self, model: Any, processor: Any) -> None:
        super().__init__(model, processor)
        self.visual = model.model.visual
        vc = self.config.vision_config
        self.patch, self.merge = int(vc.patch_size), int(vc.spatial_merge_size)
        self.temporal = int(vc.temporal_patch_size)

    def pack(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pixels, static = super().pack(inputs)
        counts = inputs["image_grid_thw"].prod(-1)
        if len(set(counts.tolist())) != 1:
            raise ValueError("a Qwen2-VL batch mixes image sizes (batches are grouped by image size)")
        return pixels.reshape(len(counts), int(counts[0]), pixels.shape[-1]), static

    def model_kwargs(self, pixels: torch.Tensor, static: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**static, "pixel_values": pixels.reshape(-1, pixels.shape[-1])}

    def geometry(self, inputs: dict[str, torch.Tensor], row: int, size: tuple[int, int]) -> ItemGeometry:
        t, gh, gw = (int(v) for v in inputs["image_grid_thw"][row])
        w, h = size
        frame = Frame.original(h, w).resize(gh * self.patch, gw * self.patch)
        units = torch.arange(gh // self.merge * (gw // self.merge))
        if hasattr(self.visual, "window_size"):  # Qwen2.5-VL: merge units in window order
            from transformers.vision_utils import get_vision_window_index

            thw = torch.tensor([[t, gh, gw]])
            units = get_vision_window_index(thw, self.merge, self.visual.window_size, self.patch)[0]
        return ItemGeometry(size, [frame], (gh * self.patch, gw * self.patch), {"grid": (gh, gw), "units": units})

    def pixel_planes(self, attr: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
        gh, gw = geo.extra["grid"]
        m, p = self.merge, self.patch
        x = attr.reshape(gh // m, gw // m, m, m, -1, self.temporal, p, p).sum((4, 5))  # bh, bw, mh, mw, ph, pw
        return [x.permute(0, 2, 4, 1, 3, 5).reshape(gh * p, gw * p)]

    def site(self, which: str) -> tuple[torch.nn.Module, str]:
        return self.visual.merger, "input" if which == "vision" else "output"

    def token_planes(self, which: str, values: torch.Tensor, geo: ItemGeometry) -> list[torch.Tensor]:
        gh, gw = geo.extra["grid"]
        m, units = self.merge, geo.extra["units"]
        bw = gw // m
        if which == "vision":  # merge_units x (m x m) patches, in unit order
            k = torch.arange(values.numel())
            u, s = units[k // (m * m)], k % (m * m)
            rows, cols = (u // bw) * m + s // m, (u % bw) * m + s % m
            grid = torch.zeros(gh, gw, dtype=values.dtype)
        else:
            rows, cols = units // bw, units % bw
            grid = torch.zeros(gh // m, bw, dtype=values.dtype)
        grid[rows, cols] = values
        f = geo.frames[0]
        return [upsample_tokens(grid, f.height, f.width)]


LAYOUTS: dict[str, type[Layout]] = {t: cls for cls in (LlavaLayout, LlavaNextLayout, Idefics3Layout, Qwen2VLLayout)
                                    for t in cls.model_types}


def layout_for(model: Any, processor: Any) -> Layout:
    """The layout of `model`'s family, or a clear error naming the supported ones."""
    model_type = getattr(model.config, "model_type", None)
    if model_type not in LAYOUTS:
        raise UnsupportedArchitecture(
            f"attribution maps need the pixel layout of the model family; {model_type!r} has none yet "
            f"(supported: {', '.join(sorted(LAYOUTS))})"
        )
    return LAYOUTS[model_type](model, processor)
