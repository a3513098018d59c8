"""`spuriverse diagnose attribution`: attribution maps of a local model's multiple-choice answers.

Streams the selected items of a benchmark through the model in batches of same-sized images, runs each
method on a whole batch (IG: every step of every item in one forward/backward), and writes per item
and method the map (`.npz`), then one durable row. A re-run resumes: only (item, method) pairs without
a row are computed. The folder is locked for the run. Under `accelerate launch` / `torchrun` each process
takes every world-th item; the main process merges the rows and writes the summary and the report.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from spuriverse.data import Benchmark, LoadedItem, load_benchmark
from spuriverse.diagnose.attribution.engine import Attributor, Batch, baseline_description
from spuriverse.diagnose.attribution.files import MANIFEST, ROWS, read_rows, shard, write_map
from spuriverse.diagnose.attribution.methods import METHODS, MethodParams, method_space
from spuriverse.diagnose.attribution.metrics import METRICS, MaskError, check_mask, deletion_insertion, localisation, robustness
from spuriverse.diagnose.attribution.target import invariance_note
from spuriverse.eval.prompts import render_prompt
from spuriverse.provenance import harness_info, now_iso, package_versions
from spuriverse.locking import folder_lock
from spuriverse.models.base import Request
from spuriverse.models.registry import ModelSpec, build_model, resolve_model
from spuriverse.persist import JsonlAppender, atomic_write_text
from spuriverse.schema import Item, Strategy
from spuriverse.schema.attribution import Baseline, Space, Target
from spuriverse.schema.attribution import AttributionConfig, AttributionManifest, AttributionRow, AttributionSummary


class AttributionInputError(ValueError):
    """An item, mask or model that cannot be attributed; the message names it."""


class AttributionConfigMismatch(ValueError):
    """The output folder holds an attribution run with another configuration."""


@dataclass
class AttributionOptions:
    model: str
    dataset: str
    out: Path
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    model_revision: str | None = None
    items: list[str] | None = None
    groups: list[str] | None = None
    variants: list[str] | None = None
    limit: int | None = None
    methods: list[str] = field(default_factory=lambda: ["ig"])
    input: Literal["pixels", "embedding"] = "pixels"
    target: Target = "predicted"
    raw_logits: bool = False
    baseline: Baseline = "blurred"
    params: MethodParams = field(default_factory=MethodParams)
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    robustness_samples: int = 4
    sanity_items: int = 8
    core_mask_column: str = "core_mask"
    cue_mask_column: str = "cue_mask"
    strategy: Strategy = "direct"
    batch_size: int = 8
    max_rows: int | None = None
    n_bootstrap: int = 1000
    progress: bool = True
    wait: bool = False
    backend_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttributionRun:
    opts: AttributionOptions
    bench: Benchmark
    spec: ModelSpec
    config: AttributionConfig
    run_dir: Path
    state: Any | None
    rank: int = 0
    world: int = 1


@dataclass
class SelectedItem:
    """A selected item, loaded: its request, masks and benchmark position."""

    index: int
    item: Item
    request: Request
    core: np.ndarray | None
    cue: np.ndarray | None


def _dist_state() -> Any | None:
    """accelerate's PartialState under a multi-process launch, else None (as `spuriverse eval`)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def local_spec(model: str, revision: str | None = None) -> ModelSpec:
    """The registry's entry for `model`, refused unless it is a local (hf) model: attribution needs
    gradients through the weights."""
    spec = resolve_model(model, revision)
    if spec.backend != "hf":
        kind = "an API model" if spec.backend == "openai" else f"a {spec.backend} model"
        raise AttributionInputError(
            f"{spec.alias} is {kind}: attribution needs the gradients of a local model's weights. Use a local "
            "model (an hf alias such as llava-1.5, a hub id or a folder saved with save_pretrained)")
    return spec


