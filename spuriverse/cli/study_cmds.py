"""Study commands: `spuriverse study finetune` (the held-out fine-tuning study)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spuriverse.cli.train_cmds import add_training_args, training_kwargs
from spuriverse.cli.backend_args import apply_threads

if TYPE_CHECKING:
    from spuriverse.schema.study import CellPlan, SeedStat, StudyResult
    from spuriverse.study import StudyOptions

DESCRIPTION = """The SpuriVerse paper's held-out fine-tuning study. Per seed the correlations (groups) are split:
test = 20 %, validation = 12.5 % of the rest, train = the remainder (DIR/splits/seed-S.json). Each cell
fine-tunes the model (`spuriverse train`) on one kind of training data of the training groups -- anchor (their
real anchors), group (their spurious images), non_spurious (control items, the training anchors' per-source
counts x --non-spurious-scale), mixed (group + non_spurious) -- or, for the ablation, keeps n training
correlations as spurious data and replaces the others by as many non-spurious items (same training-set
size). Every tuned model and the untuned base are evaluated (`spuriverse eval`) on the held-out groups'
anchors and spurious images and on a control sample (--control-scale x the held-out anchors per source).
Re-running resumes: only unfinished cells run, and a finished cell is never redone; another configuration in
the same --out is refused. Writes DIR/study.json, DIR/report.md and plots when every cell has finished."""

QUICK: dict[str, str | int | float] = {"seeds": "42", "ablation": "0,100%", "epochs": 1.0, "bootstrap": 100, "control_scale": 2}
DEFAULTS: dict[str, str | int | float] = {"seeds": "42,123,7890,54321,9876", "ablation": "0,20,40,60,80,99", "epochs": 10.0, "bootstrap": 1000,
            "control_scale": 10}


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="held-out fine-tuning study: splits, a training run + evaluation per cell, "
                       "summary over seeds", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the base model: alias, hub id or local folder")
    p.add_argument("--model-revision", help="model revision (hub commit or tag)")
    p.add_argument("--out", required=True, type=Path, help="the study folder")
    d = p.add_argument_group("benchmark")
    d.add_argument("--dataset", required=True, help="the benchmark (long or wide layout): folder, hub id or files")
    d.add_argument("--config", help="dataset config name")
    d.add_argument("--split", help="dataset split")
    d.add_argument("--revision", help="dataset revision (hub)")
    d.add_argument("--side-table", action="append", dest="side_tables", default=[], metavar="[NAME=]FILE",
                   help="question tables for wide-layout rows (repeatable), as for `spuriverse eval`")
    d.add_argument("--controls", action="append", default=[], metavar="SRC",
                   help="extra long-layout items for the control pool (repeatable), e.g. for the wide release, "
                   "which has no controls")
    s = p.add_argument_group("design")
    s.add_argument("--seeds", help=f"comma-separated split seeds (default {DEFAULTS['seeds']}; --quick: 42)")
    s.add_argument("--data-types", default="anchor,group,non_spurious,mixed",
                   help="training data kinds (default all four)")
    s.add_argument("--ablation", help="ablation points: counts of training correlations kept spurious, or "
                   f"percentages (50%%) of them; 'none' for no ablation (default {DEFAULTS['ablation']}; --quick: 0,100%%)")
    s.add_argument("--ablation-data", default="group", help="ablate anchor and/or group data (default group)")
    s.add_argument("--non-spurious-scale", type=int, default=1,
                   help="non-spurious items per training anchor and source (default 1)")
    s.add_argument("--control-scale", type=int, help="held-out control items per held-out anchor and source "
                   "(default 10; --quick: 2)")
    s.add_argument("--bootstrap", type=int, help="group-bootstrap iterations per run (default 1000; --quick: 100)")
    s.add_argument("--allow-single-class", action="store_true",
                   help="train even when every example of a cell has the same correct answer")
    groups = add_training_args(p)
    groups["runtime"].add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(epochs=None, lora_target="both")
    g = p.add_argument_group("running")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--cell", type=int, metavar="K", help="run only cell K (for a scheduler array; see --list-cells)")
    x.add_argument("--list-cells", action="store_true", help="prepare the study and list its cells")
    x.add_argument("--summarize", action="store_true", help="only write study.json and the report")
    g.add_argument("--quick", action="store_true",
                   help="small settings for tests: one seed, 1 epoch, ablation 0 and 100%%, control scale 2, "
                   "100 bootstrap iterations (explicit options win)")
    p.set_defaults(func=_cmd_finetune)


def _setting(a: argparse.Namespace, key: str) -> str | int | float:
    value = getattr(a, key)
    return value if value is not None else (QUICK if a.quick else DEFAULTS)[key]


def _options(a: argparse.Namespace) -> StudyOptions:
    from spuriverse.schema.study import StudyDataSpec
    from spuriverse.study import StudyOptions

    def ints(text: str, what: str) -> list[int]:
        try:
            return [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{what} {text!r}: expected comma-separated integers") from None

    train = training_kwargs(a)
    train["epochs"] = float(_setting(a, "epochs"))
    backend = {"device": a.device} if a.device else {}
    ablation = str(_setting(a, "ablation"))
    return StudyOptions(
        model=a.model, model_revision=a.model_revision, out=a.out,
        data=StudyDataSpec(source=a.dataset, config=a.config, split=a.split, revision=a.revision,
                           side_tables=a.side_tables, controls=a.controls),
        seeds=ints(str(_setting(a, "seeds")), "--seeds"),
        data_types=[v.strip() for v in a.data_types.split(",") if v.strip()],
        ablation=[] if ablation.strip() == "none" else [v.strip() for v in ablation.split(",") if v.strip()],
        ablation_data=[v.strip() for v in a.ablation_data.split(",") if v.strip()],
        non_spurious_scale=a.non_spurious_scale, control_scale=int(_setting(a, "control_scale")),
        n_bootstrap=int(_setting(a, "bootstrap")), train=train,
        eval_batch_size=a.eval_batch_size, backend_options=backend, progress=not a.no_progress,
    )


def _cmd_finetune(a: argparse.Namespace) -> int:
    from spuriverse.study import StudyConfigMismatch, StudyIncomplete, list_cells, run_study
    from spuriverse.train import TrainConfigMismatch

    apply_threads(a)
    bad = [v for v in a.ablation_data.split(",") if v.strip() not in ("anchor", "group")]
    if bad:
        raise ValueError(f"--ablation-data {a.ablation_data!r}: choose anchor and/or group")
    opts = _options(a)
    try:
        if a.list_cells:
            _print_cells(list_cells(opts))
            return 0
        study = run_study(opts, cell=a.cell, summarize_only=a.summarize)
    except (StudyConfigMismatch, StudyIncomplete, TrainConfigMismatch) as exc:
        print(f"spuriverse study: error: {exc}", file=sys.stderr)
        return 2
    if study is None:
        print(f"cell {a.cell} finished; when every cell has: spuriverse study finetune ... --summarize")
        return 0
    _print_summary(study, a.out)
    return 0


def _print_cells(rows: list[tuple[CellPlan, str]]) -> None:
    print(f"{'cell':>4}  {'status':<8}  {'examples':>8}  name")
    for cell, status in rows:
        print(f"{cell.index:>4}  {status:<8}  {cell.n_train:>8}  {cell.name}")


def _print_summary(study: StudyResult, out: Path) -> None:
    def pct(s: SeedStat | None) -> str:
        if s is None or s.mean is None:
            return "-"
        ci = f" [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]" if s.ci_low is not None and s.ci_high is not None else ""
        return f"{100 * s.mean:.1f}{ci}"

    n = len(study.config.seeds)
    print("\nheld-out accuracy (%), " + (f"mean over {n} seeds [{100 * study.level:g} % t interval]" if n > 1 else
                                          "one seed"))
    for row in study.table + study.ablation:
        cells = "  ".join(f"{s} {pct(row.splits[s].accuracy)}" for s in study.splits)
        print(f"  {row.label:<24} {cells}")
    print(f"  study:  {out / 'study.json'}\n  report: {out / 'report.md'}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="experiments over many training runs (finetune: the held-out study)",
                       description="Studies: grids of training runs and evaluations, resumable and summarized.")
    inner = p.add_subparsers(dest="study_command", required=True, metavar="STUDY")
    _add_finetune(inner)
