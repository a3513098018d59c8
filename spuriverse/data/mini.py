"""Build **spuriverse-mini**: a small benchmark shipped in the repository.

Anchors are public-domain / CC0 photographs bundled with scikit-image (no download). Every group
asks one question a person answers from the anchor; its counterfactuals are deterministic PIL edits
that add a cue pointing at a WRONG option while leaving the subject (and so the true answer) in view:

    spurious_1  a printed label naming the wrong option              ("DOG" on the cat)
    spurious_2  a pasted object associated with the wrong option     (a bone beside the cat)
    spurious_3  the photo, shrunk, on a background of the wrong option (paw prints)
    spurious_4  background + another associated object + an associated word ("WOOF!")
    counter_1   spurious_1 with a neutral label ("PHOTO") in the same place
    counter_2   spurious_4's layout with every cue neutral (grey background, grey disk, "IMAGE")

Controls are unedited photographs with questions that have no spurious cue.

    python -m spuriverse.data.mini [--out DIR]

writes DIR/README.md (the card in `data_cards/spuriverse-mini.md` under generated YAML front matter)
and DIR/data/test-00000.parquet. Default DIR: the folder shipped in the package. Re-running it in the
same environment (Pillow, FreeType, libjpeg-turbo, scikit-image, datasets, pyarrow) gives
byte-identical files; the environment is recorded in the card. Needs scikit-image (the `dev` extra);
the built files do not.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

NAME = "spuriverse-mini"
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = PACKAGE_DIR / NAME
CARD_SOURCE = PACKAGE_DIR.parent.parent / "data_cards" / f"{NAME}.md"
PARQUET_NAME = "test-00000.parquet"

LONG_SIDE = 384          # every image is at most this many pixels on its long side
JPEG_QUALITY = 85
SHRINK = 0.72            # the photo's scale on a background (spurious_3/4, counter_2)
SS = 3                   # supersampling factor for drawn objects (smooth edges)

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) as fractions of the image
RGB = tuple[int, int, int]

# -------------------------------------------------------------------------------------------------
# Drawing primitives
# -------------------------------------------------------------------------------------------------


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's embedded Aileron Regular (no system font files), always with the basic layout
    engine, so glyph placement does not depend on whether libraqm happens to be installed."""
    font = ImageFont.load_default(size=size)
    if isinstance(font, ImageFont.FreeTypeFont) and font.layout_engine != ImageFont.Layout.BASIC:
        font = font.font_variant(layout_engine=ImageFont.Layout.BASIC)
    return font


def _fit_font(text: str, max_w: int, max_h: int, start: int = 64) -> tuple[ImageFont.ImageFont, tuple]:
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
    font, bbox = _fit_font(text, w - 2 * pad, h - 2 * pad)
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
    return big.resize((w, h), Image.LANCZOS)


def paste(canvas: Image.Image, layer: Image.Image, xy: tuple[int, int]) -> None:
    canvas.alpha_composite(layer, (int(xy[0]), int(xy[1])))


# -------------------------------------------------------------------------------------------------
# Objects (each: aspect w/h, routine drawing into a W x H box)
# -------------------------------------------------------------------------------------------------

OUT = (40, 40, 40, 255)


def _bone(d, W, H):
    r = H * 0.24
    c = (246, 240, 222, 255)
    o = (120, 105, 80, 255)
    lw = max(2, int(H * 0.035))
    for cx in (r * 1.05, W - r * 1.05):
        for cy in (H / 2 - r * 0.85, H / 2 + r * 0.85):
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=c, outline=o, width=lw)
    d.rectangle([r * 1.2, H * 0.33, W - r * 1.2, H * 0.67], fill=c)
    d.line([r * 1.6, H * 0.33, W - r * 1.6, H * 0.33], fill=o, width=lw)
    d.line([r * 1.6, H * 0.67, W - r * 1.6, H * 0.67], fill=o, width=lw)


def _dog_bowl(d, W, H):
    red, dark = (200, 40, 40, 255), (120, 20, 20, 255)
    d.polygon([(W * 0.05, H * 0.35), (W * 0.95, H * 0.35), (W * 0.82, H * 0.95), (W * 0.18, H * 0.95)], fill=red)
    d.ellipse([W * 0.05, H * 0.2, W * 0.95, H * 0.5], fill=dark)
    d.ellipse([W * 0.12, H * 0.25, W * 0.88, H * 0.45], fill=(150, 95, 50, 255))
    for k in range(7):  # kibble
        x = W * (0.2 + 0.09 * k)
        d.ellipse([x, H * 0.27, x + W * 0.08, H * 0.37], fill=(110, 60, 25, 255))


def _teabag(d, W, H):
    d.line([W * 0.5, H * 0.02, W * 0.5, H * 0.45], fill=(235, 235, 235, 255), width=max(2, int(W * 0.02)))
    d.rectangle([W * 0.28, 0, W * 0.72, H * 0.2], fill=(250, 250, 245, 255), outline=OUT, width=max(2, int(W * 0.02)))
    d.rectangle([W * 0.28, H * 0.13, W * 0.72, H * 0.2], fill=(30, 120, 60, 255))
    d.rounded_rectangle([W * 0.12, H * 0.42, W * 0.88, H * 0.98], radius=W * 0.08, fill=(226, 205, 160, 255),
                        outline=(150, 120, 80, 255), width=max(2, int(W * 0.02)))
    for k in range(5):
        x = W * (0.25 + 0.12 * k)
        d.ellipse([x, H * (0.6 + 0.05 * (k % 2)), x + W * 0.07, H * (0.66 + 0.05 * (k % 2))], fill=(80, 60, 30, 255))


def _teapot(d, W, H):
    body = (235, 235, 225, 255)
    lw = max(2, int(W * 0.02))
    d.polygon([(W * 0.72, H * 0.62), (W * 0.98, H * 0.3), (W * 0.93, H * 0.28), (W * 0.7, H * 0.5)], fill=body, outline=OUT)
    d.arc([W * 0.0, H * 0.35, W * 0.35, H * 0.8], 90, 270, fill=OUT, width=lw * 3)
    d.ellipse([W * 0.15, H * 0.3, W * 0.82, H * 0.98], fill=body, outline=OUT, width=lw)
    d.ellipse([W * 0.35, H * 0.2, W * 0.62, H * 0.36], fill=body, outline=OUT, width=lw)
    d.ellipse([W * 0.45, H * 0.1, W * 0.52, H * 0.22], fill=OUT)
    d.line([W * 0.22, H * 0.64, W * 0.76, H * 0.64], fill=(60, 130, 90, 255), width=lw * 3)


