"""`spuriverse diagnose ...`: one command group; each diagnostic registers its own subcommand."""

from __future__ import annotations

import argparse

from spuriverse.cli import diagnose_attribution

DIAGNOSTICS = (diagnose_attribution,)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="why a model answers as it does (attribution maps, ...)",
                       description="Diagnostics of a model's answers on a benchmark.")
    group = p.add_subparsers(dest="diagnostic", required=True, metavar="DIAGNOSTIC")
    for d in DIAGNOSTICS:
        d.register(group)
