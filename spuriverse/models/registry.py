"""Resolve `--model` to a backend: registry aliases, `openai:<name>`, hub ids and local folders."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from spuriverse.plugins import call_supported, load

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Backend name -> "module:class". Imported lazily so an API run never imports transformers.
BACKENDS: dict[str, str] = {
    "hf": "spuriverse.models.hf:HFBackend",
    "openai": "spuriverse.models.openai_api:OpenAIBackend",
    "baseline": "spuriverse.models.baselines:make_baseline",
}

# What `--scoring auto` picks for the direct strategy: option log-probs where the backend computes
# them exactly; API endpoints may not return log-probs, so they generate (log-probs are still
# recorded when returned).
AUTO_SCORING: dict[str, str] = {"hf": "logprob", "openai": "generate", "baseline": "generate"}


class ModelSpecError(ValueError):
    """`--model` names nothing we can run."""


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: which backend, which checkpoint, and the backend's keyword defaults."""

    alias: str
    backend: str
    checkpoint: str
    revision: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


@cache
def registry() -> dict[str, ModelSpec]:
    text = resources.files("spuriverse.models").joinpath("registry.toml").read_text("utf-8")
    out = {}
    for alias, entry in tomllib.loads(text).items():
        entry = dict(entry)
        backend, checkpoint = entry.pop("backend"), entry.pop("checkpoint")
        if backend not in BACKENDS:
            raise ModelSpecError(f"registry entry {alias!r}: unknown backend {backend!r}")
        revision, notes = entry.pop("revision", None), entry.pop("notes", "")
        out[alias] = ModelSpec(alias, backend, checkpoint, revision, entry, notes)
    return out


def resolve_model(spec: str, revision: str | None = None) -> ModelSpec:
    """`spec` is an alias, `openai:<name>`, a local folder, or a hub id (`owner/name`)."""
    reg = registry()
    if spec in reg:
        found = reg[spec]
        return replace(found, revision=revision or found.revision)
    if spec.startswith("openai:"):
        name = spec.split(":", 1)[1]
        if not name:
            raise ModelSpecError("openai:<name> needs a model name, e.g. openai:gpt-4o-mini")
        return ModelSpec(spec, "openai", name)
    if Path(spec).expanduser().is_dir():
        return ModelSpec(spec, "hf", str(Path(spec).expanduser()), revision)
    if "/" in spec and not spec.startswith((".", "/", "~")):
        return ModelSpec(spec, "hf", spec, revision)
    raise ModelSpecError(
        f"unknown model {spec!r}: not an alias ({', '.join(sorted(reg))}), not openai:<name>, "
        "not a local folder and not a hub id owner/name"
    )


def build_model(spec: ModelSpec, **overrides: Any) -> Any:
    """Instantiate the backend for `spec`; `overrides` (command-line options; None = not given) win
    over the registry defaults. Options a backend does not take are dropped with a warning."""
    options = {**spec.options, "revision": spec.revision}
    options.update({k: v for k, v in overrides.items() if v is not None})
    return call_supported(load(BACKENDS[spec.backend]), spec.checkpoint, label=spec.backend, quiet={"seed"},
                          alias=spec.alias, **options)
