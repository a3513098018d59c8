"""Rescale + normalize of 8-bit images as a table lookup, bit-identical to the image processor's own.

A PIL-backend image processor (transformers' `PilBackend`: CLIP for LLaVA-1.5, SigLIP for PaliGemma,
BLIP ...) resizes and crops a uint8 image, then rescales it (`x * 1/255` in float64, cast to float32)
and normalizes it (`(x - mean[c]) / std[c]` in float32), one image at a time. Those two steps are
elementwise per channel on a uint8 input, so each output value is a function of (channel, byte) only:
256 values per channel. `PixelTable` computes that table once by running the processor's *own*
`rescale` and `normalize` on every byte value, asks the processor for the resized, cropped uint8 pixels
(`do_rescale=False, do_normalize=False`) and looks each byte up: the same floats, bit for bit, at a
fraction of the cost (the two steps were a third of a training batch's collation on CPU).

It applies only where that reasoning holds: the processor's `_preprocess`, `rescale` and `normalize` are
`PilBackend`'s own (the order resize, crop, rescale, normalize, pad) and it does not pad; anything else
(the torchvision backend, families with their own `_preprocess` such as LLaVA-NeXT or Qwen2-VL) keeps
the stock call. A batch whose pixels do not come back as uint8 is redone the stock way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _stock_pil_backend(image_processor: Any) -> bool:
    try:
        from transformers.image_processing_backends import PilBackend
    except ImportError:  # an older transformers: no such backend, nothing to do
        return False
    cls = type(image_processor)
    return (isinstance(image_processor, PilBackend)
            and all(getattr(cls, name) is getattr(PilBackend, name) for name in ("_preprocess", "rescale", "normalize"))
            and not getattr(image_processor, "do_pad", False))


class PixelTable:
    """Per channel, the float each byte value becomes after the processor's rescale and normalize."""

    # what the processor call is given so that it stops after resize + crop (uint8 pixels)
    overrides = {"do_rescale": False, "do_normalize": False}

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.ascontiguousarray(table)  # (channels, 256) float32
        self.channels = self.table.shape[0]

    @classmethod
    def for_processor(cls, processor: Any) -> PixelTable | None:
        """The table for `processor` (a multimodal processor or an image processor), or None where
        the lookup would not reproduce its output exactly."""
        ip = getattr(processor, "image_processor", processor)
        if ip is None or not _stock_pil_backend(ip):
            return None
        do_rescale, do_normalize = bool(ip.do_rescale), bool(ip.do_normalize)
        if not (do_rescale or do_normalize):
            return None
        mean = ip.image_mean if do_normalize else None
        channels = len(mean) if isinstance(mean, (list, tuple)) else 3
        # every byte value, channels first (the layout `_preprocess` hands to rescale and normalize)
        values = np.broadcast_to(np.arange(256, dtype=np.uint8), (channels, 1, 256)).copy()
        if do_rescale:
            values = ip.rescale(values, ip.rescale_factor)
        if do_normalize:
            values = ip.normalize(values, ip.image_mean, ip.image_std)
        table = np.asarray(values)[:, 0, :]
        if table.dtype != np.float32:
            return None
        return cls(table)

    def apply(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """(batch, channels, h, w) uint8 -> the processor's float32 pixel values; None if `pixels`
        is not what the table was made for (then the caller redoes the batch the stock way)."""
        if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[1] != self.channels:
            return None
        src = pixels.numpy()
        out = np.empty(src.shape, dtype=np.float32)
        for b in range(src.shape[0]):  # one contiguous plane at a time (3x faster than strided)
            for c in range(self.channels):  # each byte of channel c indexes its 256 entries
                np.take(self.table[c], src[b, c], out=out[b, c])
        return torch.from_numpy(out)
