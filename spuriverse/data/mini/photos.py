"""The source photographs of spuriverse-mini: public-domain / CC0 images bundled with scikit-image."""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

LONG_SIDE = 384          # every image is at most this many pixels on its long side


@cache
def skimage_array(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("building spuriverse-mini needs scikit-image: pip install -e '.[dev]'") from exc

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = np.where(arr, 255, 0).astype(np.uint8)
    return arr


@cache
def photo(name: str) -> Image.Image:
    """The skimage photo as RGB, downscaled so its long side is at most LONG_SIDE."""
    im = Image.fromarray(skimage_array(name)).convert("RGB")
    scale = LONG_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.Resampling.LANCZOS)
    return im
