"""`spuriverse eval`: stream a benchmark through a model, one durable sample line at a time.

Task = dataset + strategy (prompt) + scorer; the model only sees `Request`s. Runs resume by default:
a re-run asks only what `samples.jsonl` lacks. Under `accelerate launch` / `torchrun` each process
takes every world_size-th item and appends to its own shard; the main process merges them into the
same canonical file a single process writes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from spuriverse.persist import atomic_write_text
from spuriverse.data import Benchmark, LoadedItem, load_benchmark
from spuriverse.eval.parsing import PARSER_VERSION, best_letter, parse_answer
from spuriverse.locking import folder_lock
from spuriverse.eval.prefetch import prefetch
from spuriverse.eval.prompts import Template, get_template, render_prompt, rotate_options
from spuriverse.eval.results import MANIFEST, RESULTS, build_result, file_sha256, write_result
from spuriverse.eval.report import REPORT_MD
from spuriverse.eval.samples import (SAMPLES, SampleWriter, canonicalize_in_place, read_run_samples, sample_key,
                                     shard_files, write_canonical)
from spuriverse.provenance import harness_info, now_iso, package_versions
from spuriverse.models.base import LVLM, Generation, OptionScores, Request
from spuriverse.models.presets import GenerationPreset, generation_preset
from spuriverse.models.registry import AUTO_SCORING, ModelSpec, build_model, resolve_model
from spuriverse.schema import ColumnMapping, GenerationInfo, Item, RunConfig, RunManifest, RunResult, Sample

# A chunk handed to the model is also capped by image memory (decoded RGB pixels, or encoded bytes
# for backends that send bytes), so large images keep memory bounded whatever the chunk size.
CHUNK_IMAGE_BYTES = 300_000_000


class RunConfigMismatch(RuntimeError):
    """The output folder holds a run with another configuration."""


@dataclass
class EvalOptions:
    model: str
    dataset: str
    output_dir: Path
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    model_revision: str | None = None
    side_tables: list[str] | None = None
    # A source VQA benchmark read through a column mapping (`curate mine --source`); the mapped
    # items' source name and category enter the dataset fingerprint, so they are part of the run's
    # configuration.
    mapping: ColumnMapping | None = None
    source_name: str | None = None
    strategy: str = "direct"
    scoring: str = "auto"
    batch_size: int | None = None
    limit: int | None = None
    seed: int = 0
    circular: bool = False
    blind: bool = False
    max_new_tokens: int | None = None
    preset: str | None = None  # a named generation preset (presets.toml), e.g. "paper"
    n_bootstrap: int = 1000
    model_note: str | None = None  # shown in the report (e.g. "random weights")
    progress: bool = True
    wait: bool = False  # another process holds the output folder: wait for it (else fail at once)
    report: bool = True
    score: bool = True  # False: samples only (canonical samples.jsonl, no results.json); returns None
    backend_options: dict[str, Any] = field(default_factory=dict)  # base_url, api_key, device, ...


@dataclass
class _Pending:
    """One request in flight and what is needed to turn its response into a sample."""

    index: int
    item: Item
    rotation: int | None
    options: list[str]
    answer: str


def _dist_state() -> Any | None:
    """accelerate's PartialState when launched with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # Plain PartialState() on a CPU-only machine under torchrun makes every rank do everything.
    return PartialState(cpu=not torch.cuda.is_available())


def _choose_scoring(requested: str, strategy: str, backend: str) -> str:
    if requested == "auto":
        return AUTO_SCORING[backend] if strategy == "direct" else "generate"
    if requested == "logprob" and strategy != "direct":
        raise ValueError(f"--scoring logprob needs --strategy direct ({strategy} reasons before answering)")
    if requested not in ("logprob", "generate"):
        raise ValueError(f"unknown scoring {requested!r} (auto, logprob, generate)")
    return requested


