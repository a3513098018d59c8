"""`spuriverse study finetune`: prepare the study folder, run its cells (resumably), summarize.

Layout of the study folder DIR:
- ``plan.json``: the configuration and every cell (written once the data is prepared; a re-run with
  another configuration is refused);
- ``data/benchmark.parquet`` (the study's copy) and ``data/seed-S/heldout.parquet`` (per seed: the test
  groups' items and the held-out control sample);
- ``splits/seed-S.json``: the groups and samples of each seed;
- ``cells/seed-S/<cell>/``: ``model/`` (a `spuriverse train` folder), ``eval/`` (a `spuriverse eval` run
  folder) and ``cell.json`` once the cell has finished;
- ``study.json``, ``report.md`` and the plots, once every cell has finished.

Locks (`spuriverse.locking`): DIR itself while the data is prepared and while the summary is written;
each cell's folder while the cell runs. So several processes can share one study (each takes the next
free cell), and `--cell K` runs one cell in a scheduler array.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from spuriverse.provenance import now_iso
from spuriverse.locking import FolderBusy, folder_lock
from spuriverse.persist import atomic_write_text
from spuriverse.schema.study import CellPlan, CellRecord, SplitFile, StudyConfig, StudyPlan, StudyResult
from spuriverse.schema.train import TrainManifest
from spuriverse.study.data import COPY, Sources, heldout_path, open_sources, write_copy, write_subset
from spuriverse.study.plan import StudyOptions, plan_cells, resolved_specs, study_config
from spuriverse.study.splits import (
    Inventory,
    SeedSamples,
    StudyDataError,
    inventory,
    resolve_points,
    seed_samples,
)

PLAN = "plan.json"
CELL = "cell.json"
_OWN = {"data", "splits", ".spuriverse"}  # what an interrupted preparation leaves (and the folder's lock)


class StudyConfigMismatch(RuntimeError):
    """The study folder holds a study with another configuration."""


class StudyIncomplete(RuntimeError):
    """A summary was asked for while cells are unfinished."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cell_dir(out: Path, cell: CellPlan) -> Path:
    return out / "cells" / cell.name


def cell_done(out: Path, cell: CellPlan) -> bool:
    path = cell_dir(out, cell) / CELL
    try:
        return CellRecord.model_validate_json(path.read_text("utf-8")).name == cell.name
    except (OSError, ValueError):
        return False


def _check_config(out: Path, config: StudyConfig) -> StudyPlan:
    plan = StudyPlan.model_validate_json((out / PLAN).read_text("utf-8"))
    old, new = plan.config.model_dump(), config.model_dump()
    diffs = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old.get(k) != new[k]]
    if diffs:
        raise StudyConfigMismatch(f"{out} holds a study with a different configuration ({'; '.join(diffs)}). Use "
                                  "another --out (a re-run only continues an identical study).")
    return plan


@dataclass
class _Prepared:
    sources: Sources
    inv: Inventory
    plan: StudyPlan
    samples: dict[int, SeedSamples]


def _design(config: StudyConfig) -> _Prepared:
    """Load the benchmark, check the design and plan every cell; nothing is written (bad input fails here)."""
    sources = open_sources(config.data)
    inv = inventory(sources.items)
    need_ns = any(d in ("non_spurious", "mixed") for d in config.data_types)
    samples = {seed: seed_samples(inv, seed, control_scale=config.control_scale,
                                  non_spurious_scale=config.non_spurious_scale, test_fraction=config.test_fraction,
                                  val_fraction=config.val_fraction, need_non_spurious=need_ns)
               for seed in config.seeds}
    first = samples[config.seeds[0]]
    n_abl = len(first.ablation_order)
    points = resolve_points(config.ablation, n_abl) if config.ablation_data else []
    group_of = {it.item_id: it.group_id for it in sources.items if it.variant == "control"}
    cells = plan_cells(config, inv, group_of, samples, points)
    plan = StudyPlan(created=now_iso(), config=config, benchmark_fingerprint=sources.fingerprint,
                     n_groups=len(inv.groups), n_controls=inv.n_controls, ablation_points=points,
                     n_ablation_groups=n_abl, cells=cells)
    return _Prepared(sources, inv, plan, samples)


