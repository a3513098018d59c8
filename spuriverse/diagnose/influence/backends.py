"""The influence-backend registry: one entry per method, from which `spuriverse diagnose influence
--method` derives its choices. Entries name their backend class as a "module:attr" string
(`spuriverse.plugins.load`), so listing the methods imports neither torch nor a backend library.

A backend fits once on a problem (`fit`: factors, caches) and then scores: `pairwise` (queries x
training examples) and `self_influence` (every training example on itself), always in the sign
convention of `problem.SIGN_CONVENTION`. No backend inverts a Hessian itself: kronfluence (K-FAC /
EK-FAC) and dattri (explicit, CG, Arnoldi, DataInf, TracIn) do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spuriverse.plugins import load

if TYPE_CHECKING:
    import numpy as np

    from spuriverse.diagnose.influence.problem import InfluenceProblem


class InfluenceBackendError(ValueError):
    """A method cannot run on this problem (the message says why and what to use instead)."""


@dataclass
class BackendSettings:
    """Knobs shared by the backends. `damping`: added to the curvature (None: the library's own
    default, kronfluence 0.1 x mean eigenvalue; dattri explicit/CG/Arnoldi 0, DataInf 0.1).
    `batch_size`: training examples per forward; `query_batch_size`: queries per forward."""

    damping: float | None = None
    batch_size: int = 8
    query_batch_size: int = 8
    seed: int = 0
    progress: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class InfluenceBackend(ABC):
    """Fit once, then score. `workdir`: where a backend may cache what it fitted (kronfluence's
    factors); None keeps everything in memory."""

    def __init__(self, settings: BackendSettings, method: str) -> None:
        self.settings, self.method = settings, method

    @abstractmethod
    def fit(self, problem: InfluenceProblem, workdir: Path | None = None) -> None:
        """Everything that depends on the training set only (curvature factors, cached gradients)."""

    @abstractmethod
    def pairwise(self, problem: InfluenceProblem, queries: Sequence[int]) -> np.ndarray:
        """[len(queries), n_train] scores, our sign convention (positive: toward the measured answer)."""

    @abstractmethod
    def self_influence(self, problem: InfluenceProblem) -> np.ndarray:
        """[n_train] grad loss . H^-1 . grad loss (>= 0; large: atypical or mislabelled)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends leave the model as it was
        """Give the model back as it was (unwrap hooks); the default does nothing."""


@dataclass(frozen=True)
class InfluenceMethod:
    """One registry entry. `backend`: "module:attr" of an `InfluenceBackend` subclass, built as
    ``cls(settings, name)``. `lvlm`: runs on a fine-tuned vision-language model (no `vmap` through
    the model, no memory quadratic in the number of parameters)."""

    name: str
    library: str
    summary: str
    lvlm: bool
    backend: str

    def build(self, settings: BackendSettings | None = None) -> InfluenceBackend:
        return load(self.backend)(settings or BackendSettings(), self.name)


_KRON = "spuriverse.diagnose.influence.kronfluence_backend:KronfluenceBackend"
_DATTRI = "spuriverse.diagnose.influence.dattri_backend:DattriBackend"
METHODS: dict[str, InfluenceMethod] = {m.name: m for m in (
    InfluenceMethod("ekfac", "kronfluence", "EK-FAC: Kronecker factors with eigenvalue correction (the default)",
                    True, _KRON),
    InfluenceMethod("kfac", "kronfluence", "K-FAC: Kronecker-factored curvature", True, _KRON),
    InfluenceMethod("datainf", "dattri", "DataInf: closed-form layer-wise inverse, designed for LoRA", True, _DATTRI),
    InfluenceMethod("tracin", "dattri", "TracIn: gradient dot products at the final weights, no curvature",
                    True, _DATTRI),
    InfluenceMethod("explicit", "dattri", "explicit inverse Hessian; small models only (parameters^2 memory)",
                    False, _DATTRI),
    InfluenceMethod("cg", "dattri", "conjugate-gradient inverse-Hessian-vector products; small models", False, _DATTRI),
    InfluenceMethod("arnoldi", "dattri", "Arnoldi low-rank inverse Hessian; small models", False, _DATTRI),
)}


def register(method: InfluenceMethod) -> None:
    """Add a method (a plugin's): one entry, and the CLI offers it."""
    if method.name in METHODS:
        raise ValueError(f"influence method {method.name!r} is already registered")
    METHODS[method.name] = method


def method_names(*, lvlm: bool | None = None) -> list[str]:
    """Registered method names (only those that run on an LVLM with `lvlm=True`)."""
    return [n for n, m in METHODS.items() if lvlm is None or m.lvlm == lvlm]


def get_method(name: str) -> InfluenceMethod:
    if name not in METHODS:
        raise InfluenceBackendError(f"unknown influence method {name!r} (choose from {', '.join(METHODS)})")
    return METHODS[name]


def build_backend(name: str, settings: BackendSettings | None = None) -> InfluenceBackend:
    """A fresh backend for the method `name`."""
    return get_method(name).build(settings)
