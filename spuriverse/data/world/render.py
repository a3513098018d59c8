"""Rendering one scene: background, then the cue, then the core object, from independent parts.

`render(family, cls, cue, scene_seed)` is a pure function. Everything that is neither the class nor the
cue (noise, object size and position inside its region, the nuisance attributes, the icon's place) is
drawn from `scene_seed` alone, in a fixed order, so that with the scene fixed:

- changing the class changes only pixels inside the union of the two core masks;
- changing the cue changes only pixels inside the union of the two cue masks.

Cue and core never overlap (the object stays in the core region, see `design`), so each mask is exactly
the set of pixels its part paints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .design import (
    BAND, CORE_COLS, CORE_ROWS, FAMILY_BY_NAME, ICON, JITTER, NEUTRAL_BACKGROUND, NOISE, OBJECT_COLOURS, RING,
    SHAPES, SIZE, Cue,
)


@dataclass(frozen=True)
class Scene:
    """A rendered scene: RGB image (H, W, 3) uint8 and two boolean masks (H, W)."""

    image: np.ndarray
    core_mask: np.ndarray
    cue_mask: np.ndarray


@cache
def shape_mask(shape: str, d: int) -> np.ndarray:
    """A boolean d x d mask of `shape` (read-only: cached)."""
    y, x = np.mgrid[0:d, 0:d].astype(np.float64)
    c = (d - 1) / 2
    if shape == "circle":
        m = (y - c) ** 2 + (x - c) ** 2 <= (d / 2) ** 2 - 0.25
    elif shape == "square":
        m = (y >= 1) & (y <= d - 2) & (x >= 1) & (x <= d - 2)
    elif shape == "triangle":  # apex up, base on the last row
        m = np.abs(x - c) <= (y + 1) / 2
    elif shape == "cross":
        t = max(2, round(d / 3)) / 2
        m = (np.abs(x - c) < t) | (np.abs(y - c) < t)
    else:  # pragma: no cover - design lists the shapes
        raise ValueError(f"unknown shape {shape!r}")
    m.setflags(write=False)
    return m


@cache
def ring_mask() -> np.ndarray:
    m = np.ones((SIZE, SIZE), bool)
    m[RING:-RING, RING:-RING] = False
    m.setflags(write=False)
    return m


@cache
def icon_pattern(kind_value: tuple[str, int]) -> np.ndarray:
    spec = Cue(*kind_value).spec
    m = np.array([[ch == "#" for ch in row] for row in spec.pattern], bool)
    m.setflags(write=False)
    return m


def _span(lo: int, hi: int, d: int, u: float) -> int:
    """An offset in [lo, hi - d] from a uniform u in [0, 1)."""
    return lo + int(u * (hi - d - lo + 1))


def _object_box(family: str, cls: int, u: np.ndarray) -> tuple[int, int, int]:
    """(side, top, left) of the object from the scene's uniforms (and the class, for position)."""
    lo, hi = FAMILY_BY_NAME[family].size_range
    d = lo + int(u[0] * (hi - lo + 1))
    (r0, r1), (c0, c1) = CORE_ROWS, CORE_COLS
    if family == "position":  # the class picks the quadrant; the scene, the place inside it
        rm, cm = (r0 + r1) // 2, (c0 + c1) // 2
        r0, r1 = (r0, rm) if cls < 2 else (rm, r1)
        c0, c1 = (c0, cm) if cls % 2 == 0 else (cm, c1)
    return d, _span(r0, r1, d, u[1]), _span(c0, c1, d, u[2])


def render(family: str, cls: int, cue: Cue | None, scene_seed: int) -> Scene:
    """Render one image of `family` whose answer is class index `cls`, with `cue` (or none)."""
    rng = np.random.default_rng(scene_seed)
    noise = rng.integers(-NOISE, NOISE + 1, (SIZE, SIZE, 1))  # the scene's draws, always in this order
    u = rng.random(7)  # size, top, left, nuisance shape, nuisance colour, icon row, icon column
    jitter = rng.integers(-JITTER, JITTER + 1, 3)

    d, top, left = _object_box(family, cls, u)
    shape = SHAPES[cls] if family == "shape" else SHAPES[int(u[3] * len(SHAPES))]
    colours = list(OBJECT_COLOURS.values())
    colour = colours[cls] if family == "colour" else colours[int(u[4] * len(colours))]
    core = np.zeros((SIZE, SIZE), bool)
    core[top : top + d, left : left + d] = shape_mask(shape, d)

    base = cue.spec.colour if cue is not None and cue.kind == "background" else NEUTRAL_BACKGROUND
    img = np.asarray(base, np.int16) + noise
    cue_mask = np.zeros((SIZE, SIZE), bool)
    if cue is not None and cue.kind == "background":
        cue_mask = ~core
    elif cue is not None and cue.kind == "border":
        cue_mask = ring_mask().copy()
        img[cue_mask] = np.asarray(cue.spec.colour, np.int16) + noise[cue_mask]
    elif cue is not None and cue.kind == "context":
        pat = icon_pattern((cue.kind, cue.value))
        it = BAND[0] + int(u[5] * (BAND[1] - BAND[0] - ICON + 1))
        il = _span(CORE_COLS[0], CORE_COLS[1], ICON, u[6])
        cue_mask[it : it + ICON, il : il + ICON] = pat
        img[cue_mask] = cue.spec.colour
    img[core] = np.asarray(colour, np.int16) + jitter
    return Scene(np.clip(img, 0, 255).astype(np.uint8), core, cue_mask)
