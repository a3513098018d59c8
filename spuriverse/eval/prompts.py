"""Prompt strategies: render an item's question and options into (system, user) text."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources

from spuriverse.schema import Strategy, letters_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STRATEGIES: tuple[str, ...] = ("direct", "cot", "spurious_aware")


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    user: str

    @property
    def hash(self) -> str:
        """Stable hash of the template text; recorded in every sample."""
        blob = f"{self.name}\x00{self.system}\x00{self.user}".encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str
    letters: tuple[str, ...]
    template_hash: str


@cache
def _templates() -> dict[str, Template]:
    text = resources.files("spuriverse.eval").joinpath("templates/strategies.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {name: Template(name, t["system"].strip(), t["user"].strip()) for name, t in data.items()}


def get_template(strategy: Strategy | str) -> Template:
    try:
        return _templates()[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}") from None


def format_options(options: list[str]) -> str:
    """One "(X) text" line per real option: a 2-option item shows 2 lines, never "(C) nan"."""
    return "\n".join(f"({letter}) {text.strip()}" for letter, text in zip(letters_for(len(options)), options))


def render_prompt(question: str, options: list[str], strategy: Strategy | str = "direct") -> RenderedPrompt:
    """Render a question with the item's true option count under a strategy."""
    t = get_template(strategy)
    letters = letters_for(len(options))
    fields = {
        "question": question.strip(),
        "options": format_options(options),
        "letters": ", ".join(letters),
        "last": letters[-1],
    }
    return RenderedPrompt(t.system.format(**fields), t.user.format(**fields), letters, t.hash)


def rotate_options(options: list[str], answer: str, rotation: int) -> tuple[list[str], str]:
    """CircularEval: shift options left by `rotation`; return the new options and answer letter."""
    n = len(options)
    r = rotation % n
    rotated = options[r:] + options[:r]
    old = letters_for(n).index(answer)
    return rotated, letters_for(n)[(old - r) % n]
