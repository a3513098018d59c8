"""Builder commands: build mine / judge / review, synth."""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="counterfactual images for the accepted candidates of a builder folder",
        description="For each accepted candidate of DIR: N images with the spurious cue (from its `positive` "
        "description) and N without (`negative`), as DIR/images/<candidate>/{spurious,counter}/<k>.png with a "
        "provenance JSON beside each. Re-running skips existing images; nothing is deleted; writes are atomic.",
    )
    p.add_argument("build_dir", type=Path)
    p.add_argument("--backend", required=True, choices=["text2img", "inpaint", "instruct", "openai", "stability"],
                   help="text2img/inpaint/instruct: a diffusers pipeline; openai/stability: an image API")
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
        summary = synthesize(a.build_dir, backend, SynthOptions(
            n=a.n, width=a.width, height=a.height, steps=a.steps, guidance=a.guidance, strength=a.strength,
            negative_prompt=a.negative_prompt, seed=a.seed, progress=not a.no_progress,
        ), candidates=a.candidates.split(",") if a.candidates else None)
    finally:
        backend.close()
    print(f"made {summary.made}, skipped {summary.skipped} existing, refused {summary.refused}, failed "
          f"{summary.failed} in {summary.seconds:.1f} s -> {a.build_dir / 'images'}")
    return 0 if summary.failed == 0 else 1


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a benchmark: mine errors, ingest verdicts",
                       description="Builder stages over one builder folder (see README).")
    bsub = p.add_subparsers(dest="stage", required=True, metavar="STAGE")
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


def _cmd_judge(a: argparse.Namespace) -> int:
    from spuriverse.build.verdicts import ingest_verdicts

    r = ingest_verdicts(a.verdicts, a.preset, a.build_dir, judge=a.judge, source_name=a.source)
    print(f"judged {r['judged']} errors, {r['spurious']} spurious; appended {r['appended']} "
          f"-> {a.build_dir / 'judgments.jsonl'}")
    return 0


def _cmd_review(a: argparse.Namespace) -> int:
    from spuriverse.build.review import auto_accept

    c = auto_accept(a.build_dir)
    print(f"accepted {c['accepted']}; already reviewed {c['already_reviewed']}; not spurious {c['not_spurious']}; "
          f"spurious but without scene descriptions {c['no_descriptions']} -> {a.build_dir / 'reviews.jsonl'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _add_build(sub)
    _add_synth(sub)
