"""Playwright driving Debian's Chromium (/usr/bin/chromium; `make install` runs `make browser`).

`require_browser()` returns playwright's `sync_api`, or skips the calling test module when Chromium or
the playwright package is absent — except in CI, where a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        raise RuntimeError(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason, allow_module_level=True)


def require_browser() -> ModuleType:
    if not CHROMIUM.exists():
        _missing("Debian's Chromium is not installed at /usr/bin/chromium (run `make browser`)")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    return sync_api