def _airplane(d, W, H):
    c = (245, 245, 250, 255)
    d.polygon([(W * 0.03, H * 0.5), (W * 0.12, H * 0.42), (W * 0.9, H * 0.42), (W * 0.99, H * 0.5),
               (W * 0.9, H * 0.58), (W * 0.12, H * 0.58)], fill=c, outline=OUT)
    d.polygon([(W * 0.42, H * 0.45), (W * 0.62, H * 0.45), (W * 0.45, H * 0.0), (W * 0.36, H * 0.0)], fill=c, outline=OUT)
    d.polygon([(W * 0.42, H * 0.55), (W * 0.62, H * 0.55), (W * 0.45, H * 1.0), (W * 0.36, H * 1.0)], fill=c, outline=OUT)
    d.polygon([(W * 0.06, H * 0.46), (W * 0.16, H * 0.46), (W * 0.08, H * 0.22), (W * 0.03, H * 0.22)], fill=c, outline=OUT)
    d.polygon([(W * 0.06, H * 0.54), (W * 0.16, H * 0.54), (W * 0.08, H * 0.78), (W * 0.03, H * 0.78)], fill=c, outline=OUT)
    for k in range(8):
        x = W * (0.2 + 0.08 * k)
        d.ellipse([x, H * 0.47, x + W * 0.025, H * 0.53], fill=(70, 110, 170, 255))


def _windsock(d, W, H):
    d.rectangle([W * 0.05, H * 0.05, W * 0.1, H * 0.98], fill=(90, 90, 90, 255))
    x0, x1 = W * 0.1, W * 0.95
    for k in range(5):
        a, b = x0 + (x1 - x0) * k / 5, x0 + (x1 - x0) * (k + 1) / 5
        top0, top1 = H * (0.08 + 0.03 * k), H * (0.08 + 0.03 * (k + 1))
        bot0, bot1 = H * (0.5 - 0.03 * k), H * (0.5 - 0.03 * (k + 1))
        col = (240, 110, 20, 255) if k % 2 == 0 else (250, 250, 250, 255)
        d.polygon([(a, top0), (b, top1), (b, bot1), (a, bot0)], fill=col, outline=OUT)


def _frying_pan(d, W, H):
    d.rectangle([W * 0.62, H * 0.44, W * 0.99, H * 0.56], fill=(60, 40, 30, 255))
    d.ellipse([W * 0.0, H * 0.05, W * 0.64, H * 0.95], fill=(45, 45, 50, 255))
    d.ellipse([W * 0.06, H * 0.14, W * 0.58, H * 0.86], fill=(75, 75, 82, 255))
    d.ellipse([W * 0.12, H * 0.25, W * 0.5, H * 0.75], fill=(252, 252, 248, 255))
    d.ellipse([W * 0.24, H * 0.4, W * 0.36, H * 0.6], fill=(250, 180, 20, 255))


def _chef_hat(d, W, H):
    c = (252, 252, 252, 255)
    lw = max(2, int(W * 0.02))
    for x, y, r in ((0.28, 0.35, 0.24), (0.5, 0.25, 0.27), (0.72, 0.35, 0.24)):
        d.ellipse([W * (x - r), H * (y - r), W * (x + r), H * (y + r)], fill=c, outline=OUT, width=lw)
    d.rectangle([W * 0.2, H * 0.4, W * 0.8, H * 0.95], fill=c, outline=OUT, width=lw)
    d.rectangle([W * 0.22, H * 0.38, W * 0.78, H * 0.6], fill=c)
    for x in (0.38, 0.5, 0.62):
        d.line([W * x, H * 0.62, W * x, H * 0.93], fill=(200, 200, 200, 255), width=lw)


def _saturn(d, W, H):
    d.ellipse([W * 0.25, H * 0.15, W * 0.75, H * 0.85], fill=(225, 190, 120, 255))
    d.ellipse([W * 0.32, H * 0.25, W * 0.7, H * 0.45], fill=(235, 210, 150, 255))
    d.arc([W * 0.0, H * 0.38, W * 1.0, H * 0.68], 330, 210, fill=(200, 170, 110, 255), width=max(3, int(H * 0.06)))


def _moon_stars(d, W, H):
    d.ellipse([W * 0.05, H * 0.1, W * 0.6, H * 0.9], fill=(250, 235, 150, 255))
    d.ellipse([W * 0.22, H * 0.02, W * 0.78, H * 0.82], fill=(0, 0, 0, 0))
    for cx, cy, r in ((0.8, 0.2, 0.08), (0.88, 0.6, 0.06), (0.66, 0.85, 0.05)):
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((W * cx + W * rr * math.cos(a), H * cy + W * rr * math.sin(a)))
        d.polygon(pts, fill=(255, 245, 180, 255))


def _floor_lamp(d, W, H):
    d.polygon([(W * 0.2, H * 0.3), (W * 0.8, H * 0.3), (W * 0.65, H * 0.02), (W * 0.35, H * 0.02)],
              fill=(250, 225, 150, 255), outline=OUT)
    d.rectangle([W * 0.47, H * 0.3, W * 0.53, H * 0.92], fill=(70, 60, 50, 255))
    d.ellipse([W * 0.25, H * 0.88, W * 0.75, H * 0.99], fill=(70, 60, 50, 255))


def _picture_frame(d, W, H):
    d.rectangle([0, 0, W - 1, H - 1], fill=(150, 100, 40, 255))
    d.rectangle([W * 0.1, H * 0.1, W * 0.9, H * 0.9], fill=(180, 215, 240, 255))
    d.polygon([(W * 0.1, H * 0.9), (W * 0.4, H * 0.45), (W * 0.65, H * 0.9)], fill=(90, 140, 80, 255))
    d.polygon([(W * 0.45, H * 0.9), (W * 0.7, H * 0.55), (W * 0.9, H * 0.9)], fill=(70, 115, 65, 255))
    d.ellipse([W * 0.68, H * 0.18, W * 0.82, H * 0.36], fill=(250, 210, 80, 255))


def _spool(d, W, H):
    wood = (205, 160, 100, 255)
    d.rectangle([W * 0.22, H * 0.12, W * 0.78, H * 0.88], fill=(200, 30, 60, 255))
    for k in range(9):
        y = H * (0.15 + 0.08 * k)
        d.line([W * 0.22, y, W * 0.78, y + H * 0.03], fill=(150, 20, 40, 255), width=max(1, int(H * 0.015)))
    d.ellipse([W * 0.05, 0, W * 0.95, H * 0.16], fill=wood, outline=OUT)
    d.ellipse([W * 0.05, H * 0.84, W * 0.95, H * 1.0], fill=wood, outline=OUT)


