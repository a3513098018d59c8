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

The package, by idea: `drawing` (font, label plates, supersampled drawing), `photos` (the skimage
source photos), `objects` and `backgrounds` (the procedural cues), `groups` (the groups, questions
and cues: data), `images` (assembling each group's variants) and `build` (rows, parquet, card, CLI).
"""

from __future__ import annotations

from .build import (
    CARD_SOURCE, DEFAULT_OUT, IMAGE_ENV_KEYS, NAME, PACKAGE_DIR, PARQUET_NAME, build_environment, build_mini, build_rows,
    card_text, features, front_matter, main, recorded_environment,
)
from .groups import CONTROLS, GROUPS, Control, Cue, Group
from .images import JPEG_QUALITY, SHRINK, group_images, jpeg_bytes
from .photos import LONG_SIDE, photo

__all__ = [
    "CARD_SOURCE", "CONTROLS", "DEFAULT_OUT", "GROUPS", "IMAGE_ENV_KEYS", "JPEG_QUALITY", "LONG_SIDE", "NAME",
    "PACKAGE_DIR", "PARQUET_NAME", "SHRINK", "Control", "Cue", "Group", "build_environment", "build_mini", "build_rows",
    "card_text", "features", "front_matter", "group_images", "jpeg_bytes", "main", "photo", "recorded_environment",
]
