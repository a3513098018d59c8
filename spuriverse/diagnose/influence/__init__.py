"""Influence functions for fine-tuned vision-language models: which training examples taught the
model its answers (`spuriverse diagnose influence`). Backends: kronfluence (EK-FAC, K-FAC) and dattri
(explicit, CG, Arnoldi, DataInf, TracIn), in one registry (`backends.METHODS`) and one sign convention
(`problem.SIGN_CONVENTION`). Names are imported on first use (the CLI lists methods without torch)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackendSettings": "backends", "InfluenceBackend": "backends", "InfluenceBackendError": "backends",
    "InfluenceMethod": "backends", "METHODS": "backends", "build_backend": "backends", "get_method": "backends",
    "method_names": "backends", "register": "backends",
    "SIGN_CONVENTION": "problem", "InfluenceProblem": "problem", "TensorProblem": "problem",
    "InfluenceConfigMismatch": "runner", "InfluenceOptions": "runner", "run_influence": "runner",
    "InfluenceInputError": "trainrun",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
