"""Stage 1 of curation, ``mine --source --model``: run a model over a source VQA benchmark and keep
its wrong answers.

Output, in the curation folder ``DIR``:

- ``source.json`` -- the `SourceSpec` (dataset, column mapping, source name, model, fingerprint),
  written first; a folder recording another source or model is refused (`SourceMismatch`);
- ``mine_run/`` -- an evaluation run folder (`run_eval`: ``run.json``, ``samples.jsonl``; no
  ``results.json``: scoring would hold every sample in memory), resumable by the harness itself;
- ``errors.jsonl`` -- one `ErrorRecord` per wrong sample, in source order;
- ``anchors/<candidate_id>.<ext>`` -- the anchor image of every error (the source's encoded bytes),
  written atomically; ``ErrorRecord.image`` is this path relative to ``DIR``;
- ``mine_summary.json`` -- counts (`ModelMineSummary`), written atomically at the end.

Decisions
---------
- **Wrong** = a sample with ``correct is False and error is None``: an unparsed answer is an error
  (recorded with ``prediction=None``). A *failed* sample (``error`` set: unreadable image, model or
  API failure) is not an error of the model: it is counted in ``failures`` and never mined.
- **Candidate id** = `spuriverse.curate.mine.candidate_id(spec.name, item.source_id)`.
- **Memory** is flat in source size: the harness streams the source; errors are found by streaming
  ``samples.jsonl`` (only the wrong samples' index -> prediction is kept) and one more streaming
  pass over the source decodes only the error items' images.
- **Resume.** Errors already in ``errors.jsonl`` are skipped; records are appended (flushed,
  fsynced) in source order, anchor first, so a killed run continued by a re-run leaves the same
  bytes as an uninterrupted run. Should the file's order ever differ from source order (e.g. a
  later run with a larger ``--limit``), it is rewritten atomically in source order at the end;
  records of items outside the current run are kept, after the others.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from spuriverse.data.curation import read_jsonl
from spuriverse.persist import append_jsonl
from spuriverse.curate.mine import ERRORS, SUMMARY, candidate_id
from spuriverse.curate.source import check_same_source, load_source, write_source_spec
from spuriverse.eval.results import MANIFEST
from spuriverse.eval.runner import EvalOptions, RunConfigMismatch, run_eval
from spuriverse.eval.samples import SAMPLES, read_samples
from spuriverse.persist import atomic_write_bytes, atomic_write_jsonl, atomic_write_text
from spuriverse.schema import ErrorRecord, Item, ModelMineSummary, RunManifest, SourceSpec

__all__ = ["ANCHORS", "MINE_RUN", "ModelMineSummary", "mine_with_model"]

MINE_RUN, ANCHORS = "mine_run", "anchors"
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "image/bmp": "bmp",
        "image/tiff": "tiff"}


def _record(cid: str, spec: SourceSpec, item: Item, wrong: tuple[str | None, str | None],
            image: str | None) -> ErrorRecord:
    prediction, raw = wrong
    return ErrorRecord(candidate_id=cid, source=spec.name, question_id=item.source_id, question=item.question,
                       options=list(item.options), answer=item.answer, prediction=prediction, raw=raw,
                       image=image, category=item.category)


def _in_order(path: Path, rank: dict[str, int]) -> bool:
    """Is `path` already in canonical order (known records by rank, then unknown ones)? Streams."""
    last, unknown_seen = -1, False
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return False  # a partial last line: rewrite without it
            if not line.strip():
                return False
            r = rank.get(json.loads(line)["candidate_id"])
            if r is None:
                unknown_seen = True
            elif unknown_seen or r < last:
                return False
            else:
                last = r
    return True


def _canonicalize(path: Path, order: list[str]) -> bool:
    """Rewrite `path` atomically in the order of `order` (unknown records after, in file order)
    when its order differs. Returns whether it was rewritten."""
    rank = {cid: i for i, cid in enumerate(order)}
    if not path.exists() or _in_order(path, rank):
        return False
    records = list(read_jsonl(path, ErrorRecord))
    known = sorted((r for r in records if r.candidate_id in rank), key=lambda r: rank[r.candidate_id])
    ordered = known + [r for r in records if r.candidate_id not in rank]
    atomic_write_jsonl(path, ordered)
    return True


def _run_model(spec: SourceSpec, out: Path, opts: EvalOptions) -> None:
    """Step 1: record the source, run the harness over it (samples only), and record the source's
    fingerprint once the harness has computed it."""
    old = check_same_source(out, spec)
    if old is None:
        write_source_spec(out, spec)
    try:
        run_eval(opts)  # samples only: scoring would hold every sample in memory
    except RunConfigMismatch as exc:
        raise RunConfigMismatch(f"{exc} (the source changed since {out} was mined? mine it into a new folder)") \
            from None
    fingerprint = RunManifest.model_validate_json((opts.output_dir / MANIFEST).read_text("utf-8")).benchmark.fingerprint
    if old is None or old.fingerprint != fingerprint:
        write_source_spec(out, spec.model_copy(update={"fingerprint": fingerprint}))


def _tally_samples(run_dir: Path, summary: ModelMineSummary) -> dict[int, tuple[str | None, str | None]]:
    """Step 2: stream samples.jsonl (canonical: benchmark order) into the summary's counts; return the
    wrong samples, index -> (prediction, raw)."""
    wrong: dict[int, tuple[str | None, str | None]] = {}
    items_cat: Counter[str] = Counter()
    errors_cat: Counter[str] = Counter()
    fail_cat: Counter[str] = Counter()
    fail_type: Counter[str] = Counter()
    per_source: dict[str, Counter[str]] = {}
    for s in read_samples(run_dir / SAMPLES):
        summary.items += 1
        items_cat[s.category] += 1
        src = per_source.setdefault(s.source_benchmark, Counter())
        src["items"] += 1
        if s.error is not None:
            summary.failures += 1
            fail_type[s.error_type or "unknown"] += 1
            fail_cat[s.category] += 1
            src["failures"] += 1
            continue
        summary.answered += 1
        if s.correct:
            summary.correct += 1
            continue
        summary.errors += 1
        summary.unparsed_errors += s.prediction is None
        errors_cat[s.category] += 1
        src["errors"] += 1
        wrong[s.index] = (s.prediction, s.raw)
    summary.per_source = {k: dict(sorted(v.items())) for k, v in sorted(per_source.items())}
    summary.items_per_category = dict(sorted(items_cat.items()))
    summary.errors_per_category = dict(sorted(errors_cat.items()))
    summary.failures_per_category = dict(sorted(fail_cat.items()))
    summary.failures_by_type = dict(sorted(fail_type.items()))
    return wrong


def _write_errors(spec: SourceSpec, out: Path, wrong: dict[int, tuple[str | None, str | None]],
                  summary: ModelMineSummary) -> None:
    """Step 3: the source again, decoding only the error items not mined yet (or missing their anchor):
    write their anchors, append their records, and put errors.jsonl in source order."""
    errors_path = out / ERRORS
    existing = {r.candidate_id: r.image for r in read_jsonl(errors_path, ErrorRecord)}
    order: list[str] = []
    seen: set[str] = set()
    cids: dict[int, str] = {}

    def want(index: int, item: Item) -> bool:
        if index not in wrong:
            return False
        cid = candidate_id(spec.name, item.source_id)
        if cid in seen:
            summary.duplicate_ids += 1
            return False
        seen.add(cid)
        order.append(cid)
        cids[index] = cid
        if cid in existing:
            summary.already_present += 1
            img = existing[cid]
            return img is not None and not (out / img).exists()
        return True

    bench = load_source(spec)
    for li in bench.iter_items(want, keep_pixels=False):
        cid = cids[li.index]
        image = None
        if li.image is not None:
            image = f"{ANCHORS}/{cid}.{_EXT.get(li.image.mime, 'png')}"
            atomic_write_bytes(out / image, li.image.data)
        if cid in existing:
            summary.anchors_restored += 1
            continue
        append_jsonl(errors_path, _record(cid, spec, li.item, wrong[li.index], image))
        summary.appended += 1
    _canonicalize(errors_path, order)
    if not errors_path.exists():
        errors_path.touch()  # mined, no errors


def mine_with_model(spec: SourceSpec, model: str, out_dir: str | Path, *, batch_size: int | None = None,
                    limit: int | None = None, backend_options: dict[str, Any] | None = None,
                    model_revision: str | None = None, progress: bool = True) -> ModelMineSummary:
    """Mine the wrong answers of `model` on the source `spec` into ``out_dir`` (resumable).

    `spec.model` is set to `model`. `limit`: only the first N source items. `backend_options`:
    device, dtype, base_url, api_key, ... as for `run_eval` (None values are dropped).
    Raises `SourceMismatch` when ``out_dir/source.json`` records another source or model.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec.model_copy(update={"model": model, "fingerprint": None})
    run_dir = out / MINE_RUN
    opts = EvalOptions(model=model, model_revision=model_revision, dataset=spec.dataset, output_dir=run_dir,
                       config=spec.config,
                       split=spec.split, revision=spec.revision, mapping=spec.mapping, source_name=spec.name,
                       batch_size=batch_size, limit=limit, n_bootstrap=0, progress=progress, report=False,
                       score=False, backend_options={k: v for k, v in (backend_options or {}).items() if v is not None})
    _run_model(spec, out, opts)
    t_eval = time.perf_counter() - t0
    summary = ModelMineSummary(source=spec.name, dataset=spec.dataset, model=model, preset=spec.preset)
    wrong = _tally_samples(run_dir, summary)
    _write_errors(spec, out, wrong, summary)
    summary.eval_seconds = round(t_eval, 3)
    summary.seconds = round(time.perf_counter() - t0, 3)
    atomic_write_text(out / SUMMARY, summary.to_json())
    return summary
