"""Backends are named by "module:attr" strings and built with only the options they accept."""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable, Collection
from typing import Any


def load(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def call_supported(factory: Callable[..., Any], *args: Any, label: str, quiet: Collection[str] = (),
                   **options: Any) -> Any:
    """Call `factory` with the options its signature takes (None = not given, skipped). Options it
    does not take are dropped with a warning (e.g. --base-url for a local model), except `quiet` ones,
    so the caller never needs to know which backend it builds."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in params or takes_any:
            kwargs[key] = value
        elif key not in quiet:
            warnings.warn(f"option {key!r} does not apply to the {label} backend; ignored", stacklevel=3)
    return factory(*args, **kwargs)
