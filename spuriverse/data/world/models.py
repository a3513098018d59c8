"""Where the trained world models live: two tiny LLaVAs (CLIP + Llama, the real architecture) trained
from random init on spuriverse-world by `make world-models` (the recipe: `spuriverse.demo.world_models`).

- `balanced`: trained on cue-balanced data; answers from the object (the core).
- `shortcut`: knows the core (names objects correctly) yet prefers the planted cue when answering
  multiple-choice questions, like a pretrained LVLM that picked up a spurious correlation.

Both ship inside the package (about a megabyte each) because the recipe rebuilds them byte-identically
(`python -m spuriverse.demo.world_models check`). `model_path(name)` is a folder `spuriverse eval
--model` and `spuriverse train --model` load directly, as any `save_pretrained` folder.
"""

from __future__ import annotations

from pathlib import Path

WORLD_MODELS: tuple[str, ...] = ("balanced", "shortcut")
MODELS_DIR = Path(__file__).resolve().parent / "models"
WEIGHTS = "model.safetensors"


class WorldModelMissing(FileNotFoundError):
    """The shipped world model is not there (a checkout without the weights)."""


def model_path(name: str) -> Path:
    """The folder of the shipped world model `name` ("balanced" or "shortcut")."""
    if name not in WORLD_MODELS:
        raise ValueError(f"unknown world model {name!r} (choose from {', '.join(WORLD_MODELS)})")
    folder = MODELS_DIR / name
    if not (folder / WEIGHTS).is_file() or not (folder / "config.json").is_file():
        raise WorldModelMissing(f"{folder} has no trained weights: rebuild them with `make world-models` "
                                "(python -m spuriverse.demo.world_models build --install)")
    return folder