def _write_data(out: Path, p: _Prepared, progress: bool) -> None:
    plan, inv = p.plan, p.inv
    write_copy(p.sources, out / COPY, progress=progress)
    for seed, s in p.samples.items():
        split = SplitFile(seed=seed, test_fraction=plan.config.test_fraction, val_fraction=plan.config.val_fraction,
                          train=s.split["train"], validation=s.split["validation"], test=s.split["test"],
                          heldout_controls=sorted(s.heldout_controls),
                          validation_non_spurious=sorted(s.val_non_spurious), non_spurious=sorted(s.non_spurious),
                          ablation_order=s.ablation_order)
        (out / "splits").mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "splits" / f"seed-{seed}.json", split.model_dump_json(indent=2) + "\n")
        test_items = [i for g in s.split["test"] for v in ("anchors", "spurious", "counter")
                      for i in getattr(inv.groups[g], v)]
        write_subset(out / COPY, test_items + s.heldout_controls, out / heldout_path(seed))


def prepare(opts: StudyOptions) -> StudyPlan:
    """The study's plan: read from DIR/plan.json (the same configuration only), or made now (the data
    copied, the splits and held-out sets written). Bad input fails before DIR is created."""
    out = opts.out
    config = study_config(opts)
    if (out / PLAN).is_file():
        with folder_lock(out, stage="study", wait=True):
            return _check_config(out, config)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise StudyDataError(f"{out} is not prepared yet: prepare it in one process first (e.g. with --list-cells)")
    foreign = sorted(p.name for p in out.iterdir() if p.name.split(".lock")[0] not in _OWN) if out.is_dir() else []
    if foreign:
        raise StudyDataError(f"{out} is not empty ({', '.join(foreign[:3])}) and holds no {PLAN}: choose another --out")
    prepared = _design(config)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, stage="study", wait=True):
        if (out / PLAN).is_file():  # another process prepared it meanwhile
            return _check_config(out, config)
        _write_data(out, prepared, opts.progress)
        atomic_write_text(out / PLAN, prepared.plan.model_dump_json(indent=2) + "\n")
    return prepared.plan


def _free() -> None:
    """Release the last model's memory before the next one loads (GPU memory above all)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _train(opts: StudyOptions, plan: StudyPlan, cell: CellPlan, folder: Path) -> TrainManifest | None:
    """The cell's `spuriverse train` run (resumes; a finished one is read, not reloaded)."""
    from spuriverse.train import TrainOptions, run_train

    manifest_path = folder / "model" / "train.json"
    if manifest_path.is_file():
        done = TrainManifest.model_validate_json(manifest_path.read_text("utf-8"))
        if done.status == "complete":
            return done
    out = opts.out
    return run_train(TrainOptions(
        model=plan.config.model, model_revision=plan.config.model_revision, out=folder / "model",
        train_data=resolved_specs(cell.train_data, out), val_data=resolved_specs(cell.val_data, out),
        seed=cell.seed, progress=opts.progress, **opts.train,
    ))


def _evaluate(opts: StudyOptions, plan: StudyPlan, cell: CellPlan, folder: Path) -> None:
    """The cell's `spuriverse eval` run on its seed's held-out set (resumes)."""
    from spuriverse.eval.runner import EvalOptions, run_eval

    base = cell.kind == "base"
    run_eval(EvalOptions(
        model=plan.config.model if base else str((folder / "model").resolve()),
        model_revision=plan.config.model_revision if base else None,
        dataset=str((opts.out / cell.heldout).resolve()), output_dir=folder / "eval",
        strategy=opts.train.get("strategy", "direct"), n_bootstrap=plan.config.n_bootstrap,
        batch_size=opts.eval_batch_size, progress=opts.progress, backend_options=dict(opts.backend_options),
    ))


def run_cell(opts: StudyOptions, plan: StudyPlan, cell: CellPlan) -> None:
    """Train (unless base) and evaluate one cell, then mark it finished (`cell.json`)."""
    folder = cell_dir(opts.out, cell)
    t0 = time.perf_counter()
    manifest = None
    if cell.kind != "base":
        manifest = _train(opts, plan, cell, folder)
        _free()
    t1 = time.perf_counter()
    _evaluate(opts, plan, cell, folder)
    _free()
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if cell.kind != "base" and manifest is None:  # pragma: no cover (non-main ranks returned above)
        return
    record = CellRecord(name=cell.name, finished=now_iso(), eval_wall_s=time.perf_counter() - t1,
                        train_wall_s=None if manifest is None else manifest.wall_time_s,
                        global_steps=None if manifest is None else manifest.global_steps,
                        best_val_accuracy=None if manifest is None else manifest.best_val_accuracy,
                        resumed_from=[] if manifest is None else list(manifest.resumed_from))
    atomic_write_text(folder / CELL, record.model_dump_json(indent=2) + "\n")
    _log(f"study: {cell.name} finished in {time.perf_counter() - t0:.1f} s")


