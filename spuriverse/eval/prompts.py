"""Prompt strategies: render an item's question and options into (system, user) text.

`STRATEGIES` is the one registry of prompt strategies: the entries of `templates/strategies.toml`
(system and user text, the default answer length) plus any added with `register_strategy`. The CLI's
`--strategy` choices (`eval`, `curate verify`, `train`), run validation and the leaderboard's check of
a submission all come from it. A template's hash (name, system and user text) goes into every sample.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from importlib import resources

from spuriverse.schema import letters_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

@dataclass(frozen=True)
class Template:
    """One prompt strategy: its name, system and user text (placeholders: see strategies.toml) and how
    many new tokens an answer may take unless a run says otherwise."""

    name: str
    system: str
    user: str
    max_new_tokens: int = 16
    help: str = ""  # one line for --help (not part of the hash)

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


STRATEGIES: dict[str, Template] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # the schema's Strategy pattern


def register_strategy(name: str, system: str, user: str, max_new_tokens: int = 16, help: str = "") -> Template:
    """Add a prompt strategy (the texts are stripped; `max_new_tokens` is its default answer length)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"strategy name {name!r}: lowercase letters, digits and _ (at most 40)")
    if name in STRATEGIES:
        raise ValueError(f"strategy {name!r} is already registered")
    if max_new_tokens < 1:
        raise ValueError(f"strategy {name!r}: max_new_tokens must be >= 1")
    STRATEGIES[name] = Template(name, system.strip(), user.strip(), max_new_tokens, help)
    return STRATEGIES[name]


def _register_builtin() -> None:
    text = resources.files("spuriverse.eval").joinpath("templates/strategies.toml").read_text("utf-8")
    for name, t in tomllib.loads(text).items():
        register_strategy(name, t["system"], t["user"], t["max_new_tokens"], t.get("help", ""))


_register_builtin()


def strategies_help() -> str:
    """The strategies for a --strategy help text."""
    return "; ".join(f"{t.name}: {t.help}" if t.help else t.name for t in STRATEGIES.values())


def get_template(strategy: str) -> Template:
    try:
        return STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}") from None


def format_option(letter: str, text: str) -> str:
    """One option as every prompt shows it: "(X) text"."""
    return f"({letter}) {text.strip()}"


def format_options(options: list[str]) -> str:
    """One "(X) text" line per real option: a 2-option item shows 2 lines, never "(C) nan"."""
    return "\n".join(format_option(letter, text) for letter, text in zip(letters_for(len(options)), options))


def render_prompt(question: str, options: list[str], strategy: str = "direct") -> RenderedPrompt:
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
