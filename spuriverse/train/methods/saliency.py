"""CLP's background-saliency regulariser: the mean squared input gradient of the training loss on
background pixels (everything outside the object's `core_mask`), where masks exist.

The mask is brought into `pixel_values` space by the model's own image processor: white-where-
background mask images go through the same resize / crop / (patchify) as the images, and a processed
value above the midpoint between a processed white and black image counts as background. So the mask
lines up with whatever layout the processor produces (LLaVA's [B, 3, H, W], tiled or patchified ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from spuriverse.data.edits import decode_mask
from spuriverse.train.data import TrainExample


class SaliencyMaskError(ValueError):
    """The processed masks do not line up with `pixel_values`."""


def _process(backend: Any, images: list[Image.Image]) -> torch.Tensor:
    proc = getattr(backend.processor, "image_processor", None)
    if proc is None:
        raise SaliencyMaskError("this processor has no image_processor: use --saliency-lambda 0")
    return proc(images=[[im] for im in images], return_tensors="pt")["pixel_values"].float()


def background_masks(backend: Any, examples: Sequence[TrainExample], pixel_values: torch.Tensor) -> torch.Tensor:
    """A 0/1 float tensor shaped like `pixel_values`: 1 on background pixels of items with a core
    mask, 0 on the object and on items without a mask."""
    sizes = [ex.image_input().pil().size if ex.image else (1, 1) for ex in examples]  # type: ignore[union-attr]
    images = []
    for ex, (w, h) in zip(examples, sizes):
        bg = np.zeros((h, w), bool)
        if ex.core_mask is not None:
            core = decode_mask(ex.core_mask)
            if core.shape != (h, w):
                raise SaliencyMaskError(f"item {ex.item_id!r}: core_mask {core.shape} does not fit its image {(h, w)}")
            bg = ~core
        images.append(Image.fromarray(np.repeat(bg[..., None].astype(np.uint8) * 255, 3, axis=2)))
    w0, h0 = sizes[0]
    ref = _process(backend, [Image.new("RGB", (w0, h0), (255, 255, 255)), Image.new("RGB", (w0, h0), (0, 0, 0))])
    mid, white_high = (ref[0] + ref[1]) / 2, bool((ref[0] > ref[1]).flatten()[0])
    processed = _process(backend, images)
    if processed.shape != pixel_values.shape:
        raise SaliencyMaskError(f"processed masks {tuple(processed.shape)} differ from pixel_values "
                                f"{tuple(pixel_values.shape)}: use --saliency-lambda 0 for this model")
    out = processed > mid if white_high else processed < mid
    return out.to(torch.float32)


def saliency_penalty(loss_sum: torch.Tensor, pixel_values: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """mean over background entries of (d loss / d pixel)^2, differentiable w.r.t. the weights
    (0 when the batch has no background mask)."""
    mask = background.to(pixel_values.device, pixel_values.dtype)
    if float(mask.sum()) == 0:
        return loss_sum.new_zeros(())
    (grad,) = torch.autograd.grad(loss_sum, pixel_values, create_graph=True)
    return (grad.float() ** 2 * mask).sum() / mask.sum()


__all__ = ["SaliencyMaskError", "background_masks", "saliency_penalty"]