def _check_config(run_dir: Path, config: RunConfig) -> RunManifest | None:
    path = run_dir / MANIFEST
    if not path.exists():
        return None
    old = RunManifest.model_validate_json(path.read_text("utf-8"))
    diffs = [
        f"{k}: {getattr(old.config, k)!r} -> {getattr(config, k)!r}"
        for k in RunConfig.model_fields
        if getattr(old.config, k) != getattr(config, k)
    ]
    if diffs:
        raise RunConfigMismatch(
            f"{run_dir} holds a run with a different configuration ({'; '.join(diffs)}). "
            "Use another --output-dir (resume only continues an identical configuration)."
        )
    return old


LOGPROB_FLOOR = -1e9  # -inf (possible in half precision) is stored as this: NaN/inf are not JSON


def _finite(lps: dict[str, float] | None) -> dict[str, float] | None:
    if lps is None:
        return None
    return {k: (v if math.isfinite(v) else LOGPROB_FLOOR) for k, v in lps.items() if not math.isnan(v)}


def _make_sample(p: _Pending, scoring: str, prompt_hash: str, response: OptionScores | Generation | None,
                 image_error: str | None = None) -> Sample:
    item = p.item
    base: dict[str, Any] = dict(
        index=p.index, item_id=item.item_id, rotation=p.rotation, group_id=item.group_id,
        variant=item.variant, source_benchmark=item.source_benchmark, category=item.category,
        spurious_attribute=item.spurious_attribute, n_options=len(p.options), answer=p.answer,
        scoring=scoring, prompt_hash=prompt_hash, timestamp=now_iso(),
    )
    if image_error is not None:
        return Sample(**base, prediction=None, correct=False, parse_status=None,
                      error=f"image: {image_error}", error_type="image")
    assert response is not None
    base.update(attempts=response.attempts, latency_s=response.latency_s)
    if response.error is not None:
        return Sample(**base, prediction=None, correct=False, parse_status=None,
                      error=response.error.message, error_type=response.error.type,
                      raw=getattr(response, "text", None))
    if isinstance(response, OptionScores):
        lps = _finite(response.logprobs) or {}
        pred = best_letter(lps)
        return Sample(**base, prediction=pred, correct=pred == p.answer,
                      parse_status="logprob" if pred else "unparsed", logprobs=lps or None)
    parsed = parse_answer(response.text, p.options)
    return Sample(**base, prediction=parsed.letter, correct=parsed.letter == p.answer,
                  parse_status=parsed.status, raw=response.text, logprobs=_finite(response.logprobs),
                  usage=response.usage)


def _expand(li: LoadedItem, done: set, circular: bool) -> Iterator[_Pending]:
    item = li.item
    rotations = range(len(item.options)) if circular else [None]
    for r in rotations:
        if (item.item_id, r) in done:
            continue
        opts, ans = (rotate_options(item.options, item.answer, r) if r is not None
                     else (item.options, item.answer))
        yield _Pending(li.index, item, r, opts, ans)


@dataclass
class _Run:
    """One evaluation as resolved at its start: what every step below needs."""

    opts: EvalOptions
    bench: Benchmark
    spec: ModelSpec
    scoring: str
    template: Template
    max_new: int
    config: RunConfig
    run_dir: Path
    state: Any | None  # accelerate's PartialState under a multi-process launch
    rank: int
    world: int
    timings: dict[str, float]
    t_start: float
    preset: GenerationPreset | None = None


@dataclass
class _Plan:
    """Which (item, rotation) keys this process still has to ask: not in `samples.jsonl` yet, within
    `--limit`, and in this process's share (every world-th item)."""

    done: set[tuple[str, int | None]]
    limit: int
    circular: bool
    rank: int
    world: int

    def keys(self, item: Item) -> list[tuple[str, int | None]]:
        return [(item.item_id, r) for r in (range(len(item.options)) if self.circular else [None])]

    def want(self, index: int, item: Item) -> bool:
        if index >= self.limit or index % self.world != self.rank:
            return False
        return any(k not in self.done for k in self.keys(item))

    def todo(self, bench: Benchmark) -> int:
        """Keys this process still has to ask (a metadata pass: no image is decoded)."""
        return sum(sum(k not in self.done for k in self.keys(it))
                   for i, it in enumerate(bench.items()) if self.want(i, it))  # fmt: skip


