"""Backgrounds for spuriverse-mini: full canvases (size, rng) -> RGB image that the shrunk photo is
placed on."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from .drawing import RGB


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
