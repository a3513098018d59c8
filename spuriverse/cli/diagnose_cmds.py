"""`spuriverse diagnose ...`: what a trained model learned and from where. Each diagnostic registers
itself below (one line each)."""

from __future__ import annotations

import argparse

from spuriverse.cli import diagnose_influence


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="diagnose a model: which training examples taught it its answers",
                       description="Diagnostics of trained models.")
    what = p.add_subparsers(dest="diagnose_command", required=True, metavar="DIAGNOSTIC")
    diagnose_influence.register(what)
