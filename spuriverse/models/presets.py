"""Named generation presets (`presets.toml`): e.g. the SpuriVerse paper's per-family settings.

A preset turns into backend options (temperature, top_p, min_p, sample_seed, reasoning_effort),
a default generation length and a scoring mode; the runner applies it and records its name.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_SETTINGS = ("temperature", "top_p", "min_p", "reasoning_effort")


class PresetError(ValueError):
    """A preset that does not exist, or does not cover the model."""


@dataclass(frozen=True)
class GenerationPreset:
    """What one preset means for one model."""

    name: str
    family: str
    scoring: str
    max_new_tokens: int | None
    backend_options: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()


@cache
def presets() -> dict[str, dict[str, Any]]:
    """The raw preset tables of `presets.toml`, by preset name."""
    text = resources.files("spuriverse.models").joinpath("presets.toml").read_text("utf-8")
    return tomllib.loads(text)


def preset_families(name: str) -> dict[str, list[str]]:
    """Family -> the aliases a preset covers."""
    return {fam: list(t["models"]) for fam, t in _preset(name)["families"].items()}


def _preset(name: str) -> dict[str, Any]:
    table = presets()
    if name not in table:
        raise PresetError(f"unknown generation preset {name!r} (known: {', '.join(table)})")
    return table[name]


def generation_preset(name: str, alias: str, seed: int) -> GenerationPreset:
    """The preset `name` for model `alias` (a registry alias), with the run's `seed` where the
    family sends one; a clear error when the preset has no settings for the model."""
    table = _preset(name)
    for family, entry in table["families"].items():
        if alias not in entry["models"]:
            continue
        opts = {k: entry[k] for k in _SETTINGS if k in entry}
        if entry.get("seed"):
            opts["sample_seed"] = seed
        return GenerationPreset(name, family, table.get("scoring", "generate"), entry.get("max_new_tokens"),
                                opts, tuple(table.get("seeds", ())))
    covered = sorted(a for e in table["families"].values() for a in e["models"])
    raise PresetError(f"preset {name!r} has no settings for model {alias!r} (it covers: {', '.join(covered)})")
