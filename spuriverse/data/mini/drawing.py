"""Drawing primitives for spuriverse-mini: the embedded font, printed label plates, supersampled
drawing and pasting onto a canvas."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from PIL import Image, ImageDraw, ImageFont

SS = 3                   # supersampling factor for drawn objects (smooth edges)

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) as fractions of the image
RGB = tuple[int, int, int]


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's embedded Aileron Regular (no system font files), always with the basic layout
    engine, so glyph placement does not depend on whether libraqm happens to be installed."""
    font = ImageFont.load_default(size=size)
    if isinstance(font, ImageFont.FreeTypeFont) and font.layout_engine != ImageFont.Layout.BASIC:
        font = font.font_variant(layout_engine=ImageFont.Layout.BASIC)
    return font


def fit_font(text: str, max_w: int, max_h: int,
             start: int = 64) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, tuple[float, ...]]:
    """The largest default-font size (<= start) whose text fits in max_w x max_h."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    for size in range(start, 5, -1):
        font = _font(size)
        bbox = probe.textbbox((0, 0), text, font=font, stroke_width=max(1, size // 16))
        if bbox[2] - bbox[0] <= max_w and bbox[3] - bbox[1] <= max_h:
            return font, bbox
    font = _font(6)
    return font, probe.textbbox((0, 0), text, font=font)


def plate(text: str, size: tuple[int, int], fill: RGB = (255, 255, 255), ink: RGB = (15, 15, 15),
          edge: RGB = (15, 15, 15)) -> Image.Image:
    """A printed sign: rounded plate with the text centred, as RGBA of exactly `size`."""
    w, h = size
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    border = max(2, h // 14)
    d.rounded_rectangle([0, 0, w - 1, h - 1], radius=max(3, h // 5), fill=(*fill, 255), outline=(*edge, 255),
                        width=border)
    pad = border + max(3, h // 8)
    font, bbox = fit_font(text, w - 2 * pad, h - 2 * pad)
    stroke = max(1, getattr(font, "size", 12) // 16)
    tw, th = bbox[2] - bbox[0], bbox[3] - bbox[1]
    d.text(((w - tw) / 2 - bbox[0], (h - th) / 2 - bbox[1]), text, font=font, fill=(*ink, 255),
           stroke_width=stroke, stroke_fill=(*ink, 255))
    return im


def plate_size(text: str, max_w: int, max_h: int) -> tuple[int, int]:
    """A plate as large as fits in max_w x max_h for `text` (height at most max_w / 2.2)."""
    h = int(min(max_h, max(24, max_w / max(2.2, 0.62 * len(text) + 0.9))))
    w = int(min(max_w, h * (0.62 * len(text) + 0.9)))
    return max(w, 24), max(h, 16)


def drawn(fn: Callable[[ImageDraw.ImageDraw, int, int], None], w: int, h: int) -> Image.Image:
    """Run a drawing routine on a supersampled transparent canvas, return RGBA of size (w, h)."""
    big = Image.new("RGBA", (w * SS, h * SS), (0, 0, 0, 0))
    fn(ImageDraw.Draw(big), w * SS, h * SS)
    return big.resize((w, h), Image.Resampling.LANCZOS)


def paste(canvas: Image.Image, layer: Image.Image, xy: tuple[int, int]) -> None:
    canvas.alpha_composite(layer, (int(xy[0]), int(xy[1])))
