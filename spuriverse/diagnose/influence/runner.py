"""`spuriverse diagnose influence`: which training examples taught a fine-tuned model its answers.

Layout of `--out` (locked while a diagnosis runs; every file written durably):
- `influence.json`: the manifest (config, sign convention, sizes, timings, versions);
- `factors/`: what the method fitted once (kronfluence's factors), reused on a re-run;
- `queries.jsonl`: one record per query, appended as each batch of queries is scored (a re-run
  resumes after the last complete batch): the model's answer, the measurement, top-k supporting and
  opposing training examples, the spurious-support ratio;
- `scores/`: the full scores of each batch (`NNNNN.npz`: query ids, training ids, scores);
- `self_influence.jsonl`: every training example's self-influence and loss;
- `summary.json`, `report.md`, `report.html`, `images/`: the findings.

Every input is checked before anything is written (see `trainrun`).
"""

from __future__ import annotations

import io
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spuriverse.diagnose.influence.backends import BackendSettings, InfluenceBackend, build_backend, get_method
from spuriverse.diagnose.influence.lvlm import LVLMProblem, lora_modules
from spuriverse.diagnose.influence.problem import SIGN_CONVENTION
from spuriverse.diagnose.influence.support import cue_key, group_rows, cluster_mean, support_ratio, top_k
from spuriverse.diagnose.influence.trainrun import InfluenceInputError, TrainRun, load_model, load_queries, read_run
from spuriverse.provenance import harness_info, now_iso, package_versions
from spuriverse.locking import LOCK_NAME, folder_lock
from spuriverse.persist import JsonlAppender, atomic_write_jsonl, atomic_write_text, atomic_writer, read_jsonl
from spuriverse.schema.core import config_diffs
from spuriverse.schema.influence import (
    InfluenceConfig,
    InfluenceManifest,
    InfluenceSummary,
    QueryInfluence,
    SelfInfluenceRow,
)
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train.data import TrainExample, summarize

MANIFEST, QUERIES, SELF, SUMMARY = "influence.json", "queries.jsonl", "self_influence.jsonl", "summary.json"


class InfluenceConfigMismatch(ValueError):
    """`--out` holds a diagnosis with another configuration."""


@dataclass
class InfluenceOptions:
    train_run: Path
    queries: list[TrainDataSpec]
    out: Path
    items: list[str] | None = None
    method: str = "ekfac"
    measurement: str = "contrast"
    top_k: int = 20
    damping: float | None = None
    cue_column: str = "spurious_attribute"
    track: str | None = None  # a regex: only the LoRA modules whose names it finds (large models)
    train_data: list[TrainDataSpec] | None = None
    model: Path | None = None
    batch_size: int = 8
    query_batch_size: int = 32
    device: str | None = None
    seed: int = 0
    progress: bool = True
    report: bool = True
    n_bootstrap: int = 2000


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_out(out: Path, config: InfluenceConfig) -> InfluenceManifest | None:
    path = out / MANIFEST
    if not path.exists():
        if out.is_dir() and any(not p.name.startswith(LOCK_NAME) for p in out.iterdir()):
            raise InfluenceConfigMismatch(f"{out} is not empty and holds no {MANIFEST}: choose another --out")
        return None
    old = InfluenceManifest.model_validate_json(path.read_text("utf-8"))
    diffs = config_diffs(old.config, config)
    if diffs:
        raise InfluenceConfigMismatch(f"{out} holds a diagnosis with a different configuration ({'; '.join(diffs)}). "
                                      "Use another --out (a re-run only resumes an identical configuration).")
    return old


def _inputs(opts: InfluenceOptions) -> tuple[TrainRun, list[TrainExample], Any, Any, InfluenceConfig]:
    """Everything checked and loaded; nothing written."""
    method = get_method(opts.method)
    if not method.lvlm:
        raise InfluenceInputError(f"--method {opts.method} ({method.summary}) does not scale to a vision-language "
                                  "model; use ekfac, kfac, datainf or tracin")
    if opts.top_k < 1:
        raise InfluenceInputError("--top-k must be at least 1")
    if opts.track is not None:
        _pattern(opts.track)
    run = read_run(opts.train_run, opts.train_data)
    queries = load_queries(opts.queries, opts.items)
    backend, model, folder, digest = load_model(run, opts.model, device=opts.device, batch_size=opts.batch_size)
    config = InfluenceConfig(
        train_run=str(run.folder), train_fingerprint=run.manifest.config.train_fingerprint, model=str(folder),
        weights_sha256=digest, queries=list(opts.queries), items=opts.items,
        query_fingerprint=summarize(queries).fingerprint, method=opts.method,
        measurement=opts.measurement,  # checked by LVLMProblem / argparse
        top_k=opts.top_k, damping=opts.damping, cue_column=opts.cue_column, track=opts.track,
        batch_size=opts.batch_size,
        query_batch_size=opts.query_batch_size, seed=opts.seed,
    )
    return run, queries, backend, model, config