def _resolve_run(opts: EvalOptions) -> _Run:
    """Load the benchmark, resolve the model and the run configuration; create the run folder."""
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    state = _dist_state()
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)

    bench = load_benchmark(opts.dataset, opts.config, opts.revision, opts.split, opts.side_tables,
                           mapping=opts.mapping, source_name=opts.source_name)
    timings["load_benchmark_s"] = time.perf_counter() - t_start
    spec = resolve_model(opts.model, opts.model_revision)
    if opts.backend_options.get("quantization") and spec.backend != "hf":
        raise ValueError(f"--quantization applies to local (hf) models; {spec.alias} is a {spec.backend} model")
    preset: GenerationPreset | None = generation_preset(opts.preset, spec.alias, opts.seed) if opts.preset else None
    requested = preset.scoring if preset and opts.scoring == "auto" else opts.scoring
    scoring = _choose_scoring(requested, opts.strategy, spec.backend)
    template = get_template(opts.strategy)
    max_new = opts.max_new_tokens or (preset and preset.max_new_tokens) or template.max_new_tokens
    config = RunConfig(
        model=spec.alias, backend=spec.backend, checkpoint=spec.checkpoint, revision=spec.revision,
        dataset=opts.dataset, config=opts.config, split=opts.split, dataset_revision=opts.revision,
        fingerprint=bench.fingerprint, strategy=opts.strategy, scoring=scoring, circular=opts.circular,
        blind=opts.blind, seed=opts.seed, prompt_hash=template.hash, parser_version=PARSER_VERSION,
        max_new_tokens=max_new, preset=opts.preset, quantization=opts.backend_options.get("quantization"),
    )
    run_dir = Path(opts.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return _Run(opts, bench, spec, scoring, template, max_new, config, run_dir, state, rank, world, timings,
                t_start, preset)


def _load_model(run: _Run, manifest: RunManifest | None) -> tuple[LVLM, RunManifest]:
    """Build the model and (re)write the run manifest with what it reports about itself."""
    opts, spec, state = run.opts, run.spec, run.state
    t0 = time.perf_counter()
    overrides = {**(run.preset.backend_options if run.preset else {}), **opts.backend_options}
    overrides["batch_size"] = opts.batch_size
    if state is not None:
        overrides.setdefault("device", str(state.device))
    model = build_model(spec, seed=opts.seed, **overrides)
    if run.scoring == "logprob" and not model.supports_logprobs:
        model.close()
        raise ValueError(f"{spec.alias} returns no log-probs: use --scoring generate")
    model.prepare(run.bench.answer_counts)
    run.timings["load_model_s"] = time.perf_counter() - t0
    info = model.info.model_copy(update={"alias": spec.alias, "blind": opts.blind, "note": opts.model_note})
    manifest = RunManifest(
        created=manifest.created if manifest else now_iso(), config=run.config,
        benchmark=run.bench.info(), model=info,
        generation=GenerationInfo(max_new_tokens=run.max_new, preset=opts.preset,
                                  top_logprobs=model.top_logprobs, **model.generation),
        harness=harness_info(), packages=package_versions(), limit=opts.limit,
    )
    if run.rank == 0:
        atomic_write_text(run.run_dir / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return model, manifest


def _infer(run: _Run, model: LVLM, plan: _Plan, todo: int) -> None:
    """Ask the model every planned request, in chunks, appending one durable sample per answer to
    this process's shard."""
    opts, scoring, template = run.opts, run.scoring, run.template
    shard = run.run_dir / (SAMPLES if run.world == 1 else f"samples.rank{run.rank}.jsonl")
    bar = tqdm(total=todo,
               disable=not opts.progress or run.rank != 0, desc=f"eval {run.spec.alias}", unit="q",
               dynamic_ncols=True)
    method = model.score_options if scoring == "logprob" else model.generate
    with SampleWriter(shard) as writer:
        pending: list[tuple[_Pending, Request]] = []
        held = 0
        keep_pixels = model.needs_pixels

        def flush() -> None:
            nonlocal held
            held = 0
            reqs = [r for _, r in pending]
            for pos, response in method(reqs):
                writer.write(_make_sample(pending[pos][0], scoring, template.hash, response))
                bar.update(1)
            pending.clear()

        # Items (with decoded images) are produced ahead in a thread: decoding overlaps inference.
        for li in prefetch(run.bench.iter_items(plan.want, keep_pixels), 64):
            for p in _expand(li, plan.done, opts.circular):
                if li.image_error is not None and not opts.blind:
                    writer.write(_make_sample(p, scoring, template.hash, None, li.image_error))
                    bar.update(1)
                    continue
                rp = render_prompt(li.item.question, p.options, opts.strategy)
                key = li.item.item_id if p.rotation is None else f"{li.item.item_id}#{p.rotation}"
                pending.append((p, Request(system=rp.system, prompt=rp.user,
                                           image=None if opts.blind else li.image,
                                           letters=rp.letters, max_new_tokens=run.max_new, key=key)))
                if li.image is not None and not opts.blind:
                    w, h = li.image.size
                    held += 3 * w * h if keep_pixels else len(li.image.data)
                if len(pending) >= model.chunk_size or held >= CHUNK_IMAGE_BYTES:
                    flush()
        if pending:
            flush()
    bar.close()
    model.close()


def _finish(run: _Run, manifest: RunManifest, todo: int) -> RunResult | None:
    """Wait for the other processes, merge their shards into the canonical `samples.jsonl`, score and
    write the result (main process only)."""
    opts, run_dir, timings = run.opts, run.run_dir, run.timings
    if run.state is not None:
        run.state.wait_for_everyone()
        if not run.state.is_main_process:
            return None
    if not opts.score:  # memory stays flat in benchmark size: no sample is held
        canonicalize_in_place(run_dir)
        return None
    samples = read_run_samples(run_dir)
    write_canonical(run_dir, samples)
    timings["total_s"] = time.perf_counter() - run.t_start
    timings["processes"] = run.world
    if todo:
        timings["samples_per_s"] = todo / max(timings["inference_s"], 1e-9)
    result = build_result(manifest, samples, timings=timings, n_bootstrap=opts.n_bootstrap,
                          samples_sha256=file_sha256(run_dir / SAMPLES))
    write_result(run_dir, result, report=opts.report)
    return result


def _finished_result(run_dir: Path, opts: EvalOptions) -> RunResult | None:
    """The saved result of a finished run, if it still describes the samples file exactly."""
    path = run_dir / RESULTS
    if shard_files(run_dir) or not path.is_file() or (opts.report and not (run_dir / REPORT_MD).is_file()):
        return None
    try:
        result = RunResult.model_validate_json(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if result.bootstrap.iterations != opts.n_bootstrap or result.samples_sha256 != file_sha256(run_dir / SAMPLES):
        return None
    return result


def run_eval(opts: EvalOptions) -> RunResult | None:
    """Run (or resume) an evaluation; returns the scored result (None on non-main processes).

    The output folder is locked for the whole run (`spuriverse.locking`): a second `eval` on the same
    folder fails at once naming the holder, or waits with ``opts.wait``. Under data parallelism every
    rank holds its own lock (rank 0 the folder's), so a second launch fails on every rank."""
    run = _resolve_run(opts)
    with folder_lock(run.run_dir, stage="eval", wait=opts.wait):
        return _run_locked(run)


def _run_locked(run: _Run) -> RunResult | None:
    opts = run.opts
    manifest = _check_config(run.run_dir, run.config)
    done = {sample_key(s) for s in read_run_samples(run.run_dir)}
    limit = len(run.bench) if opts.limit is None else min(opts.limit, len(run.bench))
    plan = _Plan(done, limit, opts.circular, run.rank, run.world)
    todo = plan.todo(run.bench)
    if not todo and manifest is not None and opts.score and run.world == 1:
        finished = _finished_result(run.run_dir, opts)
        if finished is not None:  # nothing to ask, nothing to rewrite: works on a read-only folder
            return finished

    model = None
    if todo or manifest is None:
        model, manifest = _load_model(run, manifest)
    t_inf = time.perf_counter()
    if model is not None:
        _infer(run, model, plan, todo)
    run.timings["inference_s"] = time.perf_counter() - t_inf
    assert manifest is not None  # written above when the folder had none
    return _finish(run, manifest, todo)
