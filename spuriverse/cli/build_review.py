"""`spuriverse build review`: stage 3, decisions -> DIR/reviews.jsonl."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(bsub: argparse._SubParsersAction) -> None:
    review = bsub.add_parser(
        "review", help="review judged candidates (scripted: --auto-accept)",
        description="Decide which judged candidates enter the benchmark; decisions are appended to "
        "DIR/reviews.jsonl (the last one per candidate wins). --auto-accept accepts every judged-spurious "
        "candidate that has both scene descriptions and no decision yet. (The interactive review page is not "
        "available yet.)")
    review.add_argument("build_dir", type=Path)
    review.add_argument("--auto-accept", action="store_true", required=True,
                        help="accept without a person (scripted runs); required until the review page exists")
    review.set_defaults(func=_cmd_review)


def _cmd_review(a: argparse.Namespace) -> int:
    from spuriverse.build.review import auto_accept

    c = auto_accept(a.build_dir)
    print(f"accepted {c['accepted']}; already reviewed {c['already_reviewed']}; not spurious {c['not_spurious']}; "
          f"spurious but without scene descriptions {c['no_descriptions']} -> {a.build_dir / 'reviews.jsonl'}")
    return 0