def run_influence(opts: InfluenceOptions) -> InfluenceManifest:
    """Diagnose (or resume) into `opts.out`; returns the completed manifest."""
    run, queries, backend, model, config = _inputs(opts)
    out = Path(opts.out)
    old = _check_out(out, config)
    if old is not None and old.status == "complete":
        _log(f"spuriverse diagnose influence: {out} is complete for this configuration; nothing to do")
        return old
    problem = LVLMProblem(backend, model, run.train, queries, objective=run.manifest.config.objective,
                          strategy=run.manifest.config.strategy, vocab_weight=run.manifest.config.vocab_weight,
                          measurement=opts.measurement, candidates=_candidates(model, opts.track))
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, stage="diagnose influence"):
        old = _check_out(out, config)
        manifest = _start_manifest(config, problem, old, model)
        atomic_write_text(out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
        settings = BackendSettings(damping=opts.damping, batch_size=opts.batch_size,
                                   query_batch_size=opts.query_batch_size, seed=opts.seed, progress=opts.progress)
        backend_ = build_backend(opts.method, settings)
        try:
            manifest = _diagnose(opts, problem, backend_, manifest)
        finally:
            backend_.close()
        manifest = manifest.model_copy(update={"status": "complete", "finished": now_iso()})
        atomic_write_text(out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _pattern(track: str) -> re.Pattern[str]:
    try:
        return re.compile(track)
    except re.error as exc:
        raise InfluenceInputError(f"--track {track!r} is not a valid regular expression: {exc}") from None


def _candidates(model: Any, track: str | None) -> list[str]:
    """The modules influence may track: the adapter's LoRA linears (every linear of a fully fine-tuned
    model), those whose names `track` finds when given."""
    import torch.nn as nn

    names = lora_modules(model) or [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
                                    and m.weight.requires_grad]
    if track is not None:
        pattern = _pattern(track)
        names = [n for n in names if pattern.search(n)]
        if not names:
            raise InfluenceInputError(f"--track {track!r} finds none of the model's trainable linear modules")
    return names


def _start_manifest(config: InfluenceConfig, problem: LVLMProblem, old: InfluenceManifest | None,
                    model: Any) -> InfluenceManifest:
    tracked = problem.tracked_modules()
    excluded = sorted(set(_candidates(model, config.track)) - set(tracked))
    modules = dict(model.named_modules())
    return InfluenceManifest(
        status="running", created=old.created if old else now_iso(), config=config, sign_convention=SIGN_CONVENTION,
        n_train=problem.n_train, n_queries=problem.n_query, tracked_modules=len(tracked),
        tracked_params=sum(modules[n].weight.numel() for n in tracked), excluded_modules=excluded,
        fit_s=old.fit_s if old else 0.0, score_s=old.score_s if old else 0.0, self_s=old.self_s if old else 0.0,
        harness=harness_info(), packages=package_versions(),
    )


def _diagnose(opts: InfluenceOptions, problem: LVLMProblem, backend: InfluenceBackend,
              manifest: InfluenceManifest) -> InfluenceManifest:
    out = Path(opts.out)
    t0 = time.perf_counter()
    _log(f"spuriverse diagnose influence: fitting {opts.method} on {problem.n_train} training examples "
         f"({manifest.tracked_modules} modules, {manifest.tracked_params:,} parameters)")
    backend.fit(problem, out / "factors")
    manifest = manifest.model_copy(update={"fit_s": manifest.fit_s + time.perf_counter() - t0})
    t0 = time.perf_counter()
    records = _score_queries(opts, problem, backend, out)
    manifest = manifest.model_copy(update={"score_s": manifest.score_s + time.perf_counter() - t0})
    t0 = time.perf_counter()
    self_rows = _self_influence(opts, problem, backend, out)
    manifest = manifest.model_copy(update={"self_s": manifest.self_s + time.perf_counter() - t0})
    summary = _summary(opts, records)
    atomic_write_text(out / SUMMARY, summary.model_dump_json(indent=2) + "\n")
    if opts.report:
        from spuriverse.diagnose.influence.report import write_report

        write_report(out, manifest, summary, records, self_rows, problem.train, problem.queries)
    return manifest


def _cues(problem: LVLMProblem, column: str) -> tuple[list[str | None], dict[str, float]]:
    cues = [cue_key(ex.meta, column) for ex in problem.train]
    counts: dict[str, int] = {}
    for c in cues:
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
    return cues, {c: n / problem.n_train for c, n in counts.items()}


def _score_queries(opts: InfluenceOptions, problem: LVLMProblem, backend: InfluenceBackend,
                   out: Path) -> list[QueryInfluence]:
    from tqdm import tqdm

    done = {r.item_id: r for r in read_jsonl(out / QUERIES, QueryInfluence)}
    todo = [i for i, q in enumerate(problem.queries) if q.item_id not in done]
    ids = [ex.item_id for ex in problem.train]
    cues, base = _cues(problem, opts.cue_column)
    size = opts.query_batch_size
    blocks = [todo[s:s + size] for s in range(0, len(todo), size)]
    bar = tqdm(total=len(problem.queries), initial=len(done), desc="scoring queries", unit="query",
               disable=not opts.progress, file=sys.stderr)
    with JsonlAppender(out / QUERIES) as log:
        for block in blocks:
            preds = problem.predict(block)
            with torch.no_grad():
                f = problem.measurement(problem.model, problem.query_batch(block)).double().cpu().numpy()
            scores = backend.pairwise(problem, block)
            _save_scores(out / "scores" / f"{block[0]:05d}.npz", [problem.queries[i].item_id for i in block], ids, scores)
            recs = [_record(problem.queries[i], p, float(v), row, ids, cues, base, opts)
                    for i, p, v, row in zip(block, preds, f, scores)]
            log.append_many(recs)
            done.update({r.item_id: r for r in recs})
            bar.update(len(block))
    bar.close()
    return [done[q.item_id] for q in problem.queries]


def _save_scores(path: Path, query_ids: list[str], train_ids: list[str], scores: np.ndarray) -> None:
    """One batch's full score matrix (named by its first query's position: a redone batch replaces it)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, query_ids=np.array(query_ids), train_ids=np.array(train_ids), scores=scores)
    with atomic_writer(path) as fh:
        fh.write(buf.getvalue())


def _record(q: TrainExample, pred: Any, f: float, row: np.ndarray, ids: list[str], cues: list[str | None],
            base: dict[str, float], opts: InfluenceOptions) -> QueryInfluence:
    cue = cue_key(q.meta, opts.cue_column)
    supporting, opposing = top_k(row, ids, cues, cue, opts.top_k)
    ratio = support_ratio(supporting, base.get(cue, 0.0)) if cue is not None else None
    return QueryInfluence(item_id=q.item_id, group_id=q.group_id, variant=q.variant, answer=q.answer or "",
                          predicted=pred.predicted, measured=pred.measured, probs=pred.probs, measurement=f,
                          cue=cue, supporting=supporting, opposing=opposing, spurious_support=ratio)


def _self_influence(opts: InfluenceOptions, problem: LVLMProblem, backend: InfluenceBackend,
                    out: Path) -> list[SelfInfluenceRow]:
    path = out / SELF
    rows = list(read_jsonl(path, SelfInfluenceRow))
    if len(rows) == problem.n_train:
        return rows
    _log(f"spuriverse diagnose influence: self-influence of {problem.n_train} training examples")
    values = backend.self_influence(problem)
    losses = []
    with torch.no_grad():
        for s in range(0, problem.n_train, opts.batch_size):
            idx = list(range(s, min(s + opts.batch_size, problem.n_train)))
            losses.extend(problem.train_loss(problem.model, problem.train_batch(idx)).double().cpu().tolist())
    rows = [SelfInfluenceRow(train_id=ex.item_id, kind=ex.kind, self_influence=float(v), loss=float(loss),
                             cue=cue_key(ex.meta, opts.cue_column), group_id=ex.group_id, variant=ex.variant)
            for ex, v, loss in zip(problem.train, values, losses)]
    atomic_write_jsonl(path, rows)
    return rows


def _summary(opts: InfluenceOptions, records: list[QueryInfluence]) -> InfluenceSummary:
    scored = [r for r in records if r.spurious_support is not None]
    wrong = [r for r in scored if r.predicted != r.answer]
    kw = dict(n_boot=opts.n_bootstrap, seed=opts.seed)

    # resample whole groups (queries of a group share their supporters); with a single group there is
    # nothing to resample between, so each query is its own cluster
    by_group = len({r.group_id for r in scored}) >= 2

    def mean(rs: list[QueryInfluence], base: bool = False) -> Any:
        vals = [(r.spurious_support.base_rate if base else r.spurious_support.value) for r in rs
                if r.spurious_support is not None]
        return cluster_mean(vals, [r.group_id if by_group else r.item_id for r in rs], **kw)

    return InfluenceSummary(method=opts.method, measurement=opts.measurement, top_k=opts.top_k,
                            overall=mean(scored), overall_wrong=mean(wrong), base_rate=mean(scored, base=True),
                            groups=group_rows(records, **kw), n_bootstrap=opts.n_bootstrap, seed=opts.seed)