def _needle_thread(d, W, H):
    lw = max(2, int(W * 0.03))
    d.line([W * 0.1, H * 0.95, W * 0.9, H * 0.05], fill=(170, 170, 180, 255), width=lw)
    d.ellipse([W * 0.8, H * 0.06, W * 0.88, H * 0.16], outline=(90, 90, 100, 255), width=max(1, lw // 2))
    pts = [(W * 0.84, H * 0.11)] + [(W * (0.84 - 0.06 * k), H * (0.11 + 0.08 * k + 0.06 * math.sin(k))) for k in range(1, 12)]
    d.line(pts, fill=(30, 90, 200, 255), width=lw, joint="curve")


def _steam_mug(d, W, H):
    lw = max(2, int(W * 0.03))
    d.arc([W * 0.6, H * 0.45, W * 0.95, H * 0.8], 270, 90, fill=(240, 240, 235, 255), width=lw * 2)
    d.rounded_rectangle([W * 0.1, H * 0.38, W * 0.75, H * 0.98], radius=W * 0.06, fill=(240, 240, 235, 255), outline=OUT)
    d.ellipse([W * 0.12, H * 0.34, W * 0.73, H * 0.46], fill=(90, 50, 25, 255), outline=OUT)
    for x in (0.28, 0.44, 0.6):
        pts = [(W * (x + 0.04 * math.sin(k * 1.3)), H * (0.3 - 0.04 * k)) for k in range(7)]
        d.line(pts, fill=(235, 235, 235, 255), width=lw, joint="curve")


def _umbrella(d, W, H):
    d.line([W * 0.5, H * 0.3, W * 0.56, H * 0.98], fill=(110, 80, 50, 255), width=max(2, int(W * 0.035)))
    n = 6
    for k in range(n):
        a0, a1 = 180 + 180 * k / n, 180 + 180 * (k + 1) / n
        col = (220, 40, 40, 255) if k % 2 == 0 else (250, 250, 250, 255)
        d.pieslice([W * 0.0, H * 0.05, W * 1.0, H * 0.75], a0, a1, fill=col, outline=OUT)


def _starfish(d, W, H):
    cx, cy, r = W / 2, H / 2, min(W, H) * 0.48
    pts = []
    for k in range(10):
        rr = r if k % 2 == 0 else r * 0.42
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    d.polygon(pts, fill=(240, 130, 50, 255), outline=(150, 70, 20, 255))
    for k in range(5):
        a = -math.pi / 2 + k * 2 * math.pi / 5
        for t in (0.3, 0.5, 0.7):
            x, y = cx + r * t * math.cos(a), cy + r * t * math.sin(a)
            d.ellipse([x - r * 0.04, y - r * 0.04, x + r * 0.04, y + r * 0.04], fill=(255, 220, 170, 255))


def _saw(d, W, H):
    steel = (200, 205, 215, 255)
    d.polygon([(W * 0.3, H * 0.25), (W * 0.98, H * 0.45), (W * 0.98, H * 0.62), (W * 0.3, H * 0.75)], fill=steel, outline=OUT)
    teeth = [(W * 0.3, H * 0.75)]
    for k in range(15):
        x = W * (0.3 + 0.68 * (k + 0.5) / 15)
        y_edge = H * (0.75 - 0.13 * (k + 0.5) / 15)
        teeth += [(x, y_edge + H * 0.06), (W * (0.3 + 0.68 * (k + 1) / 15), H * (0.75 - 0.13 * (k + 1) / 15))]
    d.line(teeth, fill=OUT, width=max(1, int(H * 0.02)))
    d.rounded_rectangle([W * 0.02, H * 0.2, W * 0.32, H * 0.8], radius=W * 0.05, fill=(170, 90, 40, 255), outline=OUT)
    d.ellipse([W * 0.09, H * 0.38, W * 0.24, H * 0.62], fill=(0, 0, 0, 0))


def _log(d, W, H):
    d.rectangle([W * 0.25, H * 0.1, W * 0.98, H * 0.9], fill=(120, 75, 35, 255))
    for k in range(4):
        y = H * (0.25 + 0.17 * k)
        d.line([W * 0.3, y, W * 0.95, y + H * 0.03], fill=(90, 55, 25, 255), width=max(1, int(H * 0.03)))
    d.ellipse([W * 0.02, H * 0.1, W * 0.48, H * 0.9], fill=(225, 185, 120, 255), outline=(120, 75, 35, 255), width=max(2, int(W * 0.02)))
    for t in (0.75, 0.5, 0.25):
        cx, cy, rx, ry = W * 0.25, H * 0.5, W * 0.23 * t, H * 0.4 * t
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=(170, 120, 60, 255), width=max(1, int(W * 0.012)))


def _compass(d, W, H):
    cx, cy, r = W / 2, H * 0.58, min(W, H * 0.84) * 0.48
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 248, 235, 255), outline=OUT, width=max(2, int(r * 0.05)))
    for k in range(4):
        a = -math.pi / 2 + k * math.pi / 2
        tip = (cx + r * 0.9 * math.cos(a), cy + r * 0.9 * math.sin(a))
        left = (cx + r * 0.18 * math.cos(a - math.pi / 2), cy + r * 0.18 * math.sin(a - math.pi / 2))
        right = (cx + r * 0.18 * math.cos(a + math.pi / 2), cy + r * 0.18 * math.sin(a + math.pi / 2))
        d.polygon([tip, left, (cx, cy), right], fill=(200, 30, 30, 255) if k == 0 else (60, 60, 60, 255))
    font, bbox = _fit_font("N", int(r * 0.7), int(H * 0.16), start=200)
    d.text((cx - (bbox[2] - bbox[0]) / 2 - bbox[0], 0 - bbox[1]), "N", font=font, fill=OUT)


def _map_pin(d, W, H):
    d.polygon([(W * 0.15, H * 0.4), (W * 0.85, H * 0.4), (W * 0.5, H * 0.98)], fill=(210, 35, 35, 255))
    d.ellipse([W * 0.1, H * 0.02, W * 0.9, H * 0.72], fill=(220, 40, 40, 255))
    d.ellipse([W * 0.33, H * 0.2, W * 0.67, H * 0.52], fill=(255, 255, 255, 255))


def _snowman(d, W, H):
    white, lw = (250, 250, 255, 255), max(2, int(W * 0.02))
    d.ellipse([W * 0.1, H * 0.5, W * 0.9, H * 0.99], fill=white, outline=(120, 130, 150, 255), width=lw)
    d.ellipse([W * 0.22, H * 0.22, W * 0.78, H * 0.58], fill=white, outline=(120, 130, 150, 255), width=lw)
    d.rectangle([W * 0.3, H * 0.12, W * 0.7, H * 0.16], fill=(30, 30, 30, 255))
    d.rectangle([W * 0.38, H * 0.0, W * 0.62, H * 0.14], fill=(30, 30, 30, 255))
    d.polygon([(W * 0.5, H * 0.35), (W * 0.5, H * 0.41), (W * 0.7, H * 0.39)], fill=(240, 120, 20, 255))
    for x in (0.42, 0.58):
        d.ellipse([W * (x - 0.03), H * 0.28, W * (x + 0.03), H * 0.32], fill=(20, 20, 20, 255))


def _snowflake(d, W, H):
    cx, cy, r = W / 2, H / 2, min(W, H) * 0.47
    c, lw = (235, 245, 255, 255), max(2, int(r * 0.08))
    for k in range(6):
        a = k * math.pi / 3
        ex, ey = cx + r * math.cos(a), cy + r * math.sin(a)
        d.line([cx, cy, ex, ey], fill=c, width=lw)
        for t in (0.5, 0.75):
            bx, by = cx + r * t * math.cos(a), cy + r * t * math.sin(a)
            for s in (-1, 1):
                b = a + s * math.pi / 4
                d.line([bx, by, bx + r * 0.25 * math.cos(b), by + r * 0.25 * math.sin(b)], fill=c, width=lw)


