"""When and with what a file was made: the one timestamp format, installed package versions, and the
harness's own version (with the git commit and dirty flag when it runs from a checkout). Every stage
stamps its files through these (bottom layer: imports nothing of spuriverse but its version)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import spuriverse
from spuriverse.schema import HarnessInfo

__all__ = ["RUN_PACKAGES", "harness_info", "now_iso", "package_versions"]

# What a run records (results.json `packages`); other stages pass their own list.
RUN_PACKAGES: tuple[str, ...] = ("torch", "transformers", "datasets", "accelerate", "openai", "tokenizers", "pydantic",
                                 "numpy", "pillow", "pandas")


def now_iso() -> str:
    """UTC now, to the second, ISO 8601 (e.g. 2025-01-31T12:00:00+00:00)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions(names: Iterable[str] = RUN_PACKAGES) -> dict[str, str]:
    """Installed version of each named distribution; those not installed are left out."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def harness_info() -> HarnessInfo:
    """Version, and the git commit + dirty flag when the package runs from a checkout."""
    root = Path(spuriverse.__file__).resolve().parent.parent
    commit = dirty = None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip() or None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5, check=True).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return HarnessInfo(version=spuriverse.__version__, git_commit=commit, dirty=dirty)
