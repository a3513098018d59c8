"""`spuriverse curate mine`: stage 1, errors of a model -> DIR/errors.jsonl.

Two modes: `--model M --source DATASET` runs a model over a source VQA benchmark (read through a
column mapping: `--preset`, `--map`); `--predictions FILE` ingests a table of precomputed answers.
`--name` is the source name in candidate ids in both modes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spuriverse.cli.backend_args import BACKEND_FLAGS, add_backend_args, backend_options, offline_if_hub_unreachable
from spuriverse.curate.presets import SOURCE_PRESETS, preset_names


def register(bsub: argparse._SubParsersAction) -> None:
    mine = bsub.add_parser(
        "mine", help="errors of a model (run now, or precomputed predictions) -> DIR/errors.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stage 1: collect the wrong answers of a model into OUT/errors.jsonl (resumable).\n\n"
        "  --model M --source DATASET   run M over a source VQA benchmark (hub id, local dataset folder, or\n"
        "                               parquet/CSV/JSONL files) read through a column mapping (--preset,\n"
        "                               --map); writes OUT/source.json, OUT/mine_run/ (the evaluation run,\n"
        "                               resumable), OUT/anchors/ (each error's image) and OUT/errors.jsonl.\n"
        "                               Failed requests (e.g. unreadable images) are counted, not mined.\n"
        "  --predictions FILE           stream a predictions table (e.g. the reference's meta CSVs), re-parse\n"
        "                               every answer with spuriverse's parser, and append one record per wrong\n"
        "                               answer (agreement with the table's `parsed` column in the summary).\n\n"
        "Both write OUT/mine_summary.json.",
        epilog="--map keys: question_id, question, options (a list column; 'none' to use option_columns), "
        "option_columns (names separated by '|'), answer, answer_format (auto|letter|index|text), image, "
        "image_root, category ('none': no category). Example: --map question=q,option_columns=a|b|c|d,answer=label",
    )
    mode = mine.add_mutually_exclusive_group(required=True)
    mode.add_argument("--model", help="run this model (alias, hub id or local folder, openai:<name>, random, ...)")
    mode.add_argument("--predictions", type=Path, help="CSV with question, options, answer, prediction")
    mine.add_argument("--source", help="--model: the source benchmark: hub id, local dataset folder, or "
                      "parquet/CSV/JSONL file(s) (globs allowed)")
    mine.add_argument("--name", help="source name in candidate ids (default: the preset name; for the generic "
                      "preset with --model, the dataset's file or folder name)")
    mine.add_argument("--preset", help=f"source layout: --model {{{','.join(preset_names('dataset'))}}} (default "
                      f"generic); --predictions {{{','.join(preset_names('predictions'))}}} (required). "
                      + "; ".join(f"{p.name}: {p.help}" for p in SOURCE_PRESETS.values()))
    mine.add_argument("--out", type=Path, required=True, help="curation folder")
    g = mine.add_argument_group("--model mode")
    g.add_argument("--config", help="dataset config name")
    g.add_argument("--split", help="dataset split (default: the only split, else test, else validation, else train)")
    g.add_argument("--revision", help="dataset revision (hub)")
    g.add_argument("--map", action="append", metavar="KEY=COLUMN,...",
                   help="override fields of the preset's column mapping (repeatable)")
    g.add_argument("--limit", type=int, help="only the first N source items")
    g.add_argument("--batch-size", type=int, help="local models: batch size (default 8)")
    add_backend_args(g)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = mine.add_argument_group("--predictions mode")
    p.add_argument("--use-reference-parsed", action="store_true",
                   help="take the table's `parsed` letters instead of re-parsing (to reproduce the reference)")
    mine.set_defaults(func=_cmd_mine, _parser=mine)


def _cmd_mine(a: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = a._parser
    if a.predictions is not None:
        used = [f"--{k.replace('_', '-')}" for k in ("source", "config", "split", "revision", "map", "limit",
                                                        "batch_size", *BACKEND_FLAGS)
                if getattr(a, k) not in (None, False)]
        if used:
            hint = " (the source name in ids is --name)" if "--source" in used else ""
            parser.error(f"{', '.join(used)}: only with --model; --predictions takes --preset, --name, --out{hint}")
        known = preset_names("predictions")
        if a.preset is None:
            parser.error(f"--predictions needs --preset ({', '.join(known)})")
        if a.preset not in known:
            parser.error(f"--preset {a.preset!r}: with --predictions one of {', '.join(known)}")
        return _cmd_predictions(a)
    if a.source is None:
        parser.error("--model needs --source (the source benchmark to run it over)")
    if a.use_reference_parsed:
        parser.error("--use-reference-parsed: only with --predictions")
    if a.preset is not None and a.preset not in preset_names("dataset"):
        parser.error(f"--preset {a.preset!r}: with --model one of {', '.join(preset_names('dataset'))}")
    return _cmd_model(a, parser)


def _cmd_predictions(a: argparse.Namespace) -> int:
    from spuriverse.curate.mine import mine_predictions

    s = mine_predictions(a.predictions, a.preset, a.out, source_name=a.name,
                         use_reference_parsed=a.use_reference_parsed)
    ag = s.agreement
    print(f"{s.rows} rows, {s.errors} errors ({s.unparsed} unparsed answers); appended {s.appended}, "
          f"already present {s.already_present} -> {a.out / 'errors.jsonl'}")
    if ag is not None:
        print(f"vs the table's `parsed` column: {ag.letter_disagreements} letters differ; errors ours "
              f"{ag.errors_ours} / reference {ag.errors_reference} (only ours {ag.errors_only_ours}, only "
              f"reference {ag.errors_only_reference})")
    return 0


def _cmd_model(a: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from spuriverse.curate.source import make_source_spec

    try:
        spec = make_source_spec(a.source, name=a.name, preset=a.preset, overrides=a.map, config=a.config,
                                split=a.split, revision=a.revision)
    except ValueError as exc:
        parser.error(str(exc))
    offline_if_hub_unreachable(a.model, spec.dataset)
    from spuriverse.curate.mine_model import mine_with_model

    backend = backend_options(a)
    s = mine_with_model(spec, a.model, a.out, batch_size=a.batch_size, limit=a.limit, backend_options=backend,
                        model_revision=a.model_revision, progress=not a.no_progress)
    print(f"{s.items} items of {s.source}: {s.correct} right, {s.errors} wrong ({s.unparsed_errors} unparsed), "
          f"{s.failures} failed (not mined); appended {s.appended}, already present {s.already_present} "
          f"-> {a.out / 'errors.jsonl'} ({s.seconds:.1f} s)")
    return 0
