"""The world's vocabulary (pure data): image geometry, question families and their classes, cue kinds
and their values, and the correlations (family, cue kind, cue value) -> the class the cue suggests.

Layout of every 32x32 image (rows x cols, 0-based, inclusive):

    ring    the outer 2-pixel frame                    (border cue lives here)
    band    rows 2..7, cols 2..29                      (the context-object cue lives here)
    core    rows 8..29, cols 2..29 (22 x 28)           (the object the question is about)
    background: every pixel not covered by the object or the context icon (background cue)

The core object never enters the ring or the band, so cue and core pixels never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

SIZE = 32          # images are SIZE x SIZE RGB
RING = 2           # border width
BAND = (2, 8)      # context band rows [start, stop)
CORE_ROWS = (8, 30)  # core region rows [start, stop)
CORE_COLS = (2, 30)  # core region cols [start, stop)
ICON = 5           # context icon side

Colour = tuple[int, int, int]

NEUTRAL_BACKGROUND: Colour = (100, 100, 100)
NOISE = 10         # background noise amplitude (uniform integers in [-NOISE, NOISE], shared by channels)
JITTER = 12        # object colour jitter per channel

SHAPES = ("circle", "square", "triangle", "cross")
OBJECT_COLOURS: dict[str, Colour] = {
    "red": (210, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30),
}
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class Family:
    """A question family: its question, its 4 class words and the object's size range (side in px)."""

    name: str
    question: str
    classes: tuple[str, ...]
    core_attribute: str
    size_range: tuple[int, int]  # inclusive


FAMILIES: tuple[Family, ...] = (
    Family("shape", "What shape is the object?", SHAPES, "the object's shape", (16, 22)),
    Family("colour", "What colour is the object?", tuple(OBJECT_COLOURS), "the object's colour", (10, 16)),
    Family("position", "Where is the object?", POSITIONS, "the object's quadrant", (8, 10)),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
N_CLASSES = 4


@dataclass(frozen=True)
class CueValue:
    """One value of a cue kind: its name and colour (and, for context icons, a 5x5 pattern)."""

    name: str
    colour: Colour
    pattern: tuple[str, ...] = ()


CUE_KINDS: dict[str, tuple[CueValue, ...]] = {
    # the whole background (ring included) is repainted in the cue's colour
    "background": (
        CueValue("purple", (120, 60, 150)), CueValue("teal", (0, 120, 120)),
        CueValue("brown", (130, 90, 50)), CueValue("pink", (240, 170, 200)),
    ),
    # a 2-pixel frame
    "border": (
        CueValue("orange", (255, 140, 0)), CueValue("cyan", (0, 230, 230)),
        CueValue("magenta", (230, 0, 200)), CueValue("white", (250, 250, 250)),
    ),
    # a small icon in the top band
    "context": (
        CueValue("plus", (255, 255, 255), ("..#..", "..#..", "#####", "..#..", "..#..")),
        CueValue("ring", (0, 0, 0), (".###.", "#...#", "#...#", "#...#", ".###.")),
        CueValue("bar", (160, 255, 160), ("#####", "#####", ".....", ".....", ".....")),
        CueValue("diamond", (150, 200, 255), ("..#..", ".###.", "#####", ".###.", "..#..")),
    ),
}
CUE_KIND_NAMES = tuple(CUE_KINDS)


@dataclass(frozen=True)
class Cue:
    """A cue present in an image: its kind and value index."""

    kind: str
    value: int

    @property
    def spec(self) -> CueValue:
        return CUE_KINDS[self.kind][self.value]


def suggested_class(family: str, kind: str, value: int) -> int:
    """The class index a cue suggests in a family: a fixed rotation per (family, kind), so the same cue
    value points at different class indices across families and kinds."""
    fi = [f.name for f in FAMILIES].index(family)
    ki = CUE_KIND_NAMES.index(kind)
    return (value + fi + 2 * ki) % N_CLASSES


def cue_for_class(family: str, kind: str, cls: int) -> int:
    """The value of cue kind `kind` that suggests class `cls` in `family` (inverse of suggested_class)."""
    return next(v for v in range(N_CLASSES) if suggested_class(family, kind, v) == cls)


@dataclass(frozen=True)
class Correlation:
    """One planted correlation = one benchmark group: in `family`, cue (kind, value) suggests `cls`."""

    family: str
    kind: str
    value: int

    @property
    def cls(self) -> int:
        return suggested_class(self.family, self.kind, self.value)

    @property
    def cue(self) -> Cue:
        return Cue(self.kind, self.value)

    @property
    def cid(self) -> str:
        """The correlation id (also the benchmark's group_id): `family/kind/value-name`."""
        return f"{self.family}/{self.kind}/{CUE_KINDS[self.kind][self.value].name}"

    def describe(self) -> str:
        fam = FAMILY_BY_NAME[self.family]
        return f"{CUE_KINDS[self.kind][self.value].name} {self.kind} suggests {fam.classes[self.cls]}"


CORRELATIONS: tuple[Correlation, ...] = tuple(
    Correlation(f.name, k, v) for f in FAMILIES for k in CUE_KIND_NAMES for v in range(N_CLASSES)
)
