"""Evaluation commands: eval, score, models, schema, compare, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from spuriverse.cli.backend_args import add_backend_args, backend_options, offline_if_hub_unreachable
from spuriverse.eval.prompts import STRATEGIES, strategies_help

if TYPE_CHECKING:
    from spuriverse.schema import RunResult


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a benchmark (resumes by default)",
        description="Evaluate a model on a benchmark. Writes samples.jsonl (one line per finished "
        "sample, flushed), run.json, results.json and report.md to --output-dir. Re-running the "
        "same command resumes: only missing samples are asked.",
    )
    p.add_argument("--model", required=True,
                   help="alias (see `spuriverse models`), hub id or local folder (HF), openai:<name>, random, frequent")
    p.add_argument("--dataset", required=True, help="hub id, local dataset folder, or parquet/json(l) files")
    p.add_argument("--config", help="dataset config name")
    p.add_argument("--revision", help="dataset revision (hub)")
    p.add_argument("--split", help="dataset split (default: the only split, else test, else train)")
    p.add_argument("--side-table", action="append", dest="side_tables", metavar="[NAME=]FILE",
                   help="question/options/answer for wide-layout rows that lack them, e.g. "
                   "aokvqa=aokvqa_train_meta.csv (repeatable)")
    p.add_argument("--strategy", default="direct", choices=list(STRATEGIES), help=strategies_help())
    p.add_argument("--scoring", default="auto", choices=["auto", "logprob", "generate"],
                   help="auto: option log-probs for local models with --strategy direct, else generation")
    p.add_argument("--batch-size", type=int, help="local models: batch size (default 8)")
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--seed", type=int, default=0, help="seed for the random baseline (default 0)")
    p.add_argument("--circular", action="store_true", help="CircularEval: ask every rotation of the options")
    p.add_argument("--blind", action="store_true", help="ask without the image (text-only baseline)")
    p.add_argument("--max-new-tokens", type=int, help="generation length (default 16 direct, 768 reasoning)")
    p.add_argument("--preset", help="named generation preset (spuriverse/models/presets.toml); default: greedy")
    p.add_argument("--paper-settings", dest="preset", action="store_const", const="paper",
                   help="the SpuriVerse paper's per-family generation settings (= --preset paper): its "
                   "temperatures, top-p, token limits and seeds; run --seed 42, 332, 1981, 213, 2901 for its 5 seeds")
    p.add_argument("--output-dir", type=Path, help="run folder (default runs/<model>)")
    p.add_argument("--wait", action="store_true",
                   help="if another process is using --output-dir, wait for it to finish (default: fail at once)")
    p.add_argument("--bootstrap", type=int, default=1000, help="group-bootstrap iterations (default 1000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("model backends")
    add_backend_args(g)
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(a: argparse.Namespace) -> int:
    offline_if_hub_unreachable(a.model, a.dataset)
    from spuriverse.eval.runner import EvalOptions, run_eval

    out = a.output_dir or Path("runs") / a.model.replace("/", "_").replace(":", "_")
    backend_opts = backend_options(a)
    result = run_eval(EvalOptions(
        model=a.model, dataset=a.dataset, output_dir=out, config=a.config, split=a.split,
        revision=a.revision, model_revision=a.model_revision, side_tables=a.side_tables,
        strategy=a.strategy, scoring=a.scoring, batch_size=a.batch_size, limit=a.limit, seed=a.seed,
        circular=a.circular, blind=a.blind, max_new_tokens=a.max_new_tokens, preset=a.preset, n_bootstrap=a.bootstrap,
        progress=not a.no_progress, backend_options=backend_opts, wait=a.wait,
    ))
    if result is not None:
        _print_summary(result, out)
    return 0


def _print_summary(result: RunResult, out: Path) -> None:
    m, f = result.metrics, result.failures

    def pct(key: str) -> str:
        v = m.get(key)
        if v is None or v.value is None:
            return "-"
        ci = f" [{100 * v.ci_low:.1f}, {100 * v.ci_high:.1f}]" if v.ci_low is not None and v.ci_high is not None else ""
        return f"{100 * v.value:.1f}%{ci}"

    print(f"\n{result.model.alias} on {result.benchmark.source} ({result.benchmark.fingerprint[:19]}...)")
    for key in ("overall_acc", "anchor_acc", "spurious_acc", "counter_acc", "control_acc",
                "mean_group_acc", "group_consistency"):
        if key in m and m[key].value is not None:
            print(f"  {key:<20} {pct(key)}")
    print(f"  failed {f.n_failed} ({100 * f.failed_rate:.1f}%), unparsed {f.n_unparsed} "
          f"({100 * f.unparsed_rate:.1f}%), missing {f.n_missing} of {f.n_samples + f.n_missing}")
    print(f"  results: {out / 'results.json'}\n  report:  {out / 'report.md'}")


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="recompute results.json and the report from samples.jsonl alone",
                       description="Re-score a run folder from run.json + samples.jsonl (no model runs).")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--bootstrap", type=int, default=1000, help="group-bootstrap iterations")
    p.add_argument("--failures-excluded", action="store_true",
                   help="exclude failed/unparsed samples from accuracies (default: they count as wrong)")
    p.add_argument("--no-report", action="store_true", help="write results.json only")
    p.set_defaults(func=_cmd_score)


def _cmd_score(a: argparse.Namespace) -> int:
    from spuriverse.eval.results import score_run

    result = score_run(a.run_dir, n_bootstrap=a.bootstrap, failures_as_wrong=not a.failures_excluded,
                       report=not a.no_report)
    _print_summary(result, a.run_dir)
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model aliases", description="List the model registry.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)


def _cmd_models(a: argparse.Namespace) -> int:
    from spuriverse.models.providers import providers
    from spuriverse.models.registry import registry, scoring_modes, tested_here

    reg = registry()
    rows = {alias: {"backend": v.backend, "provider": v.provider, "checkpoint": v.checkpoint,
                    "scoring": list(scoring_modes(v)), "tested_here": tested_here(v), "also": list(v.also),
                    **v.options, "notes": v.notes}
            for alias, v in reg.items()}
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("alias", "backend", "provider", "checkpoint", "scoring", "tested here")
    table = [head] + [(k, r["backend"], r["provider"] or "-", r["checkpoint"], "+".join(r["scoring"]),
                       r["tested_here"]) for k, r in rows.items()]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    prefixes = ", ".join(f"{name}:" for name in providers())
    print(f"\nAlso: any hub id or local folder (HF backend); <provider>:<name> for an API model without an "
          f"alias ({prefixes}); `--json` adds notes.")
    return 0


def _add_schema(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="export the JSON Schema of every file format",
                       description="Write <name>.schema.json for each file format spuriverse writes.")
    p.add_argument("--out", type=Path, default=Path("schemas"), help="output folder (default schemas/)")
    p.set_defaults(func=_cmd_schema)


def _cmd_schema(a: argparse.Namespace) -> int:
    from spuriverse.schema import export_json_schemas

    for path in export_json_schemas(a.out):
        print(path)
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="paired comparison of two runs on their shared items",
                       description="McNemar test on per-item correctness and the accuracy difference (A - B) "
                       "with a group-bootstrap interval, over the items both runs answered.")
    p.add_argument("run_a", type=Path)
    p.add_argument("run_b", type=Path)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--variants", default="anchor,spurious", help="item variants compared (default anchor,spurious)")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(a: argparse.Namespace) -> int:
    from spuriverse.eval.compare import paired_comparison
    from spuriverse.eval.samples import read_run_samples

    def run_dir(p: Path) -> Path:
        return p.parent if p.is_file() else p

    pc = paired_comparison(read_run_samples(run_dir(a.run_a)), read_run_samples(run_dir(a.run_b)),
                           n_bootstrap=a.bootstrap, variants=tuple(a.variants.split(",")))
    if not pc.n_shared:
        print("no shared items")
        return 1
    assert pc.acc_a is not None and pc.acc_b is not None and pc.diff is not None and pc.mcnemar_p is not None
    ci = f" [{100 * pc.diff_ci[0]:+.1f}, {100 * pc.diff_ci[1]:+.1f}]" if pc.diff_ci else ""
    print(f"shared items {pc.n_shared}: A {100 * pc.acc_a:.1f}%  B {100 * pc.acc_b:.1f}%  "
          f"A-B {100 * pc.diff:+.1f} pp{ci} (95% group bootstrap)")
    print(f"both right {pc.both_right}, only A {pc.a_only}, only B {pc.b_only}, both wrong {pc.both_wrong}")
    print(f"McNemar p = {pc.mcnemar_p:.4g} ({pc.mcnemar_method})")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the offline demo (what `make eval` runs with no MODEL)",
                       description="Evaluate random, frequent and a tiny random-weight LLaVA on the bundled "
                       "spuriverse-mini benchmark, submit them to a local demo leaderboard, render it. Offline.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(a: argparse.Namespace) -> int:
    from spuriverse.demo.offline import run_demo

    run_demo(a.out, progress=not a.no_progress)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _add_eval(sub)
    _add_score(sub)
    _add_models(sub)
    _add_schema(sub)
    _add_compare(sub)
    _add_demo(sub)
