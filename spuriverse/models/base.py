"""The model protocol: the one seam between the evaluator and every backend.

The evaluator never knows which backend it talks to; a backend never knows which benchmark calls
it. Two request types, like lm-eval's `loglikelihood` / `generate_until`:

- `score_options(requests)`: log-probabilities of each valid option letter at the answer position;
- `generate(requests)`: new text only.

Both yield `(position, response)` pairs as responses finish (not necessarily in order), so the
runner can write each sample the moment it exists. A response carries a result or an error, never
both, and never a fabricated letter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

# re-exported: images are part of the model interface
from spuriverse.data.images import ImageDecodeError, ImageInput  # noqa: F401
from spuriverse.schema import ErrorType, ModelInfo


@dataclass(frozen=True)
class Request:
    """One question to a model: rendered text, optional image, and the letters it may answer."""

    system: str | None
    prompt: str
    image: ImageInput | None
    letters: tuple[str, ...]
    max_new_tokens: int = 16
    # Opaque, stable id of the request (e.g. for seeding a baseline); never interpreted by models.
    key: str = ""


@dataclass
class ModelError:
    message: str
    type: ErrorType = "model"


@dataclass
class OptionScores:
    """Log-probabilities of each valid letter at the answer position (or an error)."""

    logprobs: dict[str, float] | None = None
    error: ModelError | None = None
    attempts: int = 1
    latency_s: float | None = None


@dataclass
class Generation:
    """Generated text, new tokens only (or an error)."""

    text: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    # Log-probs of the letters at the first generated position, when the backend returns them.
    logprobs: dict[str, float] | None = None
    error: ModelError | None = None
    attempts: int = 1
    latency_s: float | None = None


class ModelLoadError(RuntimeError):
    """A model's weights or processor could not be loaded (missing, offline, gated...)."""


class UnsupportedRequest(RuntimeError):
    """The backend cannot serve this request type at all (e.g. log-probs from an API without them)."""


@runtime_checkable
class LVLM(Protocol):
    """What the evaluator needs from a model. A backend subclasses it to inherit the defaults of its
    optional members (`generation`, `top_logprobs`, `prepare`)."""

    info: ModelInfo
    supports_logprobs: bool
    # Whether requests need decoded pixels (`ImageInput.pil()`); API backends send encoded bytes.
    needs_pixels: bool
    # How many requests the runner should hand over per call (batch size for local models,
    # a window larger than the concurrency for API models).
    chunk_size: int
    # The generation settings recorded with a run (GenerationInfo fields: do_sample, temperature, top_p,
    # ...); empty = the defaults (greedy).
    generation: Mapping[str, Any] = MappingProxyType({})
    # How many top log-probs per position an API backend asks for (None: none, or not an API).
    top_logprobs: int | None = None

    def prepare(self, answer_counts: Counter[tuple[int, str]]) -> None:
        """Optional: called once before the first request with the benchmark's answer counts per
        (option count, answer letter) (the `frequent` baseline answers from them). Default: nothing."""
        return None

    def score_options(self, requests: Sequence[Request]) -> Iterator[tuple[int, OptionScores]]: ...

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Generation]]: ...

    def close(self) -> None: ...
