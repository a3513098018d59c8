"""`spuriverse build verify`: stage 5 (not built yet)."""

from __future__ import annotations

import argparse


def register(bsub: argparse._SubParsersAction) -> None:
    pass
