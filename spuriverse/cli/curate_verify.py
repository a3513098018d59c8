"""`spuriverse curate verify`: stage 5, counterfactual verification -> DIR/verification.jsonl."""

from __future__ import annotations

import argparse
from pathlib import Path

from spuriverse.eval.prompts import STRATEGIES, strategies_help


def register(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser(
        "verify", help="models answer the anchor question on cue-present/absent images -> DIR/verification.jsonl",
        description="For each accepted candidate of DIR with synthesized images, every model answers the anchor "
        "question on each cue-present (spurious) and cue-absent (counter) image, through the eval harness "
        "(benchmark in DIR/verify/benchmark, runs in DIR/verify/runs/<model>, resumable). A model passes a "
        "candidate when acc(counter) - acc(spurious) > THRESHOLD; the candidate is kept when any (or all) models "
        "pass. Failed requests are counted and excluded, never scored. Writes DIR/verification.jsonl and "
        "DIR/verify_summary.json.")
    p.add_argument("curation_dir", type=Path)
    p.add_argument("--models", required=True,
                   help="comma-separated: registry aliases, local model folders, openai:<name>, random, frequent")
    p.add_argument("--threshold", type=float, required=True, help="keep when the gap exceeds this (e.g. 0.2)")
    p.add_argument("--policy", choices=["any", "all"], default="any", help="any (default) or all models must pass")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples for the gap interval")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (and the random baseline's)")
    p.add_argument("--strategy", default="direct", choices=list(STRATEGIES), help=strategies_help())
    p.add_argument("--batch-size", type=int, help="local models: batch size")
    p.add_argument("--device", help="local models: cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="local models on GPU")
    p.add_argument("--base-url", help="API models: OpenAI-compatible endpoint")
    p.add_argument("--api-key", help="API models: key (default: $OPENAI_API_KEY); never written to disk")
    p.add_argument("--concurrency", type=int, help="API models: requests in flight")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_verify)


def _cmd_verify(a: argparse.Namespace) -> int:
    from spuriverse.curate.verify import VerifyOptions, format_table, verify

    models = [m.strip() for m in a.models.split(",") if m.strip()]
    backend_options = {"device": a.device, "dtype": a.dtype, "base_url": a.base_url, "api_key": a.api_key,
                       "concurrency": a.concurrency}
    res = verify(a.curation_dir, VerifyOptions(
        models=models, threshold=a.threshold, policy=a.policy, n_bootstrap=a.n_bootstrap, seed=a.seed,
        strategy=a.strategy, batch_size=a.batch_size, progress=not a.no_progress,
        backend_options={k: v for k, v in backend_options.items() if v is not None}))
    print(format_table(res.verifications))
    s = res.summary
    print(f"\nkept {s['n_kept']} / {s['n_candidates']} candidates (gap > {s['threshold']}, policy {s['policy']}; "
          f"{s['n_items']} images) -> {a.curation_dir / 'verification.jsonl'}")
    for m, pm in s["per_model"].items():
        mean = "-" if pm["mean_gap"] is None else f"{pm['mean_gap']:+.3f}"
        print(f"  {m}: mean gap {mean} over {pm['n_with_gap']}, passes {pm['n_pass']}, failed requests {pm['failed']}")
    return 0
