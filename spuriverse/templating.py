"""Jinja2 environments for every page and report spuriverse writes, escaping by construction.

Every value a template prints goes through the environment's escaper unless it is a `Markup` (text the
code vouches for: our own CSS/JS, JSON made safe for a script element, numbers formatted by us):

- `html_environment`: Jinja2 autoescaping (HTML entities), after an optional `prepare` step (e.g.
  making control and bidi characters visible);
- `markdown_environment`: the given markdown escaper runs on every printed value (autoescaping for
  markdown, which Jinja2 has no built-in notion of).

Templates are package resources (`<package>/templates/`), rendered with `trim_blocks` and
`lstrip_blocks` so block tags take no room in the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

__all__ = ["Markup", "html_environment", "markdown_environment"]


def _environment(package: str, autoescape: bool, finalize: Callable[[Any], Any]) -> Environment:
    return Environment(loader=PackageLoader(package, "templates"), trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True, undefined=StrictUndefined, autoescape=autoescape,
                       finalize=finalize)


def html_environment(package: str, prepare: Callable[[object], str] = str) -> Environment:
    """HTML templates of `package`: every printed value is `prepare`d, then HTML-escaped (Markup aside)."""
    return _environment(package, autoescape=True, finalize=lambda v: v if isinstance(v, Markup) else prepare(v))


def markdown_environment(package: str, escape: Callable[[object], str]) -> Environment:
    """Markdown templates of `package`: every printed value goes through `escape` (Markup aside)."""
    return _environment(package, autoescape=False, finalize=lambda v: v if isinstance(v, Markup) else escape(v))
