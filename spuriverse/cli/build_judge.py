"""`spuriverse build judge`: stage 2, verdicts on the errors -> DIR/judgments.jsonl."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(bsub: argparse._SubParsersAction) -> None:
    judge = bsub.add_parser(
        "judge", help="ingest existing verdicts -> DIR/judgments.jsonl",
        description="Ingest precomputed spurious-correlation verdicts (e.g. the meta CSVs' spuriousAttr column) "
        "for the errors in DIR/errors.jsonl; resumable.")
    judge.add_argument("build_dir", type=Path)
    judge.add_argument("--verdicts", type=Path, required=True)
    judge.add_argument("--preset", required=True, choices=["aokvqa", "seedbench", "naturalbench", "generic"])
    judge.add_argument("--source", help="source name used when mining (default: the preset name)")
    judge.add_argument("--judge", default="reference:gpt-4o", help="judge name recorded with each verdict")
    judge.set_defaults(func=_cmd_judge)


def _cmd_judge(a: argparse.Namespace) -> int:
    from spuriverse.build.verdicts import ingest_verdicts

    r = ingest_verdicts(a.verdicts, a.preset, a.build_dir, judge=a.judge, source_name=a.source)
    print(f"judged {r['judged']} errors, {r['spurious']} spurious; appended {r['appended']} "
          f"-> {a.build_dir / 'judgments.jsonl'}")
    return 0
