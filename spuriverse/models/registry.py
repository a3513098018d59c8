"""Resolve `--model` to a backend: registry aliases, `<provider>:<name>`, hub ids and local folders."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from spuriverse.models.base import LVLM
from spuriverse.models.providers import providers
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


# Architectures (config model_type) whose tiny random-weight build passes the batch-invariance,
# letter-tokenization and generation tests here (tests/models/test_hf.py, test_new_archs.py; a test
# keeps this set equal to what they build).
TESTED_ON_TINY: frozenset[str] = frozenset({
    "llava", "llava_next", "paligemma", "idefics3", "qwen2_5_vl", "qwen3_vl", "mllama", "gemma3",
    "llava_onevision",
})


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
    architecture: str | None = None  # config model_type of a local model (for `spuriverse models`)
    also: tuple[str, ...] = ()  # other names that resolve to this entry (e.g. the paper's spelling)

    @property
    def provider(self) -> str | None:
        """The provider profile of an API model (None for local models and baselines)."""
        return self.options.get("provider", "openai") if self.backend == "openai" else None


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
        arch, also = entry.pop("architecture", None), tuple(entry.pop("also", ()))
        if entry.get("provider", "openai") not in providers():
            raise ModelSpecError(f"registry entry {alias!r}: unknown provider {entry['provider']!r}")
        out[alias] = ModelSpec(alias, backend, checkpoint, revision, entry, notes, arch, also)
    return out


def other_names() -> dict[str, str]:
    """Alternative name -> registry alias (the `also` lists)."""
    return {name: alias for alias, spec in registry().items() for name in spec.also}


def resolve_model(spec: str, revision: str | None = None) -> ModelSpec:
    """`spec` is an alias, `<provider>:<name>` (openai:, gemini:, anthropic:, dashscope: ...), a local
    folder, or a hub id (`owner/name`)."""
    reg = registry()
    spec = other_names().get(spec, spec)
    if spec in reg:
        found = reg[spec]
        return replace(found, revision=revision or found.revision)
    prefix, sep, name = spec.partition(":")
    if sep and prefix in providers():
        if not name:
            raise ModelSpecError(f"{prefix}:<name> needs a model name, e.g. openai:gpt-4o-mini")
        return ModelSpec(spec, "openai", name, options={"provider": prefix})
    if Path(spec).expanduser().is_dir():
        return ModelSpec(spec, "hf", str(Path(spec).expanduser()), revision)
    if "/" in spec and not spec.startswith((".", "/", "~")):
        return ModelSpec(spec, "hf", spec, revision)
    raise ModelSpecError(
        f"unknown model {spec!r}: not an alias ({', '.join(sorted(reg))}), not <provider>:<name> "
        f"({', '.join(providers())}), "
        "not a local folder and not a hub id owner/name"
    )


def build_model(spec: ModelSpec, **overrides: Any) -> LVLM:
    """Instantiate the backend for `spec`; `overrides` (command-line options; None = not given) win
    over the registry defaults. Options a backend does not take are dropped with a warning."""
    options = {**spec.options, "revision": spec.revision}
    options.update({k: v for k, v in overrides.items() if v is not None})
    model = call_supported(load(BACKENDS[spec.backend]), spec.checkpoint, label=spec.backend, quiet={"seed"},
                           alias=spec.alias, **options)
    if not isinstance(model, LVLM):
        raise TypeError(f"backend {spec.backend!r} built {type(model).__name__}, which is not a model (LVLM)")
    return model


def scoring_modes(spec: ModelSpec) -> tuple[str, ...]:
    """The scoring modes a model can serve: option log-probs and/or generation."""
    if spec.backend == "hf":
        return ("logprob", "generate")
    if spec.backend == "openai" and providers()[spec.provider or "openai"].logprobs:
        return ("logprob", "generate")
    return ("generate",)


def tested_here(spec: ModelSpec) -> str:
    """How this entry is exercised by the offline tests: a tiny random-weight build of its
    architecture, its provider profile against the loopback fake endpoint, or run as is."""
    if spec.backend == "hf":
        return "tiny model" if spec.architecture in TESTED_ON_TINY else "no"
    if spec.backend == "openai":
        return "fake endpoint"  # tests/models/test_providers.py covers every profile
    return "yes"
