"""**spuriverse-world**: a procedural planted-cue VQA world with ground truth.

Small (32x32) multiple-choice images whose answer depends on a known set of pixels (the *core*: one
object, asked about its shape, colour or quadrant) while a *cue* (background colour, border colour or a
small context icon) is planted to co-occur with one answer class. Every image ships its `core_mask` and
`cue_mask`. 3 families x 3 cue kinds x 4 cue values = 36 correlations.

    python -m spuriverse.data.world --out DIR [--p-align 0.95] [--seed 0] [--n-train N]

writes DIR/train (configs `biased`, `balanced`; splits `train`, `validation`; multiple-choice and
naming rows) and DIR/benchmark (the native long layout: anchor / spurious / counter / control).
Deterministic: the same arguments and library versions give byte-identical files.

The package, by idea: `design` (geometry, families, cues, correlations: data), `render` (one scene from
independent seeded parts), `rows` (the rows of every split), `build` (folders, cards, CLI) and `models`
(where the two trained world models ship: `model_path("balanced" | "shortcut")`). The data card is
`data_cards/spuriverse-world.md`.
"""

from __future__ import annotations

from .build import CARD_SOURCE, build_benchmark, build_world, features, main
from .design import (
    CORRELATIONS, CUE_KIND_NAMES, CUE_KINDS, FAMILIES, FAMILY_BY_NAME, N_CLASSES, SIZE, Correlation, Cue, Family,
    cue_for_class, suggested_class,
)
from .models import WORLD_MODELS, WorldModelMissing, model_path
from .render import Scene, render
from .rows import CHANCE, EXTRA_COLUMNS, MASK_COLUMNS, NAME, N_COUNTER, N_SPURIOUS, benchmark_rows, png, training_rows

__all__ = [
    "CARD_SOURCE", "CHANCE", "CORRELATIONS", "CUE_KINDS", "CUE_KIND_NAMES", "EXTRA_COLUMNS", "FAMILIES",
    "FAMILY_BY_NAME", "MASK_COLUMNS", "NAME", "N_CLASSES", "N_COUNTER", "N_SPURIOUS", "SIZE", "WORLD_MODELS",
    "Correlation", "Cue", "Family", "Scene", "WorldModelMissing", "benchmark_rows", "build_benchmark", "build_world",
    "cue_for_class", "features", "main", "model_path", "png", "render", "suggested_class", "training_rows",
]
