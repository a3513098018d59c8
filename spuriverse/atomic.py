"""Atomic file writes (kept for existing imports): see `spuriverse.persist`, the one persistence layer."""

from __future__ import annotations

from spuriverse.persist import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
