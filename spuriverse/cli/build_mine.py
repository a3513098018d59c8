"""`spuriverse build mine`: stage 1, errors of a model -> DIR/errors.jsonl."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(bsub: argparse._SubParsersAction) -> None:
    mine = bsub.add_parser(
        "mine", help="errors of a model's precomputed predictions -> DIR/errors.jsonl",
        description="Stream a predictions table (e.g. the reference's meta CSVs), re-parse every answer with "
        "spuriverse's parser, and append one error record per wrong answer to OUT/errors.jsonl (resumable), "
        "with OUT/mine_summary.json (counts, and agreement with the table's own `parsed` column).")
    mine.add_argument("--predictions", type=Path, required=True, help="CSV with question, options, answer, prediction")
    mine.add_argument("--preset", required=True, choices=["aokvqa", "seedbench", "naturalbench", "generic"],
                      help="column mapping of the table")
    mine.add_argument("--source", help="source name in candidate ids (default: the preset name)")
    mine.add_argument("--out", type=Path, required=True, help="builder folder")
    mine.add_argument("--use-reference-parsed", action="store_true",
                      help="take the table's `parsed` letters instead of re-parsing (to reproduce the reference)")
    mine.set_defaults(func=_cmd_mine)


def _cmd_mine(a: argparse.Namespace) -> int:
    from spuriverse.build.mine import mine_predictions

    s = mine_predictions(a.predictions, a.preset, a.out, source_name=a.source,
                         use_reference_parsed=a.use_reference_parsed)
    ag = s.agreement
    print(f"{s.rows} rows, {s.errors} errors ({s.unparsed} unparsed answers); appended {s.appended}, "
          f"already present {s.already_present} -> {a.out / 'errors.jsonl'}")
    print(f"vs the table's `parsed` column: {ag.letter_disagreements} letters differ; errors ours "
          f"{ag.errors_ours} / reference {ag.errors_reference} (only ours {ag.errors_only_ours}, only reference "
          f"{ag.errors_only_reference})")
    return 0
