"""Deprecated import path of `spuriverse.persist`'s atomic writes (the one persistence layer): import
from `spuriverse.persist`. Kept only while code written against it (train, the world generator) moves."""

from __future__ import annotations

from spuriverse.persist import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
