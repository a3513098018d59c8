"""Fail fast without the Hugging Face hub: one short probe, then offline mode.

Without network, `datasets` / `huggingface_hub` retry for ~25 s before giving up. When a run names a
hub id and the hub does not answer within a few seconds, spuriverse switches the HF libraries to
offline mode before they are imported: cached datasets and models still load, anything else fails
at once with a message saying what to do.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


def hub_reachable(timeout: float = 3.0) -> bool:
    """One HEAD request to the hub endpoint (honours HTTPS_PROXY); any HTTP answer counts."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def go_offline_if_unreachable() -> bool:
    """Set HF offline mode when the hub does not answer. Call before importing HF libraries.
    Returns True when offline mode was switched on here."""
    if hub_offline() or hub_reachable():
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    return True
