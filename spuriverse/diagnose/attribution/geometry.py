"""Where each processed pixel comes from in the original image, and maps carried back there.

An image processor resizes, crops, pads and tiles the original image into one or more *views* (LLaVA:
one centre crop; LLaVA-NeXT: the whole image squashed plus the tiles of a padded canvas; Idefics3:
tiles plus a global view; Qwen2-VL: one resized view). Each of these steps is axis-aligned, so a view
pixel (row v, column u) covers the original rectangle ``y in [oy + v*sy, oy + (v+1)*sy)``,
``x in [ox + u*sx, ox + (u+1)*sx)``: a `Frame`.

`to_raster` carries a map on a view back to the original raster: each view pixel's value is split over
the original pixels its rectangle overlaps, in proportion to the overlap (exact box resampling, so the
sum is preserved for everything that lies inside the image; what lands on padding is dropped). Several
views of one image add up, as the gradients of the pixels they were resampled from do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Frame:
    """A view of `height` x `width` pixels and the original rectangle each of its pixels covers."""

    height: int
    width: int
    oy: float = 0.0
    ox: float = 0.0
    sy: float = 1.0
    sx: float = 1.0

    @classmethod
    def original(cls, height: int, width: int) -> Frame:
        return cls(height, width)

    def resize(self, height: int, width: int) -> Frame:
        """The view resampled to `height` x `width` (the same rectangle, finer or coarser pixels)."""
        return replace(self, height=height, width=width, sy=self.sy * self.height / height,
                       sx=self.sx * self.width / width)

    def crop(self, top: int, left: int, height: int, width: int) -> Frame:
        """A `height` x `width` window starting at (`top`, `left`); negative offsets (padding before)
        and windows running past the edge (padding after) are allowed."""
        return replace(self, height=height, width=width, oy=self.oy + top * self.sy, ox=self.ox + left * self.sx)

    def pad(self, top: int, left: int, height: int, width: int) -> Frame:
        """The view pasted at (`top`, `left`) into a `height` x `width` canvas."""
        return self.crop(-top, -left, height, width)

    def center_crop(self, height: int, width: int) -> Frame:
        """transformers' `center_crop`: floor-centred, or zero padding (ceil-centred) when too small."""
        def offset(size: int, crop: int) -> int:
            return (size - crop) // 2 if size >= crop else -math.ceil((crop - size) / 2)

        return self.crop(offset(self.height, height), offset(self.width, width), height, width)


def _axis_weights(n_out: int, n_in: int, origin: float, step: float, device: torch.device) -> torch.Tensor:
    """[n_out, n_in]: the share of view pixel `i` (covering [origin + i*step, origin + (i+1)*step)) that
    falls into original pixel `o` (covering [o, o + 1))."""
    lo = origin + step * torch.arange(n_in, dtype=torch.float64, device=device)
    out = torch.arange(n_out, dtype=torch.float64, device=device)[:, None]
    overlap = (torch.minimum(out + 1, lo + step) - torch.maximum(out, lo)).clamp(min=0)
    return (overlap / step).to(torch.float32)


def to_raster(plane: torch.Tensor, frame: Frame, height: int, width: int) -> torch.Tensor:
    """A map on one view (`frame.height` x `frame.width`) carried onto the original `height` x `width`
    raster, sum-preserving for the part of the view that lies inside the image."""
    if tuple(plane.shape) != (frame.height, frame.width):
        raise ValueError(f"map of shape {tuple(plane.shape)} does not match its view ({frame.height}x{frame.width})")
    plane = plane.to(torch.float32)
    wy = _axis_weights(height, frame.height, frame.oy, frame.sy, plane.device)
    wx = _axis_weights(width, frame.width, frame.ox, frame.sx, plane.device)
    return wy @ plane @ wx.T


def views_to_raster(planes: list[torch.Tensor], frames: list[Frame], height: int, width: int) -> torch.Tensor:
    """The sum over views of each view's map carried onto the original raster."""
    if len(planes) != len(frames):
        raise ValueError(f"{len(planes)} maps for {len(frames)} views")
    out = torch.zeros(height, width)
    for plane, frame in zip(planes, frames):
        out += to_raster(plane.detach().cpu(), frame, height, width)
    return out


def upsample_tokens(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A per-token map (`gh` x `gw`) spread over the `height` x `width` view the tokens tile: each pixel
    gets an equal share of its token's value (the sum is kept)."""
    gh, gw = grid.shape
    if height % gh or width % gw:
        raise ValueError(f"a {gh}x{gw} token grid does not tile a {height}x{width} view")
    bh, bw = height // gh, width // gw
    return grid.repeat_interleave(bh, 0).repeat_interleave(bw, 1) / (bh * bw)
