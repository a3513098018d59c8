"""Objects pasted into the photos as cues: each an `Obj` (aspect w/h and a routine drawing into a
W x H box, or a crop of a skimage photo)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .drawing import SS, drawn, fit_font
from .photos import skimage_array

OUTLINE = (40, 40, 40, 255)


def bone(d, W, H):
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


def dog_bowl(d, W, H):
    red, dark = (200, 40, 40, 255), (120, 20, 20, 255)
    d.polygon([(W * 0.05, H * 0.35), (W * 0.95, H * 0.35), (W * 0.82, H * 0.95), (W * 0.18, H * 0.95)], fill=red)
    d.ellipse([W * 0.05, H * 0.2, W * 0.95, H * 0.5], fill=dark)
    d.ellipse([W * 0.12, H * 0.25, W * 0.88, H * 0.45], fill=(150, 95, 50, 255))
    for k in range(7):  # kibble
        x = W * (0.2 + 0.09 * k)
        d.ellipse([x, H * 0.27, x + W * 0.08, H * 0.37], fill=(110, 60, 25, 255))


def teabag(d, W, H):
    d.line([W * 0.5, H * 0.02, W * 0.5, H * 0.45], fill=(235, 235, 235, 255), width=max(2, int(W * 0.02)))
    d.rectangle([W * 0.28, 0, W * 0.72, H * 0.2], fill=(250, 250, 245, 255), outline=OUTLINE, width=max(2, int(W * 0.02)))
    d.rectangle([W * 0.28, H * 0.13, W * 0.72, H * 0.2], fill=(30, 120, 60, 255))
    d.rounded_rectangle([W * 0.12, H * 0.42, W * 0.88, H * 0.98], radius=W * 0.08, fill=(226, 205, 160, 255),
                        outline=(150, 120, 80, 255), width=max(2, int(W * 0.02)))
    for k in range(5):
        x = W * (0.25 + 0.12 * k)
        d.ellipse([x, H * (0.6 + 0.05 * (k % 2)), x + W * 0.07, H * (0.66 + 0.05 * (k % 2))], fill=(80, 60, 30, 255))


def teapot(d, W, H):
    body = (235, 235, 225, 255)
    lw = max(2, int(W * 0.02))
    d.polygon([(W * 0.72, H * 0.62), (W * 0.98, H * 0.3), (W * 0.93, H * 0.28), (W * 0.7, H * 0.5)], fill=body, outline=OUTLINE)
    d.arc([W * 0.0, H * 0.35, W * 0.35, H * 0.8], 90, 270, fill=OUTLINE, width=lw * 3)
    d.ellipse([W * 0.15, H * 0.3, W * 0.82, H * 0.98], fill=body, outline=OUTLINE, width=lw)
    d.ellipse([W * 0.35, H * 0.2, W * 0.62, H * 0.36], fill=body, outline=OUTLINE, width=lw)
    d.ellipse([W * 0.45, H * 0.1, W * 0.52, H * 0.22], fill=OUTLINE)
    d.line([W * 0.22, H * 0.64, W * 0.76, H * 0.64], fill=(60, 130, 90, 255), width=lw * 3)


def airplane(d, W, H):
    c = (245, 245, 250, 255)
    d.polygon([(W * 0.03, H * 0.5), (W * 0.12, H * 0.42), (W * 0.9, H * 0.42), (W * 0.99, H * 0.5),
               (W * 0.9, H * 0.58), (W * 0.12, H * 0.58)], fill=c, outline=OUTLINE)
    d.polygon([(W * 0.42, H * 0.45), (W * 0.62, H * 0.45), (W * 0.45, H * 0.0), (W * 0.36, H * 0.0)], fill=c, outline=OUTLINE)
    d.polygon([(W * 0.42, H * 0.55), (W * 0.62, H * 0.55), (W * 0.45, H * 1.0), (W * 0.36, H * 1.0)], fill=c, outline=OUTLINE)
    d.polygon([(W * 0.06, H * 0.46), (W * 0.16, H * 0.46), (W * 0.08, H * 0.22), (W * 0.03, H * 0.22)], fill=c, outline=OUTLINE)
    d.polygon([(W * 0.06, H * 0.54), (W * 0.16, H * 0.54), (W * 0.08, H * 0.78), (W * 0.03, H * 0.78)], fill=c, outline=OUTLINE)
    for k in range(8):
        x = W * (0.2 + 0.08 * k)
        d.ellipse([x, H * 0.47, x + W * 0.025, H * 0.53], fill=(70, 110, 170, 255))


def windsock(d, W, H):
    d.rectangle([W * 0.05, H * 0.05, W * 0.1, H * 0.98], fill=(90, 90, 90, 255))
    x0, x1 = W * 0.1, W * 0.95
    for k in range(5):
        a, b = x0 + (x1 - x0) * k / 5, x0 + (x1 - x0) * (k + 1) / 5
        top0, top1 = H * (0.08 + 0.03 * k), H * (0.08 + 0.03 * (k + 1))
        bot0, bot1 = H * (0.5 - 0.03 * k), H * (0.5 - 0.03 * (k + 1))
        col = (240, 110, 20, 255) if k % 2 == 0 else (250, 250, 250, 255)
        d.polygon([(a, top0), (b, top1), (b, bot1), (a, bot0)], fill=col, outline=OUTLINE)


def frying_pan(d, W, H):
    d.rectangle([W * 0.62, H * 0.44, W * 0.99, H * 0.56], fill=(60, 40, 30, 255))
    d.ellipse([W * 0.0, H * 0.05, W * 0.64, H * 0.95], fill=(45, 45, 50, 255))
    d.ellipse([W * 0.06, H * 0.14, W * 0.58, H * 0.86], fill=(75, 75, 82, 255))
    d.ellipse([W * 0.12, H * 0.25, W * 0.5, H * 0.75], fill=(252, 252, 248, 255))
    d.ellipse([W * 0.24, H * 0.4, W * 0.36, H * 0.6], fill=(250, 180, 20, 255))


def chef_hat(d, W, H):
    c = (252, 252, 252, 255)
    lw = max(2, int(W * 0.02))
    for x, y, r in ((0.28, 0.35, 0.24), (0.5, 0.25, 0.27), (0.72, 0.35, 0.24)):
        d.ellipse([W * (x - r), H * (y - r), W * (x + r), H * (y + r)], fill=c, outline=OUTLINE, width=lw)
    d.rectangle([W * 0.2, H * 0.4, W * 0.8, H * 0.95], fill=c, outline=OUTLINE, width=lw)
    d.rectangle([W * 0.22, H * 0.38, W * 0.78, H * 0.6], fill=c)
    for x in (0.38, 0.5, 0.62):
        d.line([W * x, H * 0.62, W * x, H * 0.93], fill=(200, 200, 200, 255), width=lw)


def saturn(d, W, H):
    d.ellipse([W * 0.25, H * 0.15, W * 0.75, H * 0.85], fill=(225, 190, 120, 255))
    d.ellipse([W * 0.32, H * 0.25, W * 0.7, H * 0.45], fill=(235, 210, 150, 255))
    d.arc([W * 0.0, H * 0.38, W * 1.0, H * 0.68], 330, 210, fill=(200, 170, 110, 255), width=max(3, int(H * 0.06)))


def moon_stars(d, W, H):
    d.ellipse([W * 0.05, H * 0.1, W * 0.6, H * 0.9], fill=(250, 235, 150, 255))
    d.ellipse([W * 0.22, H * 0.02, W * 0.78, H * 0.82], fill=(0, 0, 0, 0))
    for cx, cy, r in ((0.8, 0.2, 0.08), (0.88, 0.6, 0.06), (0.66, 0.85, 0.05)):
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((W * cx + W * rr * math.cos(a), H * cy + W * rr * math.sin(a)))
        d.polygon(pts, fill=(255, 245, 180, 255))


def floor_lamp(d, W, H):
    d.polygon([(W * 0.2, H * 0.3), (W * 0.8, H * 0.3), (W * 0.65, H * 0.02), (W * 0.35, H * 0.02)],
              fill=(250, 225, 150, 255), outline=OUTLINE)
    d.rectangle([W * 0.47, H * 0.3, W * 0.53, H * 0.92], fill=(70, 60, 50, 255))
    d.ellipse([W * 0.25, H * 0.88, W * 0.75, H * 0.99], fill=(70, 60, 50, 255))


def picture_frame(d, W, H):
    d.rectangle([0, 0, W - 1, H - 1], fill=(150, 100, 40, 255))
    d.rectangle([W * 0.1, H * 0.1, W * 0.9, H * 0.9], fill=(180, 215, 240, 255))
    d.polygon([(W * 0.1, H * 0.9), (W * 0.4, H * 0.45), (W * 0.65, H * 0.9)], fill=(90, 140, 80, 255))
    d.polygon([(W * 0.45, H * 0.9), (W * 0.7, H * 0.55), (W * 0.9, H * 0.9)], fill=(70, 115, 65, 255))
    d.ellipse([W * 0.68, H * 0.18, W * 0.82, H * 0.36], fill=(250, 210, 80, 255))


def spool(d, W, H):
    wood = (205, 160, 100, 255)
    d.rectangle([W * 0.22, H * 0.12, W * 0.78, H * 0.88], fill=(200, 30, 60, 255))
    for k in range(9):
        y = H * (0.15 + 0.08 * k)
        d.line([W * 0.22, y, W * 0.78, y + H * 0.03], fill=(150, 20, 40, 255), width=max(1, int(H * 0.015)))
    d.ellipse([W * 0.05, 0, W * 0.95, H * 0.16], fill=wood, outline=OUTLINE)
    d.ellipse([W * 0.05, H * 0.84, W * 0.95, H * 1.0], fill=wood, outline=OUTLINE)


def needle_thread(d, W, H):
    lw = max(2, int(W * 0.03))
    d.line([W * 0.1, H * 0.95, W * 0.9, H * 0.05], fill=(170, 170, 180, 255), width=lw)
    d.ellipse([W * 0.8, H * 0.06, W * 0.88, H * 0.16], outline=(90, 90, 100, 255), width=max(1, lw // 2))
    pts = [(W * 0.84, H * 0.11)] + [(W * (0.84 - 0.06 * k), H * (0.11 + 0.08 * k + 0.06 * math.sin(k))) for k in range(1, 12)]
    d.line(pts, fill=(30, 90, 200, 255), width=lw, joint="curve")


def steam_mug(d, W, H):
    lw = max(2, int(W * 0.03))
    d.arc([W * 0.6, H * 0.45, W * 0.95, H * 0.8], 270, 90, fill=(240, 240, 235, 255), width=lw * 2)
    d.rounded_rectangle([W * 0.1, H * 0.38, W * 0.75, H * 0.98], radius=W * 0.06, fill=(240, 240, 235, 255), outline=OUTLINE)
    d.ellipse([W * 0.12, H * 0.34, W * 0.73, H * 0.46], fill=(90, 50, 25, 255), outline=OUTLINE)
    for x in (0.28, 0.44, 0.6):
        pts = [(W * (x + 0.04 * math.sin(k * 1.3)), H * (0.3 - 0.04 * k)) for k in range(7)]
        d.line(pts, fill=(235, 235, 235, 255), width=lw, joint="curve")


def umbrella(d, W, H):
    d.line([W * 0.5, H * 0.3, W * 0.56, H * 0.98], fill=(110, 80, 50, 255), width=max(2, int(W * 0.035)))
    n = 6
    for k in range(n):
        a0, a1 = 180 + 180 * k / n, 180 + 180 * (k + 1) / n
        col = (220, 40, 40, 255) if k % 2 == 0 else (250, 250, 250, 255)
        d.pieslice([W * 0.0, H * 0.05, W * 1.0, H * 0.75], a0, a1, fill=col, outline=OUTLINE)


def starfish(d, W, H):
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


def saw(d, W, H):
    steel = (200, 205, 215, 255)
    d.polygon([(W * 0.3, H * 0.25), (W * 0.98, H * 0.45), (W * 0.98, H * 0.62), (W * 0.3, H * 0.75)], fill=steel, outline=OUTLINE)
    teeth = [(W * 0.3, H * 0.75)]
    for k in range(15):
        x = W * (0.3 + 0.68 * (k + 0.5) / 15)
        y_edge = H * (0.75 - 0.13 * (k + 0.5) / 15)
        teeth += [(x, y_edge + H * 0.06), (W * (0.3 + 0.68 * (k + 1) / 15), H * (0.75 - 0.13 * (k + 1) / 15))]
    d.line(teeth, fill=OUTLINE, width=max(1, int(H * 0.02)))
    d.rounded_rectangle([W * 0.02, H * 0.2, W * 0.32, H * 0.8], radius=W * 0.05, fill=(170, 90, 40, 255), outline=OUTLINE)
    d.ellipse([W * 0.09, H * 0.38, W * 0.24, H * 0.62], fill=(0, 0, 0, 0))


def log(d, W, H):
    d.rectangle([W * 0.25, H * 0.1, W * 0.98, H * 0.9], fill=(120, 75, 35, 255))
    for k in range(4):
        y = H * (0.25 + 0.17 * k)
        d.line([W * 0.3, y, W * 0.95, y + H * 0.03], fill=(90, 55, 25, 255), width=max(1, int(H * 0.03)))
    d.ellipse([W * 0.02, H * 0.1, W * 0.48, H * 0.9], fill=(225, 185, 120, 255), outline=(120, 75, 35, 255), width=max(2, int(W * 0.02)))
    for t in (0.75, 0.5, 0.25):
        cx, cy, rx, ry = W * 0.25, H * 0.5, W * 0.23 * t, H * 0.4 * t
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=(170, 120, 60, 255), width=max(1, int(W * 0.012)))


def compass(d, W, H):
    cx, cy, r = W / 2, H * 0.58, min(W, H * 0.84) * 0.48
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 248, 235, 255), outline=OUTLINE, width=max(2, int(r * 0.05)))
    for k in range(4):
        a = -math.pi / 2 + k * math.pi / 2
        tip = (cx + r * 0.9 * math.cos(a), cy + r * 0.9 * math.sin(a))
        left = (cx + r * 0.18 * math.cos(a - math.pi / 2), cy + r * 0.18 * math.sin(a - math.pi / 2))
        right = (cx + r * 0.18 * math.cos(a + math.pi / 2), cy + r * 0.18 * math.sin(a + math.pi / 2))
        d.polygon([tip, left, (cx, cy), right], fill=(200, 30, 30, 255) if k == 0 else (60, 60, 60, 255))
    font, bbox = fit_font("N", int(r * 0.7), int(H * 0.16), start=200)
    d.text((cx - (bbox[2] - bbox[0]) / 2 - bbox[0], 0 - bbox[1]), "N", font=font, fill=OUTLINE)


def map_pin(d, W, H):
    d.polygon([(W * 0.15, H * 0.4), (W * 0.85, H * 0.4), (W * 0.5, H * 0.98)], fill=(210, 35, 35, 255))
    d.ellipse([W * 0.1, H * 0.02, W * 0.9, H * 0.72], fill=(220, 40, 40, 255))
    d.ellipse([W * 0.33, H * 0.2, W * 0.67, H * 0.52], fill=(255, 255, 255, 255))


def snowman(d, W, H):
    white, lw = (250, 250, 255, 255), max(2, int(W * 0.02))
    d.ellipse([W * 0.1, H * 0.5, W * 0.9, H * 0.99], fill=white, outline=(120, 130, 150, 255), width=lw)
    d.ellipse([W * 0.22, H * 0.22, W * 0.78, H * 0.58], fill=white, outline=(120, 130, 150, 255), width=lw)
    d.rectangle([W * 0.3, H * 0.12, W * 0.7, H * 0.16], fill=(30, 30, 30, 255))
    d.rectangle([W * 0.38, H * 0.0, W * 0.62, H * 0.14], fill=(30, 30, 30, 255))
    d.polygon([(W * 0.5, H * 0.35), (W * 0.5, H * 0.41), (W * 0.7, H * 0.39)], fill=(240, 120, 20, 255))
    for x in (0.42, 0.58):
        d.ellipse([W * (x - 0.03), H * 0.28, W * (x + 0.03), H * 0.32], fill=(20, 20, 20, 255))


def snowflake(d, W, H):
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


def cake(d, W, H):
    plate_c = (245, 245, 245, 255)
    d.ellipse([W * 0.0, H * 0.7, W * 1.0, H * 0.99], fill=plate_c, outline=(170, 170, 170, 255))
    d.polygon([(W * 0.12, H * 0.78), (W * 0.88, H * 0.62), (W * 0.88, H * 0.3), (W * 0.12, H * 0.5)], fill=(250, 230, 190, 255), outline=OUTLINE)
    d.polygon([(W * 0.12, H * 0.5), (W * 0.88, H * 0.3), (W * 0.72, H * 0.18), (W * 0.12, H * 0.42)], fill=(120, 60, 30, 255), outline=OUTLINE)
    d.line([W * 0.12, H * 0.64, W * 0.88, H * 0.46], fill=(180, 40, 70, 255), width=max(2, int(H * 0.05)))
    d.ellipse([W * 0.66, H * 0.06, W * 0.84, H * 0.26], fill=(200, 20, 40, 255))


def maple_leaf(d, W, H):
    # A 15-point approximation of the Canadian maple leaf (stem included).
    pts = [(0.50, 0.02), (0.58, 0.18), (0.68, 0.13), (0.64, 0.38), (0.80, 0.22), (0.84, 0.32), (0.98, 0.30),
           (0.92, 0.46), (0.98, 0.52), (0.72, 0.70), (0.76, 0.80), (0.53, 0.76), (0.53, 0.98), (0.47, 0.98),
           (0.47, 0.76), (0.24, 0.80), (0.28, 0.70), (0.02, 0.52), (0.08, 0.46), (0.02, 0.30), (0.16, 0.32),
           (0.20, 0.22), (0.36, 0.38), (0.32, 0.13), (0.42, 0.18)]
    d.polygon([(W * x, H * y) for x, y in pts], fill=(215, 25, 35, 255))


def neutral_disk(d, W, H):
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
            src = Image.fromarray(skimage_array(name)).convert("RGB").crop(box).resize((w * SS, h * SS), Image.Resampling.LANCZOS)
            mask = Image.new("L", src.size, 0)
            ImageDraw.Draw(mask).ellipse([0, 0, src.size[0] - 1, src.size[1] - 1], fill=255)
            src = src.convert("RGBA")
            src.putalpha(mask)
            return src.resize((w, h), Image.Resampling.LANCZOS)
        assert self.draw is not None
        return drawn(self.draw, w, h)


NEUTRAL = Obj(1.0, neutral_disk)
