"""`spuriverse build publish`: stage 6 (not built yet)."""

from __future__ import annotations

import argparse


def register(bsub: argparse._SubParsersAction) -> None:
    pass
