"""`spuriverse diagnose influence`: which training examples taught a fine-tuned model its answers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from spuriverse.cli.backend_args import apply_threads

if TYPE_CHECKING:
    from spuriverse.schema.influence import InfluenceManifest

DESCRIPTION = """Influence functions on a training run of `spuriverse train`: for each query item, the training
examples that pushed the model toward its answer (supporting) and away from it (opposing), the share of
supporting examples that carry the query's spurious cue (the spurious-support ratio, with an interval,
per query and per group), every training example's self-influence, and a report with image strips.

Sign convention: score = -grad f(query) . (H + damping)^-1 . grad loss(example), the first-order change
of the query's measurement f when the example is up-weighted; positive = the example pushed the model
toward the measured answer. The measurement f is `contrast` (log p(measured letter) - log p(correct
letter); the measured letter is the model's answer when wrong, else its strongest wrong option) or
`loss` (-log p(correct letter)). The training loss is the run's own objective.

Writes --out (influence.json, factors/, queries.jsonl, scores/, self_influence.jsonl, summary.json,
report.md, report.html, images/); factors are fitted once and a re-run resumes."""


def _methods() -> list[str]:
    from spuriverse.diagnose.influence.backends import method_names

    return method_names(lvlm=True)


def _method_help() -> str:
    from spuriverse.diagnose.influence.backends import get_method

    return "; ".join(f"{n}: {get_method(n).summary}" for n in _methods())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("influence", help="which training examples taught the model its answers (influence functions)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-run", required=True, type=Path, help="a training run folder (spuriverse train --out)")
    p.add_argument("--queries", required=True, metavar="D", help="query items: dataset folder, hub id or files")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    q = p.add_argument_group("queries")
    q.add_argument("--queries-split", help="split of --queries (default: train if present, else the only split)")
    q.add_argument("--queries-config", help="dataset config of --queries")
    q.add_argument("--items", help="only these query ids: a,b,c or @file (one per line)")
    q.add_argument("--groups", help="only queries of these group ids: a,b,c or @file")
    q.add_argument("--variants", help="only queries of these variants, e.g. spurious,anchor")
    m = p.add_argument_group("method")
    m.add_argument("--method", choices=_methods(), default="ekfac", help=_method_help())
    m.add_argument("--measurement", choices=["contrast", "loss"], default="contrast",
                   help="what influence is measured on (default contrast)")
    m.add_argument("--top-k", type=int, default=20, help="supporting / opposing examples kept per query (default 20)")
    m.add_argument("--damping", type=float, help="curvature damping (default: the method's own)")
    m.add_argument("--cue-column", default="spurious_attribute",
                   help="metadata column naming an item's spurious cue (default spurious_attribute)")
    m.add_argument("--track", metavar="REGEX",
                   help="only the trainable modules whose names REGEX finds (e.g. 'q_proj|v_proj' to bound "
                   "the factors' memory on a large model; default: every LoRA module on the gradient path)")
    d = p.add_argument_group("run and model")
    d.add_argument("--train-data", action="append", metavar="SRC",
                   help="where the run's training data lives now, when it moved (verified by fingerprint)")
    d.add_argument("--model", type=Path, help="diagnose this copy of the run's weights (verified against the run)")
    r = p.add_argument_group("runtime")
    r.add_argument("--batch-size", type=int, default=8, help="training examples per forward (default 8)")
    r.add_argument("--query-batch-size", type=int, default=32,
                   help="queries scored per pass over the training data (default 32)")
    r.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    r.add_argument("--threads", type=int, help="torch intra-op threads")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-report", action="store_true", help="no report.md / report.html")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_influence)


def _cmd_influence(a: argparse.Namespace) -> int:
    from spuriverse.diagnose.influence import InfluenceOptions, run_influence
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.data import parse_selection

    apply_threads(a)
    queries = [TrainDataSpec(source=a.queries, split=a.queries_split, config=a.queries_config,
                             groups=parse_selection(a.groups), variants=parse_selection(a.variants))]
    train_data = None
    if a.train_data:
        train_data = [TrainDataSpec(source=s, groups=None, variants=None) for s in a.train_data]
    manifest = run_influence(InfluenceOptions(
        train_run=a.train_run, queries=queries, out=a.out, items=parse_selection(a.items), method=a.method,
        measurement=a.measurement, top_k=a.top_k, damping=a.damping, cue_column=a.cue_column, track=a.track,
        train_data=train_data, model=a.model, batch_size=a.batch_size, query_batch_size=a.query_batch_size,
        device=a.device, seed=a.seed, progress=not a.no_progress, report=not a.no_report,
    ))
    _print_summary(a.out, manifest)
    return 0


def _print_summary(out: Path, manifest: InfluenceManifest) -> None:
    from spuriverse.schema.influence import InfluenceSummary

    summary = InfluenceSummary.model_validate_json((out / "summary.json").read_text("utf-8"))
    print(f"\n{manifest.config.method} influence of {manifest.n_train} training examples on "
          f"{manifest.n_queries} queries -> {out}")
    for name, m in (("spurious-support ratio", summary.overall), ("  answered wrong", summary.overall_wrong),
                    ("  base rate", summary.base_rate)):
        if m.value is not None:
            print(f"  {name}: {m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}] over {m.n} groups")
    report = out / "report.html"
    if report.exists():
        print(f"  report: {report}")
    print(f"  fit {manifest.fit_s:.1f} s, scoring {manifest.score_s:.1f} s, self-influence {manifest.self_s:.1f} s",
          file=sys.stdout)
