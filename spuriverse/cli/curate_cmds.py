"""Curation commands: `spuriverse curate <stage>` (one module per stage) and `spuriverse synth`.
`spuriverse build <stage>` is a hidden, deprecated alias (see `cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spuriverse.synth.base import SYNTH_BACKENDS


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="counterfactual images for the accepted candidates of a curation folder",
        description="For each accepted candidate of DIR: N images with the spurious cue (from its `positive` "
        "description) and N without (`negative`), as DIR/images/<candidate>/{spurious,counter}/<k>.png with a "
        "provenance JSON beside each. Re-running skips existing images; nothing is deleted; writes are atomic.",
    )
    p.add_argument("curation_dir", type=Path)
    p.add_argument("--backend", required=True, choices=list(SYNTH_BACKENDS),
                   help="; ".join(f"{b.name}: {b.help}" for b in SYNTH_BACKENDS.values()))
    p.add_argument("--model", required=True, help="pipeline id or local folder; API model name (e.g. gpt-image-1)")
    p.add_argument("--revision", help="pipeline revision (hub)")
    p.add_argument("--n", type=int, default=4, help="images per variant (default 4)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--strength", type=float, help="editing strength (inpaint)")
    p.add_argument("--negative-prompt")
    p.add_argument("--seed", type=int, default=0, help="global seed; each image's seed derives from it")
    p.add_argument("--candidates", help="comma-separated candidate ids (default: every accepted candidate)")
    p.add_argument("--batch-size", type=int, help="prompts per pipeline call / requests in flight")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--cpu-offload", action="store_true", help="diffusers model CPU offload (GPU)")
    p.add_argument("--mode", choices=["generate", "edit", "inpaint"], help="API backends: generate or edit the anchor")
    p.add_argument("--base-url", help="API backends: endpoint (any OpenAI-compatible / Stability base URL)")
    p.add_argument("--api-key", help="API key (default: OPENAI_API_KEY / STABILITY_API_KEY); never written")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(a: argparse.Namespace) -> int:
    from spuriverse.synth.runner import SynthOptions, build_backend, synthesize

    backend = build_backend(a.backend, a.model, revision=a.revision, batch_size=a.batch_size, device=a.device,
                            dtype=a.dtype, cpu_offload=a.cpu_offload or None, mode=a.mode, base_url=a.base_url,
                            api_key=a.api_key)
    try:
        summary = synthesize(a.curation_dir, backend, SynthOptions(
            n=a.n, width=a.width, height=a.height, steps=a.steps, guidance=a.guidance, strength=a.strength,
            negative_prompt=a.negative_prompt, seed=a.seed, progress=not a.no_progress,
        ), candidates=a.candidates.split(",") if a.candidates else None)
    finally:
        backend.close()
    print(f"made {summary.made}, skipped {summary.skipped} existing, refused {summary.refused}, failed "
          f"{summary.failed} in {summary.seconds:.1f} s -> {a.curation_dir / 'images'}")
    return 0 if summary.failed == 0 else 1


def _add_curate(sub: argparse._SubParsersAction) -> None:
    from spuriverse.cli import curate_judge, curate_mine, curate_publish, curate_review, curate_verify

    p = sub.add_parser("curate", help="curate a benchmark: mine, judge, review, verify, publish",
                       description="Curation stages over one curation folder (see README, 'Curating a benchmark'). "
                       "Synthesis between review and verify is `spuriverse synth`.")
    bsub = p.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage in (curate_mine, curate_judge, curate_review, curate_verify, curate_publish):
        stage.register(bsub)


def register(sub: argparse._SubParsersAction) -> None:
    _add_curate(sub)
    _add_synth(sub)
