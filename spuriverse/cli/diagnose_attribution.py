"""`spuriverse diagnose attribution`: gradient attribution of multiple-choice answers (captum)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING
from spuriverse.cli.backend_args import apply_threads

if TYPE_CHECKING:
    from spuriverse.schema.attribution import AttributionSummary

DESCRIPTION = """Attribution maps of a local model's multiple-choice answers: where in the image does the answer
come from? The attributed score is, by default, the log-softmax over the item's option letters at the answer
position (the forward `spuriverse eval --scoring logprob` runs): invariant to the pre-softmax shift attack
(Lerma & Lucas, arXiv 2307.03305). Maps are carried back to the original image raster (LLaVA, LLaVA-NeXT,
Idefics3, Qwen2-VL / Qwen2.5-VL). Where the dataset has masks (the planted-cue world's core_mask / cue_mask),
cue mass, core mass and the pointing game are reported. Writes --out: rows.jsonl (one durable line per item
and method), maps/ (.npz), overlays/, grids/ (anchor vs spurious per group), summary.json, report.md,
report.html. Re-running the same command resumes; data-parallel with `accelerate launch -m spuriverse ...`."""


def _choices(registry: Collection[str], what: str) -> Callable[[str], list[str]]:
    """argparse type: a comma list of registry names ("none": the empty list)."""
    def parse(value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        if value.strip() == "none" and what == "metric":
            return []
        bad = [n for n in names if n not in registry]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, bad)) or '(none given)'}; choose from {', '.join(registry)}"
                + (" (each computed by captum)" if what == "attribution method" else ""))
        return list(dict.fromkeys(names))
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    from spuriverse.diagnose.attribution import BASELINES, METHODS, METRICS, SPACES, TARGETS

    p = sub.add_parser("attribution", help="attribution maps of multiple-choice answers (captum)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model: alias (see `spuriverse models`), hub id or folder")
    p.add_argument("--dataset", required=True, help="hub id, local dataset folder, or parquet/json(l) files")
    p.add_argument("--out", required=True, type=Path, help="output folder (locked while running; resumable)")
    d = p.add_argument_group("data")
    d.add_argument("--config", help="dataset config name")
    d.add_argument("--split", help="dataset split")
    d.add_argument("--revision", help="dataset revision (hub)")
    d.add_argument("--items", help="only these item ids: a,b,c or @file (one per line)")
    d.add_argument("--groups", help="only these group ids: a,b,c or @file")
    d.add_argument("--variants", help="only these variants, e.g. anchor,spurious")
    d.add_argument("--limit", type=int, help="only the first N selected items")
    d.add_argument("--core-mask-column", default="core_mask", help="mask column of the core object (default core_mask)")
    d.add_argument("--cue-mask-column", default="cue_mask", help="mask column of the spurious cue (default cue_mask)")
    m = p.add_argument_group("attribution")
    m.add_argument("--method", type=_choices(METHODS, "attribution method"), default=["ig"], metavar="M[,M...]",
                   help=f"methods (default ig): {', '.join(METHODS)}")
    m.add_argument("--input", choices=SPACES, default="pixels",
                   help="gradient methods attribute pixel_values or the projected image-token embeddings")
    m.add_argument("--target", choices=TARGETS, default="predicted",
                   help="the predicted letter, the correct one, or correct minus its strongest rival")
    m.add_argument("--raw-logits", action="store_true",
                   help="attribute raw letter logits instead of the log-softmax: NOT shift-invariant (the report says so)")
    m.add_argument("--baseline", choices=BASELINES, default="blurred", help="IG / occlusion reference image")
    m.add_argument("--ig-steps", type=int, default=32, help="IG steps (default 32)")
    m.add_argument("--smooth-samples", type=int, default=16, help="SmoothGrad samples (default 16)")
    m.add_argument("--smooth-noise", type=float, default=0.15, help="SmoothGrad noise sd / input range (default 0.15)")
    m.add_argument("--occlusion-patch", type=int, help="occlusion patch in original pixels (default 1/8 of the shorter side)")
    m.add_argument("--metrics", type=_choices(METRICS, "metric"), default=list(METRICS), metavar="M[,M...]",
                   help=f"per-item scores (default all; 'none' for none): {', '.join(METRICS)}")
    m.add_argument("--robustness-samples", type=int, default=4, help="noise draws for infidelity / sensitivity")
    m.add_argument("--sanity-items", type=int, default=8,
                   help="items re-attributed with randomised weights at the end (default 8; 0: no sanity check)")
    m.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("runtime")
    r.add_argument("--model-revision", help="model revision (hub commit or tag)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    r.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="weights dtype on GPU (default: the registry's)")
    r.add_argument("--batch-size", type=int, default=8, help="items per batch (default 8)")
    r.add_argument("--max-rows", type=int, help="cap on rows per forward/backward (IG steps x items; default: all)")
    r.add_argument("--threads", type=int, help="torch intra-op threads")
    r.add_argument("--bootstrap", type=int, default=1000, help="group-bootstrap iterations of the summary")
    r.add_argument("--wait", action="store_true", help="wait for another process using --out (default: fail at once)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)


def _cmd(a: argparse.Namespace) -> int:
    from spuriverse.diagnose.attribution import AttributionOptions, MethodParams, run_attribution
    from spuriverse.models.hf import LetterTokenError
    from spuriverse.train.data import parse_selection

    apply_threads(a)
    params = MethodParams(ig_steps=a.ig_steps, smooth_samples=a.smooth_samples, smooth_noise=a.smooth_noise,
                          occlusion_patch=a.occlusion_patch, seed=a.seed)
    opts = AttributionOptions(
        model=a.model, dataset=a.dataset, out=a.out, config=a.config, split=a.split, revision=a.revision,
        model_revision=a.model_revision, items=parse_selection(a.items), groups=parse_selection(a.groups),
        variants=parse_selection(a.variants), limit=a.limit, methods=a.method, input=a.input, target=a.target,
        raw_logits=a.raw_logits, baseline=a.baseline, params=params, metrics=a.metrics,
        robustness_samples=a.robustness_samples, sanity_items=a.sanity_items, core_mask_column=a.core_mask_column,
        cue_mask_column=a.cue_mask_column, batch_size=a.batch_size, max_rows=a.max_rows, n_bootstrap=a.bootstrap,
        progress=not a.no_progress, wait=a.wait, backend_options={"device": a.device, "dtype": a.dtype})
    try:
        summary = run_attribution(opts)
    except LetterTokenError as exc:
        print(f"spuriverse diagnose attribution: error: {exc}", file=sys.stderr)
        return 2
    if summary is not None:
        _print_summary(summary, a.out)
    return 0


def _print_summary(summary: AttributionSummary, out: Path) -> None:
    from spuriverse.diagnose.attribution.report import fmt

    print(f"\n{summary.config.model}: {summary.n_items} items, target {summary.config.target} ({summary.invariance})")
    for row in summary.rows:
        if row.slice in ("all", "variant:anchor", "variant:spurious", "wrong"):
            keys = [k for k in ("cue_mass", "core_mass", "deletion_auc") if k in row.metrics]
            print(f"  {row.method:<17} {row.slice:<17} n={row.n_items:<4} "
                  + "  ".join(f"{k} {fmt(row.metrics[k])}" for k in keys))
    print(f"  report: {out / 'report.md'} (and report.html)")
