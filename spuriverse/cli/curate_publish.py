"""`spuriverse curate publish`: stage 6, the kept correlations as a loadable dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser(
        "publish", help="kept correlations (+ controls) -> a dataset folder with a card",
        description="Per candidate kept by `curate verify`: the anchor, its spurious and counter images, all asked "
        "the anchor's question; optional control questions from the source benchmark (never an item that was "
        "mined as an error or judged). Writes OUT/README.md (front matter + data_cards/NAME.md + generated "
        "selection and provenance sections), OUT/data/*.parquet (long layout), OUT/wide/*.parquet (--wide: the "
        "SpuriVerse release layout) and OUT/provenance.jsonl, atomically; same inputs give identical files. "
        "The folder loads with datasets.load_dataset(OUT) and `spuriverse eval --dataset OUT`.")
    p.add_argument("curation_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--name", required=True, help="benchmark name (card: data_cards/NAME.md)")
    p.add_argument("--controls", type=int, default=0, help="control questions from the source benchmark (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the control draw (recorded in the card)")
    p.add_argument("--wide", action="store_true", help="also the wide config (image, spurious_group_1..N)")
    p.add_argument("--card", type=Path, help="the card text (default data_cards/NAME.md); required to exist")
    p.add_argument("--license", default="other", help="licence id for the card's front matter (default other)")
    p.add_argument("--unverified", action="store_true",
                   help="publish every accepted candidate without verification (the card says so)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out folder")
    p.add_argument("--push", metavar="REPO_ID", help="then upload the folder to this hub dataset repo")
    p.add_argument("--private", action="store_true", help="--push: create the repo private")
    p.set_defaults(func=_cmd_publish)


def _cmd_publish(a: argparse.Namespace) -> int:
    from spuriverse.curate.publish import PublishOptions, publish

    s = publish(a.curation_dir, PublishOptions(
        out=a.out, name=a.name, controls=a.controls, seed=a.seed, wide=a.wide, card=a.card, unverified=a.unverified,
        overwrite=a.overwrite, license=a.license, push=a.push, private=a.private))
    counts = ", ".join(f"{n} {v}" for v, n in s.counts.items() if n)
    print(f"published {s.n_candidates} correlations{' (UNVERIFIED)' if s.unverified else ''}: {counts} -> {s.out}")
    if s.controls is not None:
        c = s.controls
        short = f" (only {c['eligible']} eligible)" if c["n"] < c["requested"] else ""
        print(f"controls: {c['n']} of {c['requested']} requested{short} from {c['source']}, seed {c['seed']}; "
              f"{c['excluded']} mined or judged items excluded")
    if s.pushed:
        print(f"pushed to https://huggingface.co/datasets/{s.pushed}")
    return 0