def _resolve(opts: AttributionOptions) -> AttributionRun:
    spec = local_spec(opts.model, opts.model_revision)
    unknown = [m for m in opts.methods if m not in METHODS]
    if unknown or not opts.methods:
        raise AttributionInputError(f"unknown attribution method(s) {unknown}; available: {', '.join(METHODS)}")
    bad_metrics = [m for m in opts.metrics if m not in METRICS]
    if bad_metrics:
        raise AttributionInputError(f"unknown metric(s) {bad_metrics}; available: {', '.join(METRICS)}")
    state = _dist_state()
    bench = load_benchmark(opts.dataset, opts.config, opts.revision, opts.split)
    p = opts.params
    config = AttributionConfig(
        model=spec.alias, backend=spec.backend, checkpoint=spec.checkpoint, revision=spec.revision,
        dataset=opts.dataset, config=opts.config, split=opts.split, dataset_revision=opts.revision,
        fingerprint=bench.fingerprint, strategy=opts.strategy, methods=list(opts.methods), input=opts.input,
        target=opts.target, raw_logits=opts.raw_logits, baseline=opts.baseline, ig_steps=p.ig_steps,
        smooth_samples=p.smooth_samples, smooth_noise=p.smooth_noise, occlusion_patch=p.occlusion_patch,
        metrics=list(opts.metrics), robustness_samples=opts.robustness_samples,
        core_mask_column=opts.core_mask_column, cue_mask_column=opts.cue_mask_column, seed=p.seed)
    run_dir = Path(opts.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    return AttributionRun(opts, bench, spec, config, run_dir, state, rank, world)


def _check_config(run: AttributionRun) -> AttributionManifest | None:
    path = run.run_dir / MANIFEST
    if not path.exists():
        return None
    old = AttributionManifest.model_validate_json(path.read_text("utf-8"))
    diffs = [f"{k}: {getattr(old.config, k)!r} -> {getattr(run.config, k)!r}"
             for k in AttributionConfig.model_fields if getattr(old.config, k) != getattr(run.config, k)]
    if diffs:
        raise AttributionConfigMismatch(
            f"{run.run_dir} holds an attribution run with another configuration ({'; '.join(diffs)}); use another --out")
    return old


def select_items(bench: Benchmark, opts: AttributionOptions) -> list[tuple[int, Item]]:
    """(index, item) of the items the options select, in benchmark order (a metadata pass)."""
    wanted_ids = set(opts.items or [])
    out = []
    for index, item in enumerate(bench.items()):
        if opts.items is not None and item.item_id not in wanted_ids:
            continue
        if opts.groups is not None and item.group_id not in opts.groups:
            continue
        if opts.variants is not None and item.variant not in opts.variants:
            continue
        out.append((index, item))
    missing = wanted_ids - {it.item_id for _, it in out} if opts.items is not None else set()
    if missing:
        raise AttributionInputError(f"no item {', '.join(sorted(map(repr, missing))[:5])} in {opts.dataset} "
                                    "(or excluded by --groups / --variants)")
    out = out[: opts.limit] if opts.limit is not None else out
    if not out:
        raise AttributionInputError("no item selected (check --items, --groups, --variants, --limit)")
    return out


def _mask(li: LoadedItem, column: str) -> np.ndarray | None:
    cell = li.extras.get(column)
    if isinstance(cell, dict):
        cell = cell.get("bytes")
    if cell is None:
        return None
    try:
        with Image.open(io.BytesIO(cell)) as im:
            arr = np.asarray(im.convert("L")) > 127
    except Exception as exc:  # PIL raises many types for corrupt input
        raise AttributionInputError(f"item {li.item.item_id!r}: {column} is not a readable image ({exc})") from exc
    try:
        return check_mask(arr, li.image.size if li.image else (0, 0), f"item {li.item.item_id!r}: {column}")
    except MaskError as exc:
        raise AttributionInputError(str(exc)) from None


def load_item(run: AttributionRun, li: LoadedItem) -> SelectedItem:
    """The item's request and masks; an item without a usable image is an error naming it."""
    if li.image is None:
        raise AttributionInputError(
            f"item {li.item.item_id!r} has no usable image ({li.image_error}): attribution needs the image the "
            "model sees; leave the item out with --items / --groups / --variants")
    rp = render_prompt(li.item.question, li.item.options, run.opts.strategy)
    req = Request(system=rp.system, prompt=rp.user, image=li.image, letters=rp.letters, key=li.item.item_id)
    return SelectedItem(li.index, li.item, req, _mask(li, run.opts.core_mask_column), _mask(li, run.opts.cue_mask_column))


def item_batches(run: AttributionRun, loaded: Iterator[LoadedItem]) -> Iterator[list[SelectedItem]]:
    """Batches of `batch_size` items whose images share one size (in order of first appearance)."""
    buckets: dict[tuple[int, int], list[SelectedItem]] = {}
    for li in loaded:
        it = load_item(run, li)
        bucket = buckets.setdefault(it.request.image.size, [])  # type: ignore[union-attr]
        bucket.append(it)
        if len(bucket) >= run.opts.batch_size:
            yield buckets.pop(it.request.image.size)  # type: ignore[union-attr]
    yield from (b for b in buckets.values() if b)


def _load_model(run: AttributionRun, manifest: AttributionManifest | None) -> Attributor:
    o = run.opts
    overrides = {k: v for k, v in o.backend_options.items() if v is not None}
    if run.state is not None:
        overrides.setdefault("device", str(run.state.device))
    backend = build_model(run.spec, batch_size=o.batch_size, **overrides)
    att = Attributor(backend, target=o.target, raw=o.raw_logits, baseline=o.baseline, max_rows=o.max_rows)
    import captum

    manifest = AttributionManifest(
        created=manifest.created if manifest else now_iso(), config=run.config, model=backend.info,
        benchmark=run.bench.info(), invariance=invariance_note(o.target, o.raw_logits),
        baseline_description=baseline_description(o.baseline), harness=harness_info(),
        packages={**package_versions(), "captum": captum.__version__})
    if run.rank == 0:
        atomic_write_text(run.run_dir / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return att


def _item_scores(run: AttributionRun, att: Attributor, batch: Batch, method: str, space: str, attribution: Any,
                 rasters: list[np.ndarray], items: list[SelectedItem]) -> list[dict[str, Any]]:
    """Each item's metric fields of its row."""
    metrics, p = run.opts.metrics, run.opts.params
    out: list[dict[str, Any]] = [{} for _ in items]
    for d, it, r in zip(out, items, rasters):
        loc = localisation(r, it.core, it.cue)
        if "mass" in metrics:
            d.update(core_mass=loc.core_mass, cue_mass=loc.cue_mass, core_area=loc.core_area, cue_area=loc.cue_area)
        if "pointing" in metrics:
            d["pointing"] = loc.pointing
    if {"deletion", "insertion"} & set(metrics):
        for d, (dele, ins) in zip(out, deletion_insertion(att, batch, rasters)):
            d.update({k: v for k, v in (("deletion_auc", dele), ("insertion_auc", ins)) if k.split("_")[0] in metrics})
    if {"infidelity", "sensitivity"} & set(metrics):
        rob = robustness(att, batch, method, space, p, attribution, run.opts.robustness_samples)
        for d, (infid, sens) in zip(out, rob):
            d.update({k: v for k, v in (("infidelity", infid), ("sensitivity_max", sens))
                      if k.split("_")[0] in metrics})
    return out


def _rows(run: AttributionRun, batch: Batch, method: str, space: str, attribution: Any, rasters: list[np.ndarray],
          items: list[SelectedItem], scores: list[dict[str, Any]], seconds: float) -> Iterator[AttributionRow]:
    for i, (it, r, extra) in enumerate(zip(items, rasters, scores)):
        letters = it.request.letters
        lp = {x: float(batch.logprobs[i, k]) for k, x in enumerate(letters)}
        pred = letters[int(batch.logprobs[i, : len(letters)].argmax())]
        ig: dict[str, Any] = {} if attribution.delta is None else {
            "ig_delta": float(attribution.delta[i]), "score": float(attribution.score[i]),
            "score_baseline": float(attribution.score_baseline[i])}
        rel = write_map(run.run_dir, it.item.item_id, method, r)
        yield AttributionRow(
            index=it.index, item_id=it.item.item_id, group_id=it.item.group_id, variant=it.item.variant,
            method=method, space=cast(Space, space), target=run.opts.target, raw_logits=run.opts.raw_logits,
            answer=it.item.answer, prediction=pred, correct=pred == it.item.answer, logprobs=lp,
            target_weights={x: float(batch.weights[i, k]) for k, x in enumerate(letters) if batch.weights[i, k]},
            width=r.shape[1], height=r.shape[0], map_file=rel.as_posix(), map_sum=float(r.sum()),
            map_abs_sum=float(np.abs(r).sum()), seconds=seconds, **ig, **extra)


def _attribute_batch(run: AttributionRun, att: Attributor, items: list[SelectedItem], done: set[tuple[str, str]],
                     writer: JsonlAppender, bar: Any) -> None:
    batch = att.prepare([it.item.item_id for it in items], [it.request for it in items], [it.item.answer for it in items])
    for method in run.opts.methods:
        idx = [i for i, it in enumerate(items) if (it.item.item_id, method) not in done]
        if not idx:
            continue
        sub, sub_items = batch.select(idx), [items[i] for i in idx]
        space = method_space(method, run.opts.input)
        t0 = time.perf_counter()
        attribution = METHODS[method].run(att, sub, space, run.opts.params)
        rasters = att.rasters(attribution, sub)
        scores = _item_scores(run, att, sub, method, space, attribution, rasters, sub_items)
        seconds = (time.perf_counter() - t0) / len(idx)
        for row in _rows(run, sub, method, space, attribution, rasters, sub_items, scores, seconds):
            writer.append(row)
            done.add((row.item_id, method))
            bar.update(1)


def _attribute(run: AttributionRun, att: Attributor, mine: list[tuple[int, Item]], done: set[tuple[str, str]]) -> None:
    wanted = {i for i, _ in mine}
    todo = sum((it.item_id, m) not in done for _, it in mine for m in run.opts.methods)
    bar = tqdm(total=todo, disable=not run.opts.progress or run.rank != 0, unit="map", dynamic_ncols=True,
               desc=f"attribution {run.spec.alias}")
    with JsonlAppender(shard(run.run_dir, ROWS, run.rank, run.world)) as writer:
        for items in item_batches(run, run.bench.iter_items(lambda i, _: i in wanted)):
            _attribute_batch(run, att, items, done, writer, bar)
    bar.close()


def run_attribution(opts: AttributionOptions) -> AttributionSummary | None:
    """Run (or resume) an attribution run; returns the summary (None on non-main processes)."""
    run = _resolve(opts)
    with folder_lock(run.run_dir, stage="diagnose attribution", wait=opts.wait):
        return _run_locked(run)


def _run_locked(run: AttributionRun) -> AttributionSummary | None:
    from spuriverse.diagnose.attribution.report import finish
    from spuriverse.diagnose.attribution.sanity import sanity_todo, run_sanity

    manifest = _check_config(run)
    selected = select_items(run.bench, run.opts)
    done = {(r.item_id, r.method) for r in read_rows(run.run_dir)}
    mine = [(i, it) for k, (i, it) in enumerate(selected) if k % run.world == run.rank
            and any((it.item_id, m) not in done for m in run.opts.methods)]
    sanity = sanity_todo(run, selected)
    if mine or sanity or manifest is None:
        att = _load_model(run, manifest)
        if mine:
            _attribute(run, att, mine, done)
        if sanity:
            run_sanity(run, att, sanity)
    if run.state is not None:
        run.state.wait_for_everyone()
        if not run.state.is_main_process:
            return None
    return finish(run, selected)
