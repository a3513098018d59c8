"""`spuriverse curate judge`: stage 2, verdicts on the errors -> DIR/judgments.jsonl.

Either an LLM judge (`--judge`: an OpenAI-compatible endpoint or a local HF model) or the ingest of
precomputed verdicts (`--verdicts FILE --preset P`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spuriverse.curate.judges import JUDGE_BACKENDS
from spuriverse.curate.presets import preset_names


def register(bsub: argparse._SubParsersAction) -> None:
    judge = bsub.add_parser(
        "judge", help="LLM judge (or ingest verdicts) -> DIR/judgments.jsonl",
        description="Ask a judge, for every error in DIR/errors.jsonl, whether the wrong answer is caused by a "
        "spurious cue in the image, its top-2 spurious attributes and two one-line scene descriptions (one "
        "structured-output request per error; prompt: spuriverse/curate/templates/judge.toml). Each verdict is "
        "appended as it finishes; re-running skips verdicts of the same judge and prompt and retries failures; "
        "DIR/judge_summary.json records counts and tokens. Alternatively, --verdicts ingests precomputed verdicts "
        "(e.g. the reference meta CSVs' spuriousAttr column).")
    judge.add_argument("curation_dir", type=Path)
    what = judge.add_mutually_exclusive_group(required=True)
    what.add_argument("--judge", metavar="MODEL",
                      help="judge model: a name at an OpenAI-compatible endpoint (gpt-4o, openai:gpt-4o; any name "
                      "with --base-url), or a local HF folder / hub id / registry alias")
    what.add_argument("--verdicts", type=Path, help="ingest precomputed verdicts from this CSV instead")
    api = judge.add_argument_group("LLM judge")
    api.add_argument("--base-url", help="OpenAI-compatible endpoint (vLLM, SGLang, LiteLLM, ...; default: OpenAI)")
    api.add_argument("--api-key", help="API key (default: OPENAI_API_KEY); never written anywhere")
    api.add_argument("--backend", choices=["auto", *JUDGE_BACKENDS], default="auto",
                     help="auto: an endpoint with --base-url or for names that are no local model, else the "
                     "backend serving the model; " + "; ".join(f"{b.name}: {b.help}" for b in JUDGE_BACKENDS.values()))
    api.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    api.add_argument("--max-retries", type=int, default=3,
                     help="retries per error for API faults and, separately, for invalid answers (default 3)")
    api.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    api.add_argument("--max-tokens", type=int, default=1024, help="answer length limit (default 1024)")
    api.add_argument("--temperature", type=float, default=0.0)
    api.add_argument("--missing-image", choices=["fail", "text"], default="fail",
                     help="an error whose anchor image is missing: record a failure without a request (default), "
                     "or send the text alone")
    api.add_argument("--limit", type=int, help="judge at most this many pending errors (candidate-id order)")
    api.add_argument("--revision", help="HF judge: model revision")
    api.add_argument("--device", help="HF judge: cpu, cuda, cuda:1 ...")
    api.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="HF judge: dtype on GPU")
    api.add_argument("--no-progress", action="store_true")
    ing = judge.add_argument_group("verdict ingest")
    ing.add_argument("--preset", choices=preset_names("predictions"),
                     help="layout of the --verdicts file (required with --verdicts)")
    ing.add_argument("--source", help="source name used when mining (default: the preset name)")
    ing.add_argument("--verdicts-judge", default="reference:gpt-4o", help="judge name recorded with ingested verdicts")
    judge.set_defaults(func=_cmd_judge)


def _cmd_judge(a: argparse.Namespace) -> int:
    if a.verdicts is not None:
        return _ingest(a)
    from spuriverse.curate.judge import JUDGMENTS, judge_errors
    from spuriverse.curate.judges import JudgeOptions, make_judge

    if not (a.curation_dir / "errors.jsonl").is_file():
        print(f"spuriverse curate judge: error: {a.curation_dir / 'errors.jsonl'} not found (run `spuriverse curate mine` "
              "first)", file=sys.stderr)
        return 2
    try:
        backend = make_judge(a.judge, backend=a.backend, options=JudgeOptions(
            base_url=a.base_url, api_key=a.api_key, max_retries=a.max_retries, timeout=a.timeout,
            max_tokens=a.max_tokens, temperature=a.temperature, revision=a.revision, device=a.device, dtype=a.dtype))
    except ValueError as exc:
        print(f"spuriverse curate judge: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = judge_errors(a.curation_dir, backend, concurrency=a.concurrency, missing_image=a.missing_image,
                               limit=a.limit, progress=not a.no_progress)
    finally:
        backend.close()
    print(f"{summary.line()} -> {a.curation_dir / JUDGMENTS}")
    return 0 if summary.failed == 0 else 1


def _ingest(a: argparse.Namespace) -> int:
    from spuriverse.curate.verdicts import ingest_verdicts

    if a.preset is None:
        print("spuriverse curate judge: error: --verdicts needs --preset", file=sys.stderr)
        return 2
    r = ingest_verdicts(a.verdicts, a.preset, a.curation_dir, judge=a.verdicts_judge, source_name=a.source)
    print(f"judged {r['judged']} errors, {r['spurious']} spurious; appended {r['appended']} "
          f"-> {a.curation_dir / 'judgments.jsonl'}")
    return 0
