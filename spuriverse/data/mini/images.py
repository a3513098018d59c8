"""Assembling the images of a group: the anchor photo and its spurious / counterfactual edits."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image

from .backgrounds import bg_neutral
from .drawing import Box, paste, plate, plate_size
from .groups import Group
from .objects import NEUTRAL
from .photos import photo

JPEG_QUALITY = 85
SHRINK = 0.72            # the photo's scale on a background (spurious_3/4, counter_2)


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
    assert best is not None, "no box to place the plate in"
    w, h, box, bw, bh = best
    x = fx + box[0] * fw + rng.uniform(0, max(0.0, bw - w))
    y = fy + box[1] * fh + rng.uniform(0, max(0.0, bh - h))
    return int(round(x)), int(round(y)), int(round(w)), int(round(h))


def _on_background(base: Image.Image, background: Callable[..., Image.Image], corner: int, seed: random.Random,
                   ) -> tuple[Image.Image, tuple[int, int, int, int], tuple[int, int, int, int]]:
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
    canvas.alpha_composite(base.resize((sw, sh), Image.Resampling.LANCZOS).convert("RGBA"), (x, y))
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