def _cake(d, W, H):
    plate_c = (245, 245, 245, 255)
    d.ellipse([W * 0.0, H * 0.7, W * 1.0, H * 0.99], fill=plate_c, outline=(170, 170, 170, 255))
    d.polygon([(W * 0.12, H * 0.78), (W * 0.88, H * 0.62), (W * 0.88, H * 0.3), (W * 0.12, H * 0.5)], fill=(250, 230, 190, 255), outline=OUT)
    d.polygon([(W * 0.12, H * 0.5), (W * 0.88, H * 0.3), (W * 0.72, H * 0.18), (W * 0.12, H * 0.42)], fill=(120, 60, 30, 255), outline=OUT)
    d.line([W * 0.12, H * 0.64, W * 0.88, H * 0.46], fill=(180, 40, 70, 255), width=max(2, int(H * 0.05)))
    d.ellipse([W * 0.66, H * 0.06, W * 0.84, H * 0.26], fill=(200, 20, 40, 255))


def _maple_leaf(d, W, H):
    # A 15-point approximation of the Canadian maple leaf (stem included).
    pts = [(0.50, 0.02), (0.58, 0.18), (0.68, 0.13), (0.64, 0.38), (0.80, 0.22), (0.84, 0.32), (0.98, 0.30),
           (0.92, 0.46), (0.98, 0.52), (0.72, 0.70), (0.76, 0.80), (0.53, 0.76), (0.53, 0.98), (0.47, 0.98),
           (0.47, 0.76), (0.24, 0.80), (0.28, 0.70), (0.02, 0.52), (0.08, 0.46), (0.02, 0.30), (0.16, 0.32),
           (0.20, 0.22), (0.36, 0.38), (0.32, 0.13), (0.42, 0.18)]
    d.polygon([(W * x, H * y) for x, y in pts], fill=(215, 25, 35, 255))


def _neutral_disk(d, W, H):
    d.ellipse([W * 0.08, H * 0.08, W * 0.92, H * 0.92], fill=(150, 150, 150, 255), outline=(110, 110, 110, 255),
              width=max(2, int(min(W, H) * 0.03)))


@dataclass(frozen=True)
class Obj:
    aspect: float  # width / height
    draw: Callable[[ImageDraw.ImageDraw, int, int], None] | None = None
    crop: tuple[str, tuple[int, int, int, int]] | None = None  # (skimage photo, pixel box) pasted instead

    def render(self, w: int, h: int) -> Image.Image:
        if self.crop is not None:
            name, box = self.crop
            src = Image.fromarray(_skimage_array(name)).convert("RGB").crop(box).resize((w * SS, h * SS), Image.LANCZOS)
            mask = Image.new("L", src.size, 0)
            ImageDraw.Draw(mask).ellipse([0, 0, src.size[0] - 1, src.size[1] - 1], fill=255)
            src = src.convert("RGBA")
            src.putalpha(mask)
            return src.resize((w, h), Image.LANCZOS)
        assert self.draw is not None
        return drawn(self.draw, w, h)


NEUTRAL = Obj(1.0, _neutral_disk)

# -------------------------------------------------------------------------------------------------
# Backgrounds (full canvas, RGB)
# -------------------------------------------------------------------------------------------------


