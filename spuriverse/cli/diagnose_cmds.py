"""`spuriverse diagnose ...`: one command group; each diagnostic registers its own subcommand (one entry
in `DIAGNOSTICS`)."""

from __future__ import annotations

import argparse

from spuriverse.cli import diagnose_attribution, diagnose_influence

DIAGNOSTICS = (diagnose_attribution, diagnose_influence)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="why a model answers as it does: attribution maps, influential training examples",
                       description="Diagnostics of a model's answers: where in the image they come from "
                                   "(attribution) and which training examples taught them (influence).")
    group = p.add_subparsers(dest="diagnostic", required=True, metavar="DIAGNOSTIC")
    for d in DIAGNOSTICS:
        d.register(group)