def _attempt(opts: StudyOptions, plan: StudyPlan, cell: CellPlan, *, wait: bool, strict: bool = False) -> bool:
    """Run the cell under its folder's lock. Another process holding it: False, or with `wait` / `strict`
    wait for it / raise `FolderBusy`."""
    folder = cell_dir(opts.out, cell)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(folder, stage="study cell", wait=wait):
            if not cell_done(opts.out, cell):
                try:
                    run_cell(opts, plan, cell)
                except Exception:
                    _log(f"study: cell {cell.index} ({cell.name}) failed; what it finished is kept (re-run to resume)")
                    raise
    except FolderBusy:
        if wait or strict:
            raise
        return False
    return True


def _describe(cell: CellPlan) -> str:
    if cell.kind == "base":
        return "the base model on the held-out set"
    what = cell.data_type if cell.kind == "data_type" else f"{cell.n_spurious} spurious {cell.ablation_data} correlations"
    return f"train on {what} ({cell.n_train} examples), then evaluate"


def run_cells(opts: StudyOptions, plan: StudyPlan, indices: list[int] | None = None) -> int:
    """Run the unfinished cells (all, or those of `indices`); returns how many ran here. A cell another
    process is running is skipped and waited for at the end; with `indices` that is an error
    (`FolderBusy`, naming the holder)."""
    todo = [c for c in plan.cells if (indices is None or c.index in indices) and not cell_done(opts.out, c)]
    busy: list[CellPlan] = []
    t0, ran = time.perf_counter(), 0
    for k, cell in enumerate(todo):
        eta = ""
        if ran:
            eta = f"; about {(time.perf_counter() - t0) / ran * (len(todo) - k) / 60:.1f} min left"
        _log(f"study: [{k + 1}/{len(todo)}] cell {cell.index} {cell.name}: {_describe(cell)}{eta}")
        if _attempt(opts, plan, cell, wait=False, strict=indices is not None):
            ran += 1
        else:
            _log(f"study: {cell.name} is being run by another process; coming back to it at the end")
            busy.append(cell)
    for cell in busy:
        _attempt(opts, plan, cell, wait=True)
    return ran


STUDY = "study.json"


def write_summary(opts: StudyOptions, plan: StudyPlan) -> StudyResult:
    """study.json, report.md and the plots (every cell must have finished)."""
    from spuriverse.study.report import write_report
    from spuriverse.study.summary import summarize

    missing = [c for c in plan.cells if not cell_done(opts.out, c)]
    if missing:
        names = ", ".join(f"{c.index} ({c.name})" for c in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise StudyIncomplete(f"{len(missing)} of {len(plan.cells)} cells have not finished: {names}. Run them "
                              "(re-run the study, or --cell K each), then --summarize")
    with folder_lock(opts.out, stage="study", wait=True):
        study = summarize(opts.out, plan)
        atomic_write_text(opts.out / STUDY, study.model_dump_json(indent=2) + "\n")
        write_report(study, opts.out)
    return study


def run_study(opts: StudyOptions, *, cell: int | None = None, summarize_only: bool = False) -> StudyResult | None:
    """Prepare the study, run its unfinished cells (or only cell `cell`) and, when all have finished,
    write the summary. Returns the summary (None after a single cell, or on non-main processes)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and cell is None:
        raise StudyDataError("under a multi-process launch run one cell at a time (--cell K): each training run "
                             "and evaluation is then data parallel")
    plan = prepare(opts)
    if summarize_only:
        return write_summary(opts, plan)
    if cell is not None:
        if not 0 <= cell < len(plan.cells):
            raise StudyDataError(f"--cell {cell}: this study has cells 0 to {len(plan.cells) - 1} (see --list-cells)")
        run_cells(opts, plan, [cell])
        return None
    run_cells(opts, plan)
    return write_summary(opts, plan)


def list_cells(opts: StudyOptions) -> list[tuple[CellPlan, str]]:
    """Every cell with its status: done, started (a training or evaluation folder exists) or todo.
    Prepares the study first (so a scheduler array can start on a prepared folder)."""
    plan = prepare(opts)
    out = []
    for cell in plan.cells:
        folder = cell_dir(opts.out, cell)
        started = (folder / "model" / "train.json").exists() or (folder / "eval").exists()
        out.append((cell, "done" if cell_done(opts.out, cell) else "started" if started else "todo"))
    return out