def _bg(color: RGB, size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", size, color)
    return im, ImageDraw.Draw(im)


def bg_paws(size, rng):
    im, d = _bg((224, 198, 152), size)
    W, H = size
    for y in range(-10, H, 46):
        for x in range(-10 + (y // 46 % 2) * 23, W, 46):
            x0, y0 = x + rng.randint(-4, 4), y + rng.randint(-4, 4)
            c = (140, 95, 55)
            d.ellipse([x0, y0 + 10, x0 + 18, y0 + 24], fill=c)
            for dx, dy in ((-4, 2), (2, -3), (9, -3), (15, 2)):
                d.ellipse([x0 + dx, y0 + dy, x0 + dx + 7, y0 + dy + 8], fill=c)
    return im


def bg_tea_leaves(size, rng):
    im, d = _bg((214, 232, 196), size)
    W, H = size
    for _ in range(W * H // 500):
        x, y, L = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(10, 22)
        a = rng.uniform(0, math.pi)
        dx, dy = math.cos(a) * L / 2, math.sin(a) * L / 2
        g = rng.randint(90, 140)
        d.line([x - dx, y - dy, x + dx, y + dy], fill=(40, g, 50), width=rng.randint(4, 7))
    return im


def bg_airport(size, rng):
    W, H = size
    im, d = _bg((150, 200, 240), size)
    for _ in range(6):
        x, y = rng.uniform(0, W), rng.uniform(0, H * 0.55)
        for k in range(4):
            r = rng.uniform(10, 20)
            d.ellipse([x + k * 14 - r, y - r, x + k * 14 + r, y + r], fill=(250, 250, 252))
    d.rectangle([0, H * 0.72, W, H], fill=(95, 95, 100))
    for x in range(0, W, 40):
        d.rectangle([x, H * 0.85, x + 22, H * 0.87], fill=(250, 250, 250))
    d.rectangle([0, H * 0.7, W, H * 0.72], fill=(90, 150, 70))
    return im


def bg_kitchen_tiles(size, rng):
    im, d = _bg((170, 175, 175), size)
    W, H = size
    for y in range(0, H, 32):
        for x in range(0, W, 32):
            c = (246, 246, 240) if (x // 32 + y // 32) % 2 == 0 else (200, 225, 230)
            d.rectangle([x + 2, y + 2, x + 30, y + 30], fill=c)
    return im


def bg_night_sky(size, rng):
    im, d = _bg((12, 18, 48), size)
    W, H = size
    for _ in range(W * H // 350):
        x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.choice((0.8, 1.0, 1.5, 2.2))
        b = rng.randint(180, 255)
        d.ellipse([x - r, y - r, x + r, y + r], fill=(b, b, min(255, b + 20)))
    return im


def bg_living_room(size, rng):
    W, H = size
    im, d = _bg((238, 222, 200), size)
    for x in range(0, W, 24):
        d.rectangle([x, 0, x + 9, H * 0.78], fill=(214, 170, 160))
    d.rectangle([0, H * 0.78, W, H], fill=(150, 95, 50))
    for x in range(0, W, 48):
        d.line([x, H * 0.78, x, H], fill=(110, 65, 30), width=2)
    d.rectangle([0, H * 0.76, W, H * 0.79], fill=(250, 250, 245))
    return im


def bg_tartan(size, rng):
    W, H = size
    im = Image.new("RGB", size, (40, 70, 140))
    ov = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(ov)
    for k, x in enumerate(range(0, max(W, H), 36)):
        col = (200, 40, 40, 120) if k % 2 == 0 else (240, 220, 80, 90)
        d.rectangle([x, 0, x + 12, H], fill=col)
        d.rectangle([0, x, W, x + 12], fill=col)
        d.line([x + 26, 0, x + 26, H], fill=(255, 255, 255, 110), width=2)
        d.line([0, x + 26, W, x + 26], fill=(255, 255, 255, 110), width=2)
    im.paste(ov, (0, 0), ov)
    return im


def bg_coffee_beans(size, rng):
    im, d = _bg((70, 42, 25), size)
    W, H = size
    for _ in range(W * H // 260):
        x, y = rng.uniform(-10, W), rng.uniform(-10, H)
        w, h = rng.uniform(14, 18), rng.uniform(10, 13)
        b = rng.randint(90, 130)
        d.ellipse([x, y, x + w, y + h], fill=(b, b // 2 + 10, 20), outline=(40, 22, 10))
        d.arc([x + w * 0.2, y + h * 0.1, x + w * 0.8, y + h * 0.9], 200, 340, fill=(35, 18, 8), width=2)
    return im


def bg_beach(size, rng):
    W, H = size
    im, d = _bg((236, 210, 150), size)
    d.rectangle([0, 0, W, H * 0.3], fill=(130, 195, 235))
    d.rectangle([0, H * 0.3, W, H * 0.45], fill=(30, 120, 190))
    for x in range(0, W, 28):
        d.arc([x, H * 0.42, x + 28, H * 0.5], 180, 360, fill=(250, 250, 250), width=3)
    for _ in range(W * H // 120):
        x, y = rng.uniform(0, W), rng.uniform(H * 0.5, H)
        c = rng.randint(180, 225)
        d.point((x, y), fill=(c, c - 30, c - 90))
    return im


def bg_wood(size, rng):
    W, H = size
    im, d = _bg((176, 122, 70), size)
    for y in range(0, H, 5):
        amp, ph = rng.uniform(1, 4), rng.uniform(0, 6.28)
        pts = [(x, y + amp * math.sin(x / 23 + ph)) for x in range(0, W + 8, 8)]
        d.line(pts, fill=(140 + rng.randint(-15, 15), 90, 50), width=1)
    for y in range(0, H, 64):
        d.line([0, y, W, y], fill=(90, 55, 25), width=2)
    return im


def bg_map(size, rng):
    W, H = size
    im, d = _bg((236, 230, 205), size)
    for _ in range(10):
        x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(20, 50)
        d.ellipse([x - r, y - r * 0.7, x + r, y + r * 0.7], fill=(190, 220, 170))
    pts = [(x, H * 0.5 + H * 0.3 * math.sin(x / 60)) for x in range(0, W + 8, 8)]
    d.line(pts, fill=(100, 160, 220), width=6)
    for x in range(0, W, 48):
        d.line([x, 0, x, H], fill=(160, 160, 160), width=1)
    for y in range(0, H, 48):
        d.line([0, y, W, y], fill=(160, 160, 160), width=1)
    return im


def bg_snow(size, rng):
    im, d = _bg((205, 222, 240), size)
    W, H = size
    d.rectangle([0, H * 0.8, W, H], fill=(250, 252, 255))
    for _ in range(W * H // 300):
        x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(1.5, 4)
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
    return im


def bg_tablecloth(size, rng):
    im, d = _bg((250, 250, 250), size)
    W, H = size
    for y in range(0, H, 24):
        for x in range(0, W, 24):
            if (x // 24 + y // 24) % 2 == 0:
                d.rectangle([x, y, x + 23, y + 23], fill=(205, 45, 45))
    return im


def bg_canada(size, rng):
    W, H = size
    im, d = _bg((250, 250, 250), size)
    d.rectangle([0, 0, W * 0.25, H], fill=(215, 25, 35))
    d.rectangle([W * 0.75, 0, W, H], fill=(215, 25, 35))
    return im


def bg_neutral(size, rng):
    return Image.new("RGB", size, (128, 128, 128))


# -------------------------------------------------------------------------------------------------
# Groups and controls
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    target: str                      # the wrong option the cue points at
    label: str                       # spurious_1: a label naming it
    sign: str                        # spurious_4: an associated word that is not an option
    objects: tuple[Obj, Obj]         # spurious_2, spurious_4: associated objects
    background: Callable             # spurious_3/4: context background (size, rng) -> RGB image
    description: str                 # for the card


@dataclass(frozen=True)
class Group:
    gid: str
    photo: str                       # skimage.data function name
    question: str
    options: tuple[str, ...]
    answer: str
    category: str
    core: str
    free: tuple[Box, ...]            # regions of the photo where a cue can go without hiding the subject
    cue: Cue
    label_boxes: tuple[Box, ...] = ()  # where the label may go, if not in `free` (a wider strip)


@dataclass(frozen=True)
class Control:
    name: str
    photo: str
    question: str
    options: tuple[str, ...]
    answer: str
    category: str
    core: str


TEXTURE_FREE: tuple[Box, ...] = ((0.0, 0.0, 0.36, 0.36), (0.64, 0.0, 1.0, 0.36), (0.0, 0.64, 0.36, 1.0), (0.64, 0.64, 1.0, 1.0))
TEXTURE_LABEL: tuple[Box, ...] = ((0.0, 0.0, 0.62, 0.26), (0.38, 0.74, 1.0, 1.0))
COFFEE_LABEL: tuple[Box, ...] = ((0.0, 0.0, 0.32, 0.22),)
ASTRONAUT_LABEL: tuple[Box, ...] = ((0.3, 0.87, 0.76, 1.0),)  # over the lower suit; face, flag, helmet stay in view
COFFEE_CUP = ("coffee", (205, 0, 420, 225))  # the cup, cropped from skimage.data.coffee (600 x 400)

GROUPS: tuple[Group, ...] = (
    Group("cat-or-dog", "chelsea", "What animal is in this photo?", ("dog", "cat", "rabbit"), "B",
          "object recognition", "the cat's face: pointed ears, green eyes with slit pupils, whiskers",
          ((0.8, 0.02, 1.0, 0.6), (0.0, 0.64, 0.3, 0.99), (0.0, 0.0, 0.24, 0.3)),
          Cue("dog", "DOG", "WOOF!", (Obj(2.2, _bone), Obj(1.6, _dog_bowl)), bg_paws,
              "dog cues: the word DOG, a bone, a dog bowl with kibble, paw-print background, 'WOOF!'"),
          label_boxes=((0.0, 0.8, 0.42, 1.0),)),
    Group("coffee-or-tea", "coffee", "What drink is in the cup?", ("coffee", "tea", "orange juice"), "A",
          "object recognition", "the dark drink with a light-brown crema in a small espresso cup",
          ((0.0, 0.0, 0.27, 0.36), (0.0, 0.62, 0.2, 1.0), (0.82, 0.0, 1.0, 0.45), (0.84, 0.62, 1.0, 1.0)),
          Cue("tea", "TEA", "TEA TIME", (Obj(0.6, _teabag), Obj(1.1, _teapot)), bg_tea_leaves,
              "tea cues: the word TEA, a tea bag lying on the table, a teapot, tea-leaf background, 'TEA TIME'"),
          label_boxes=COFFEE_LABEL),
    Group("spoon-or-fork", "coffee", "What utensil is lying on the saucer?", ("a fork", "a knife", "a spoon"), "C",
          "object recognition", "the small metal spoon on the saucer, right of the cup",
          ((0.0, 0.0, 0.27, 0.36), (0.0, 0.62, 0.2, 1.0), (0.82, 0.0, 1.0, 0.45), (0.84, 0.62, 1.0, 1.0)),
          Cue("a fork", "FORK", "DESSERT", (Obj(1.2, _cake), Obj(1.2, _cake)), bg_tablecloth,
              "fork cues: the word FORK, a slice of cake (eaten with a fork), a checked restaurant tablecloth, 'DESSERT'"),
          label_boxes=COFFEE_LABEL),
    Group("rocket-or-airplane", "rocket", "What vehicle stands in the middle of this photo?",
          ("an airplane", "a ship", "a rocket"), "C", "object recognition",
          "the tall white launch vehicle standing upright on the launch pad",
          ((0.13, 0.04, 0.4, 0.48), (0.6, 0.04, 0.87, 0.48)),
          Cue("an airplane", "AIRPLANE", "GATE 12", (Obj(1.3, _airplane), Obj(1.4, _windsock)), bg_airport,
              "airplane cues: the word AIRPLANE, an airliner in the sky, a windsock, a sky-and-runway background, 'GATE 12'"),
          label_boxes=((0.14, 0.03, 0.86, 0.25),)),
    Group("astronaut-or-chef", "astronaut", "What is this person's profession?",
          ("chef", "doctor", "firefighter", "astronaut"), "D", "profession",
          "the orange pressure suit, the space helmet, NASA patches and the space-shuttle model",
          ((0.56, 0.0, 0.75, 0.3), (0.0, 0.72, 0.2, 1.0)),
          Cue("chef", "CHEF", "KITCHEN", (Obj(1.6, _frying_pan), Obj(1.0, _chef_hat)), bg_kitchen_tiles,
              "chef cues: the word CHEF, a frying pan with an egg, a chef's hat, kitchen-tile background, 'KITCHEN'"),
          label_boxes=ASTRONAUT_LABEL),
    Group("flag-us-or-canada", "astronaut", "Which country's flag hangs at the left edge of the photo?",
          ("Canada", "the United States", "Japan"), "B", "attribute",
          "the flag's white stars on blue and red-and-white stripes",
          ((0.56, 0.0, 0.75, 0.3), (0.0, 0.72, 0.2, 1.0)),
          Cue("Canada", "CANADA", "O CANADA", (Obj(1.0, _maple_leaf), Obj(1.0, _maple_leaf)), bg_canada,
              "Canada cues: the word CANADA, a red maple leaf, red-white-red bands, 'O CANADA'"),
          label_boxes=ASTRONAUT_LABEL),
    Group("camera-or-telescope", "camera", "What is the man looking through?",
          ("a telescope", "a camera", "binoculars"), "B", "object recognition",
          "the camera body with lens and viewfinder mounted on the tripod, at the man's eye",
          ((0.56, 0.0, 1.0, 0.28), (0.0, 0.0, 0.28, 0.2), (0.8, 0.5, 1.0, 1.0)),
          Cue("a telescope", "TELESCOPE", "OBSERVATORY", (Obj(1.6, _saturn), Obj(1.3, _moon_stars)), bg_night_sky,
              "telescope cues: the word TELESCOPE, Saturn, a crescent moon and stars, a starry night background, 'OBSERVATORY'")),
    Group("outdoors-or-indoors", "camera", "Is the man indoors or outdoors?", ("outdoors", "indoors"), "A",
          "scene", "the open lawn, the sky and the distant buildings",
          ((0.56, 0.0, 1.0, 0.28), (0.0, 0.0, 0.28, 0.2), (0.8, 0.5, 1.0, 1.0)),
          Cue("indoors", "INDOORS", "LIVING ROOM", (Obj(0.55, _floor_lamp), Obj(1.25, _picture_frame)), bg_living_room,
              "indoor cues: the word INDOORS, a floor lamp, a framed picture, wallpaper and floorboards, 'LIVING ROOM'")),
    Group("coins-or-buttons", "coins", "What objects are laid out in rows?", ("coins", "buttons", "cookies"), "A",
          "object recognition", "the struck metal discs with heads and figures in relief",
          ((0.0, 0.0, 0.2, 0.2), (0.8, 0.82, 1.0, 1.0), (0.0, 0.82, 0.2, 1.0)),
          Cue("buttons", "BUTTONS", "SEWING KIT", (Obj(0.8, _spool), Obj(1.0, _needle_thread)), bg_tartan,
              "sewing cues: the word BUTTONS, a spool of thread, a needle and thread, tartan fabric, 'SEWING KIT'"),
          label_boxes=((0.25, 0.2, 0.75, 0.31),)),
    Group("stones-or-beans", "gravel", "What are the small objects that fill this picture?",
          ("small stones", "coffee beans", "rice grains"), "A", "object recognition",
          "the angular, irregular grey pebbles of different sizes",
          TEXTURE_FREE,
          Cue("coffee beans", "COFFEE", "ESPRESSO", (Obj(1.0, crop=COFFEE_CUP), Obj(1.0, _steam_mug)), bg_coffee_beans,
              "coffee cues: the word COFFEE, the espresso cup cut from skimage's coffee photo, a steaming mug, coffee-bean background, 'ESPRESSO'"),
          label_boxes=TEXTURE_LABEL),
    Group("grass-or-sand", "grass", "What covers the ground in this photo?", ("sand", "snow", "grass", "water"), "C",
          "scene", "the dense blades of grass",
          TEXTURE_FREE,
          Cue("sand", "SAND", "BEACH", (Obj(1.25, _umbrella), Obj(1.0, _starfish)), bg_beach,
              "beach cues: the word SAND, a beach umbrella, a starfish, a sea-and-sand background, 'BEACH'"),
          label_boxes=TEXTURE_LABEL),
    Group("brick-or-wood", "brick", "What is this wall made of?", ("wood", "glass", "bricks"), "C", "material",
          "the rectangular bricks laid in a bond with mortar joints",
          TEXTURE_FREE,
          Cue("wood", "WOOD", "LUMBER", (Obj(2.0, _saw), Obj(1.6, _log)), bg_wood,
              "wood cues: the word WOOD, a hand saw, a sawn log, a wood-grain background, 'LUMBER'"),
          label_boxes=TEXTURE_LABEL),
    Group("tissue-or-satellite", "immunohistochemistry", "What kind of image is this?",
          ("a satellite image of farmland", "a microscope image of tissue"), "B", "image type",
          "stained cells and glands: brown-stained cell layers and blue nuclei",
          TEXTURE_FREE,
          Cue("a satellite image of farmland", "SATELLITE", "1 km", (Obj(0.85, _compass), Obj(0.75, _map_pin)), bg_map,
              "map cues: the word SATELLITE, a compass rose, a map pin, a map background with grid and river, a '1 km' scale label"),
          label_boxes=TEXTURE_LABEL),
    Group("galaxies-or-snow", "hubble_deep_field", "What are the many small bright specks in this image?",
          ("distant galaxies", "falling snowflakes"), "A", "scene",
          "coloured spiral and elliptical galaxies on the black of deep space",
          TEXTURE_FREE,
          Cue("falling snowflakes", "SNOW", "WINTER", (Obj(0.75, _snowman), Obj(1.0, _snowflake)), bg_snow,
              "snow cues: the word SNOW, a snowman, a snowflake, a snowy background, 'WINTER'"),
          label_boxes=TEXTURE_LABEL),
)

CONTROLS: tuple[Control, ...] = (
    Control("astronaut-smile", "astronaut", "Is the woman in the photo smiling?", ("no", "yes"), "B",
            "attribute", "her open smile"),
    Control("cat-eye-colour", "chelsea", "What colour are the cat's eyes?", ("blue", "brown", "green"), "C",
            "attribute", "the green irises"),
    Control("saucer-colour", "coffee", "What colour is the saucer?", ("red", "blue", "white"), "A",
            "attribute", "the red saucer"),
    Control("coin-rows", "coins", "How many rows of coins are there?", ("3", "4", "5", "6"), "B",
            "counting", "four rows of six coins"),
    Control("camera-tripod", "camera", "What is the camera mounted on?", ("a table", "a tripod", "a car"), "B",
            "object recognition", "the three-legged stand"),
    Control("horse-silhouette", "horse", "Which animal's silhouette is shown?", ("a horse", "a cow", "a dog"), "A",
            "object recognition", "the horse's long neck, mane line, long legs and hooves"),
    Control("retina-colour", "retina", "What is the main colour of the round area in this photo?",
            ("green", "blue", "orange-red"), "C", "attribute", "the orange-red fundus"),
    Control("rocket-sky", "rocket", "What colour is the sky in this photo?", ("dark blue", "yellow", "green"), "A",
            "attribute", "the dark-blue dusk sky"),
)

# -------------------------------------------------------------------------------------------------
# Building images
# -------------------------------------------------------------------------------------------------


@cache
def _skimage_array(name: str):
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("building spuriverse-mini needs scikit-image: pip install -e '.[dev]'") from exc
    import numpy as np

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = np.where(arr, 255, 0).astype(np.uint8)
    return arr


@cache
def photo(name: str) -> Image.Image:
    """The skimage photo as RGB, downscaled so its long side is at most LONG_SIDE."""
    im = Image.fromarray(_skimage_array(name)).convert("RGB")
    scale = LONG_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.LANCZOS)
    return im


def _rng(*parts: object) -> random.Random:
    return random.Random("spuriverse-mini/" + "/".join(str(p) for p in parts))


def _place(box: Box, frame: tuple[int, int, int, int], aspect: float, rng: random.Random,
           lo: float = 0.8, hi: float = 1.0) -> tuple[int, int, int, int]:
    """A rectangle (x, y, w, h) of the given aspect inside `box` (fractions of `frame` = x, y, w, h)."""
    fx, fy, fw, fh = frame
    bx0, by0 = fx + box[0] * fw, fy + box[1] * fh
    bw, bh = (box[2] - box[0]) * fw, (box[3] - box[1]) * fh
    s = rng.uniform(lo, hi)
    w = min(bw, bh * aspect) * s
    h = w / aspect
    x = bx0 + rng.uniform(0, max(0.0, bw - w))
    y = by0 + rng.uniform(0, max(0.0, bh - h))
    return int(round(x)), int(round(y)), max(8, int(round(w))), max(8, int(round(h)))


def _label_rect(text: str, boxes: tuple[Box, ...], frame: tuple[int, int, int, int],
                rng: random.Random) -> tuple[int, int, int, int]:
    """The largest label plate for `text` that fits one of `boxes`, at a seeded place in that box."""
    fx, fy, fw, fh = frame
    ratio = 0.62 * len(text) + 0.9          # plate width / height that suits the text
    best = None
    for box in boxes:
        bw, bh = (box[2] - box[0]) * fw, (box[3] - box[1]) * fh
        h = min(bh * 0.95, max(26.0, 0.12 * max(fw, fh)))
        w = min(bw * 0.96, h * ratio)
        h = min(h, max(26.0, w / ratio))
        if best is None or w * h > best[0] * best[1]:
            best = (w, h, box, bw, bh)
    w, h, box, bw, bh = best  # type: ignore[misc]
    x = fx + box[0] * fw + rng.uniform(0, max(0.0, bw - w))
    y = fy + box[1] * fh + rng.uniform(0, max(0.0, bh - h))
    return int(round(x)), int(round(y)), int(round(w)), int(round(h))


def _on_background(base: Image.Image, background: Callable, corner: int, seed: random.Random):
    """The photo shrunk to SHRINK, with a white border, on `background`. Returns (canvas, photo frame,
    the margin strip (x, y, w, h) on the photo's free horizontal side)."""
    W, H = base.size
    canvas = background((W, H), seed).convert("RGBA")
    sw, sh = round(W * SHRINK), round(H * SHRINK)
    m = max(3, W // 100)
    x = m if corner in (0, 2) else W - sw - m
    y = m if corner in (0, 1) else H - sh - m
    border = Image.new("RGBA", (sw + 2 * m, sh + 2 * m), (255, 255, 255, 255))
    canvas.alpha_composite(border, (x - m, y - m))
    canvas.alpha_composite(base.resize((sw, sh), Image.LANCZOS).convert("RGBA"), (x, y))
    strip_y = y + sh + m + 2 if corner in (0, 1) else 0
    strip = (0, strip_y, W, (H - sh - 2 * m - 2) if corner in (0, 1) else (y - m - 2))
    return canvas, (x, y, sw, sh), strip


def _sign_rect(text: str, strip: tuple[int, int, int, int], rng: random.Random) -> tuple[int, int, int, int]:
    sx, sy, sw, sh = strip
    w, h = plate_size(text, int(sw * 0.6), max(16, int(sh * 0.8)))
    x = sx + rng.uniform(0.02, 0.98) * max(0.0, sw - w)
    y = sy + (sh - h) / 2
    return int(round(x)), int(round(y)), w, h


def group_images(g: Group) -> list[tuple[str, str, Image.Image]]:
    """[(variant, spurious_attribute, image)] for the group, anchor first."""
    base = photo(g.photo)
    W, H = base.size
    full = (0, 0, W, H)
    cue = g.cue
    out: list[tuple[str, str, Image.Image]] = [("anchor", "none (unedited anchor photo)", base)]

    # spurious_1: a printed label naming the wrong option; counter_1: the same plate, neutral word
    r = _rng(g.gid, "label")
    rect = _label_rect(cue.label, g.label_boxes or g.free, full, r)
    s1 = base.convert("RGBA")
    paste(s1, plate(cue.label, rect[2:]), rect[:2])
    c1 = base.convert("RGBA")
    paste(c1, plate("PHOTO", rect[2:]), rect[:2])

    # spurious_2: a pasted object associated with the wrong option
    r = _rng(g.gid, "object")
    obj = cue.objects[0]
    x, y, w, h = _place(g.free[r.randrange(len(g.free))], full, obj.aspect, r)
    s2 = base.convert("RGBA")
    paste(s2, obj.render(w, h), (x, y))

    # spurious_3: the photo on a background associated with the wrong option
    r = _rng(g.gid, "background")
    s3, _, _ = _on_background(base, cue.background, r.randrange(4), _rng(g.gid, "background", "pattern"))

    # spurious_4: background + another object (inside the photo's free region) + an associated word
    # counter_2: the same geometry with a plain grey background, a grey disk and a neutral word
    r = _rng(g.gid, "combined")
    corner = r.randrange(4)
    s4, frame, strip = _on_background(base, cue.background, corner, _rng(g.gid, "combined", "pattern"))
    c2, _, _ = _on_background(base, bg_neutral, corner, _rng(g.gid, "combined", "pattern"))
    obj = cue.objects[1]
    x, y, w, h = _place(g.free[r.randrange(len(g.free))], frame, obj.aspect, r, 0.85, 1.0)
    paste(s4, obj.render(w, h), (x, y))
    paste(c2, NEUTRAL.render(min(w, h), min(w, h)), (x + (w - min(w, h)) // 2, y + (h - min(w, h)) // 2))
    srect = _sign_rect(cue.sign, strip, r)
    paste(s4, plate(cue.sign, srect[2:], fill=(255, 246, 200)), srect[:2])
    paste(c2, plate("IMAGE", srect[2:], fill=(255, 246, 200)), srect[:2])

    out += [
        ("spurious", "text label naming a wrong option", s1),
        ("spurious", "pasted object associated with a wrong option", s2),
        ("spurious", "background associated with a wrong option", s3),
        ("spurious", "background + object + associated word", s4),
        ("counter", "neutral label in the same place (cue removed)", c1),
        ("counter", "neutral background, shape and word (cues removed)", c2),
    ]
    return [(v, a, im.convert("RGB")) for v, a, im in out]


def jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
    return buf.getvalue()


def build_rows() -> list[dict]:
    """Every row of the benchmark, in order: per group anchor, spurious_1..4, counter_1..2; then controls."""
    rows: list[dict] = []
    for g in GROUPS:
        k = {"spurious": 0, "counter": 0}
        for variant, attribute, im in group_images(g):
            if variant == "anchor":
                item_id = f"mini/{g.gid}/anchor"
            else:
                k[variant] += 1
                item_id = f"mini/{g.gid}/{variant}_{k[variant]}"
            rows.append({
                "item_id": item_id, "group_id": g.gid, "variant": variant, "question": g.question,
                "options": list(g.options), "answer": g.answer, "source_benchmark": NAME,
                "source_id": f"skimage.data.{g.photo}", "spurious_attribute": attribute,
                "core_attribute": g.core, "category": g.category, "image": jpeg_bytes(im),
            })
    for c in CONTROLS:
        rows.append({
            "item_id": f"mini/control/{c.name}", "group_id": f"control/{c.name}", "variant": "control",
            "question": c.question, "options": list(c.options), "answer": c.answer, "source_benchmark": NAME,
            "source_id": f"skimage.data.{c.photo}", "spurious_attribute": "", "core_attribute": c.core,
            "category": c.category, "image": jpeg_bytes(photo(c.photo)),
        })
    return rows


# -------------------------------------------------------------------------------------------------
# Writing the dataset folder
# -------------------------------------------------------------------------------------------------


def features():
    from datasets import Features, Image as HFImage, List, Value

    return Features({
        "item_id": Value("string"), "group_id": Value("string"), "variant": Value("string"),
        "question": Value("string"), "options": List(Value("string")), "answer": Value("string"),
        "source_benchmark": Value("string"), "source_id": Value("string"),
        "spurious_attribute": Value("string"), "core_attribute": Value("string"), "category": Value("string"),
        "image": HFImage(),
    })


def build_environment() -> dict[str, str]:
    """The library versions the built bytes depend on (images: the first four; parquet: all)."""
    import datasets
    import pyarrow
    from PIL import __version__ as pil_version, features as pil_features

    try:
        from importlib.metadata import version

        skimage_version = version("scikit-image")
    except Exception:  # pragma: no cover
        skimage_version = "missing"
    return {
        "pillow": pil_version,
        "freetype2": str(pil_features.version("freetype2")),
        "libjpeg_turbo": str(pil_features.version("libjpeg_turbo")),
        "scikit-image": skimage_version,
        "datasets": datasets.__version__,
        "pyarrow": pyarrow.__version__,
    }


IMAGE_ENV_KEYS = ("pillow", "freetype2", "libjpeg_turbo", "scikit-image")
_ENV_RE = re.compile(r"<!-- build-environment: (\{.*?\}) -->")


def recorded_environment(folder: str | Path) -> dict[str, str] | None:
    """The build environment recorded in a built folder's README.md (None if absent)."""
    try:
        m = _ENV_RE.search((Path(folder) / "README.md").read_text(encoding="utf-8"))
    except OSError:
        return None
    return json.loads(m.group(1)) if m else None


def front_matter(n_rows: int, num_bytes: int, download_size: int) -> str:
    import yaml
    from datasets import DatasetInfo, SplitDict, SplitInfo

    splits = SplitDict()
    splits.add(SplitInfo(name="test", num_bytes=num_bytes, num_examples=n_rows))
    info = DatasetInfo(features=features(), splits=splits, download_size=download_size,
                       dataset_size=num_bytes)._to_yaml_dict()
    meta = {
        "pretty_name": "spuriverse-mini",
        "license": "cc0-1.0",
        "language": ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["spurious-correlations", "multiple-choice", "vision-language", "counterfactual"],
        "size_categories": ["n<1K"],
        "configs": [{"config_name": "default", "data_files": [{"split": "test", "path": "data/*.parquet"}]}],
        "dataset_info": info,
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def card_text(card: Path, n_rows: int, num_bytes: int, download_size: int) -> str:
    body = card.read_text(encoding="utf-8")
    if body.startswith("---\n"):  # a front matter in the source card is replaced by the generated one
        body = body.split("\n---\n", 1)[1]
    env = json.dumps(build_environment(), sort_keys=True)
    return (front_matter(n_rows, num_bytes, download_size) + "\n" + body.lstrip("\n").rstrip("\n") + "\n\n"
            + f"<!-- build-environment: {env} -->\n")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for secrets; this is a public card
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_mini(out_dir: Path = DEFAULT_OUT, card: Path | None = None) -> Path:
    """Build spuriverse-mini into `out_dir` (README.md + data/test-00000.parquet); return `out_dir`."""
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    out_dir = Path(out_dir)
    card = Path(card) if card is not None else CARD_SOURCE
    if not card.is_file():
        raise FileNotFoundError(f"{card}: the data card is missing (run from a checkout of the repository, or --card)")
    rows = build_rows()
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    recs = [{**r, "image": {"bytes": r["image"], "path": None}} for r in rows]
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".build-") as tmp:
            tmp_parquet = Path(tmp) / PARQUET_NAME
            ds = Dataset.from_list(recs, features=features())
            num_bytes = ds.data.nbytes
            ds.to_parquet(str(tmp_parquet))
            os.chmod(tmp_parquet, 0o644)
            os.replace(tmp_parquet, data_dir / PARQUET_NAME)
    finally:
        if not bars_were_off:
            enable_progress_bars()
    for stale in data_dir.glob("*.parquet"):  # an older build's shards would be loaded too
        if stale.name != PARQUET_NAME:
            stale.unlink()
    download_size = (data_dir / PARQUET_NAME).stat().st_size
    _atomic_write(out_dir / "README.md", card_text(card, len(rows), num_bytes, download_size).encode("utf-8"))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spuriverse.data.mini",
        description="Build spuriverse-mini (README.md card + data/test-00000.parquet) from scikit-image's "
                    "bundled public-domain photos with deterministic, offline edits.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--card", type=Path, default=CARD_SOURCE, help=f"the data card to ship (default: {CARD_SOURCE})")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = build_mini(args.out, args.card)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"built {out} ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
