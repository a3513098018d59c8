"""kronfluence declares torchvision but never imports it, and a PyPI torchvision fails to import beside
this torch: `make install` installs kronfluence with --no-deps. Nothing may have brought it back."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest


def test_torchvision_is_not_installed():
    assert importlib.util.find_spec("torchvision") is None
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("torchvision")


def test_influence_libraries_import_without_it():
    import dattri.algorithm  # noqa: F401
    import kronfluence.analyzer  # noqa: F401

    assert importlib.metadata.version("kronfluence") and importlib.metadata.version("dattri")
