"""Mask-based image edits: the factual (F) and counterfactual (CF) versions of an image whose
object ("core") mask is known, as CLP's meta set uses them (spuriverse-world ships the masks).

- **F** (`swap_background`): the answer is kept, everything else changes: the core pixels stay, every
  other pixel comes from a donor image whose own object was first filled in (`remove_core(..., "tile")`),
  so the donor's cue (background colour, border, icon) replaces this image's cue.
- **CF** (`remove_core`): the object is removed, so the answer is no longer supported. Fills:
  `grey`  a flat fill in the median colour of the non-core pixels (grey on a neutral background);
  `shuffle` the pixels of the object's bounding box (grown by one pixel) randomly permuted: shape and
          exact place are destroyed, the object's colour survives as scattered pixels (a weak CF for
          colour questions);
  `tile`  the background's own texture (non-core, non-cue pixels in raster order) tiled over the object.

Images are (H, W, 3) uint8 arrays, masks (H, W) bool arrays of the same size; functions are pure
(the `shuffle` permutation comes from `seed`).
"""

from __future__ import annotations

import io

import numpy as np

CF_FILLS = ("grey", "shuffle", "tile")


class MaskError(ValueError):
    """A mask that does not fit its image (or is empty where it must not be)."""


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def decode_mask(data: bytes) -> np.ndarray:
    """An encoded mask image (white = inside) -> (H, W) bool."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8) >= 128


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes (RGB uint8 or a bool mask as L 0/255)."""
    from PIL import Image

    arr = image.astype(np.uint8) * 255 if image.dtype == bool else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _check(image: np.ndarray, *masks: np.ndarray | None) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MaskError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    for m in masks:
        if m is not None and m.shape != image.shape[:2]:
            raise MaskError(f"mask of shape {m.shape} does not fit an image of {image.shape[:2]}")


def remove_core(image: np.ndarray, core: np.ndarray, fill: str = "tile", *, cue: np.ndarray | None = None,
                seed: int = 0) -> np.ndarray:
    """The image with its object removed (the CF image); see the module docstring for `fill`."""
    _check(image, core, cue)
    if fill not in CF_FILLS:
        raise MaskError(f"unknown fill {fill!r} (choose from {', '.join(CF_FILLS)})")
    if not core.any():
        raise MaskError("the core mask is empty: there is no object to remove")
    if core.all():
        raise MaskError("the core mask covers the whole image: nothing is left to fill from")
    out = image.copy()
    if fill == "grey":
        out[core] = np.median(image[~core], axis=0).astype(np.uint8)
    elif fill == "shuffle":
        rows, cols = np.nonzero(core)
        r0, r1 = max(rows.min() - 1, 0), min(rows.max() + 2, image.shape[0])
        c0, c1 = max(cols.min() - 1, 0), min(cols.max() + 2, image.shape[1])
        box = out[r0:r1, c0:c1].reshape(-1, 3)
        out[r0:r1, c0:c1] = box[np.random.default_rng(seed).permutation(len(box))].reshape(r1 - r0, c1 - c0, 3)
    else:
        source = ~core if cue is None else ~core & ~cue
        if not source.any():
            source = ~core
        texture = image[source]
        out[core] = texture[np.arange(int(core.sum())) % len(texture)]
    return out


def swap_background(image: np.ndarray, core: np.ndarray, donor: np.ndarray, donor_core: np.ndarray) -> np.ndarray:
    """The F image: this image's object on the donor's background (the donor's object tiled away)."""
    _check(image, core)
    _check(donor, donor_core)
    if donor.shape != image.shape:
        raise MaskError(f"donor image {donor.shape} differs from the image {image.shape}")
    if not core.any():
        raise MaskError("the core mask is empty: there is no object to keep")
    out = remove_core(donor, donor_core, "tile") if donor_core.any() else donor.copy()
    out[core] = image[core]
    return out


__all__ = ["CF_FILLS", "MaskError", "decode_image", "decode_mask", "encode_png", "remove_core", "swap_background"]
