"""Reference baselines: `random` (seeded per request) and `frequent` (the benchmark's most common
answer letter). They answer through `generate` with a bare letter, like a perfectly obedient model.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from spuriverse.models.base import LVLM, Generation, OptionScores, Request, UnsupportedRequest
from spuriverse.schema import ModelInfo


class _Baseline(LVLM):
    supports_logprobs = False
    needs_pixels = False
    chunk_size = 1024

    def __init__(self, kind: str, alias: str | None = None) -> None:
        self.info = ModelInfo(alias=alias or kind, backend="baseline", checkpoint=kind)

    def _letter(self, request: Request) -> str:
        raise NotImplementedError

    def score_options(self, requests: Sequence[Request]) -> Iterator[tuple[int, OptionScores]]:
        raise UnsupportedRequest(f"the {self.info.checkpoint} baseline answers by generation only")

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Generation]]:
        for i, r in enumerate(requests):
            yield i, Generation(text=self._letter(r), finish_reason="stop")

    def close(self) -> None:
        pass


class RandomBaseline(_Baseline):
    """A uniform letter drawn from a hash of (seed, request key): independent of batching, order
    and resume, and different for every image of a group."""

    def __init__(self, alias: str | None = None, seed: int = 0) -> None:
        super().__init__("random", alias)
        self.seed = seed

    def _letter(self, request: Request) -> str:
        if not request.key:
            raise ValueError("the random baseline needs a request key")
        h = hashlib.sha256(f"{self.seed}\x00{request.key}".encode()).digest()
        return request.letters[int.from_bytes(h[:8], "big") % len(request.letters)]


class FrequentBaseline(_Baseline):
    """The most frequent answer letter of the benchmark among the request's valid letters
    (ties broken alphabetically). `prepare` receives the benchmark's answer counts."""

    def __init__(self, alias: str | None = None) -> None:
        super().__init__("frequent", alias)
        self.counts: Counter[str] = Counter()

    def prepare(self, answer_counts: Counter[tuple[int, str]]) -> None:
        self.counts = Counter()
        for (_, letter), n in answer_counts.items():
            self.counts[letter] += n

    def _letter(self, request: Request) -> str:
        return min(request.letters, key=lambda letter: (-self.counts[letter], letter))


def make_baseline(kind: str, *, alias: str | None = None, seed: int = 0) -> _Baseline:
    if kind == "random":
        return RandomBaseline(alias, seed=seed)
    if kind == "frequent":
        return FrequentBaseline(alias)
    raise ValueError(f"unknown baseline {kind!r} (random, frequent)")
