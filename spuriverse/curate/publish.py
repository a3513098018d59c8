"""`spuriverse curate publish DIR --out DATASET_DIR --name NAME`: stage 6, a loadable benchmark folder.

Per kept candidate (verification.jsonl; `--unverified`: every accepted one): the anchor, its ok
spurious images and its ok counter images, all asked the anchor's question. Optional controls: N
source-benchmark questions that were neither mined as errors nor judged, the N with the smallest
sha256("SEED:<question id>") (deterministic, independent of source order, one streaming pass).

```
DATASET_DIR/
  README.md                            front matter (configs, features) + data card + generated sections
  data/test-00000-of-00001.parquet     long layout (+ a `provenance` JSON column)
  wide/test-00000-of-00001.parquet     --wide: the SpuriVerse release layout (anchor + spurious_group_k)
  provenance.jsonl                     SynthProvenance of every synthetic image
```
Written into a temporary folder and renamed into place; same inputs, byte-identical files.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from spuriverse.curate.publish_card import ConfigInfo, Selection, card_text, find_card
from spuriverse.curate.verify import VERIFICATION, ok_images, read_verifications
from spuriverse.data.curation import ERRORS, JUDGMENTS, accepted_candidates, latest, read_jsonl
from spuriverse.schema import Candidate, ErrorRecord, Judgment, SynthProvenance

if TYPE_CHECKING:  # datasets is imported where used (it is slow to import)
    from datasets import Features

PARQUET = "test-00000-of-00001.parquet"
PROVENANCE = "provenance.jsonl"


class PublishError(ValueError):
    """Publishing cannot proceed (nothing kept, missing inputs, an existing output...)."""


@dataclass
class PublishOptions:
    out: Path
    name: str
    controls: int = 0
    seed: int = 0
    wide: bool = False
    card: Path | None = None
    unverified: bool = False
    overwrite: bool = False
    license: str = "other"
    push: str | None = None
    private: bool = False


@dataclass
class PublishSummary:
    out: Path
    counts: dict[str, int]
    n_candidates: int
    controls: dict[str, Any] | None
    unverified: bool
    pushed: str | None = None


def _features(extra: dict[str, Any] | None = None) -> Features:
    from datasets import Features, Value

    from spuriverse.data.layouts import long_features

    return Features({**long_features(), "provenance": Value("string"), **(extra or {})})


def wide_features(n_images: int) -> Features:
    from datasets import Features, Image, List, Value

    s = Value("string")
    cols = {"image_id": s, "benchmark": s, "question_id": s, "candidate_id": s, "question": s,
            "options": List(s), "answer": s, "spurious_attribute": s, "core_attribute": s, "category": s,
            "image": Image()}
    return Features({**cols, **{f"spurious_group_{k}": Image() for k in range(1, n_images + 1)}})


def _parquet(rows: list[dict[str, Any]], features: Any, path: Path) -> ConfigInfo:
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        ds = Dataset.from_list(rows, features=features)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(path))
    finally:
        if not bars_were_off:
            enable_progress_bars()
    return ConfigInfo(path.parent.name, f"{path.parent.name}/*.parquet", features, len(rows), ds.data.nbytes,
                      path.stat().st_size)


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def select_candidates(curation_dir: Path, unverified: bool) -> tuple[list[Candidate], Selection]:
    accepted = accepted_candidates(curation_dir)
    judgments = list(read_jsonl(curation_dir / JUDGMENTS, Judgment))
    judges = Counter(j.judge for j in latest(curation_dir / JUDGMENTS, Judgment).values()) if judgments else Counter()
    verifications = None
    if unverified:
        chosen = accepted
    else:
        verifications = read_verifications(curation_dir)
        if not verifications:
            raise PublishError(f"{curation_dir / VERIFICATION} is missing or empty: run `spuriverse curate verify` "
                               "first (or publish with --unverified, which says so in the card)")
        by_id = {c.candidate_id: c for c in accepted}
        stale = [v.candidate_id for v in verifications if v.kept and v.candidate_id not in by_id]
        if stale:
            raise PublishError(f"kept candidates no longer accepted in review: {', '.join(stale)}; "
                               "re-run `spuriverse curate verify`")
        chosen = [by_id[v.candidate_id] for v in verifications if v.kept]
        if not chosen:
            raise PublishError(f"no candidate passed verification (0 of {len(verifications)} kept); lower "
                               "--threshold of `curate verify`, add verifying models, or publish with --unverified")
    if not chosen:
        raise PublishError(f"{curation_dir}: no accepted candidates to publish")
    chosen = sorted(chosen, key=lambda c: c.candidate_id)
    sel = Selection(n_accepted=len(accepted), verifications=verifications, kept=[c.candidate_id for c in chosen],
                    judges=judges, counts={},
                    attributes={c.candidate_id: "; ".join(c.spurious_attributes) for c in chosen})
    return chosen, sel


def candidate_rows(curation_dir: Path, chosen: list[Candidate]) -> tuple[list[dict], list[dict],
                                                                       list[tuple[str, SynthProvenance]]]:
    """Long rows, wide rows, and (item id, provenance) of every synthetic image."""
    errors = latest(curation_dir / ERRORS, ErrorRecord)
    long_rows, wide_rows, provenance = [], [], []
    for c in chosen:
        if not c.anchor_image or not (curation_dir / c.anchor_image).is_file():
            raise PublishError(f"candidate {c.candidate_id!r}: anchor image {c.anchor_image!r} not found under "
                               f"{curation_dir} (the anchor is published with its counterfactuals)")
        anchor = (curation_dir / c.anchor_image).read_bytes()
        e = errors[c.candidate_id]
        common = {"group_id": c.candidate_id, "question": c.question, "options": list(c.options), "answer": c.answer,
                  "source_benchmark": c.source, "source_id": c.question_id,
                  "spurious_attribute": "; ".join(c.spurious_attributes),
                  "core_attribute": "; ".join(c.core_attributes), "category": e.category}
        long_rows.append({"item_id": f"{c.candidate_id}/anchor", "variant": "anchor", **common,
                          "image": {"bytes": anchor, "path": None}, "provenance": _json({
                              "kind": "anchor", "source": c.source, "question_id": c.question_id,
                              "image_sha256": hashlib.sha256(anchor).hexdigest(),
                              "mined_prediction": e.prediction})})
        spurious = []
        for variant in ("spurious", "counter"):
            for k, png, prov in ok_images(curation_dir, c.candidate_id, variant):
                item_id = f"{c.candidate_id}/{variant}_{k}"
                data = png.read_bytes()
                long_rows.append({"item_id": item_id, "variant": variant, **common,
                                  "image": {"bytes": data, "path": None}, "provenance": prov.model_dump_json()})
                provenance.append((item_id, prov))
                if variant == "spurious":
                    spurious.append(data)
        wide_rows.append({
            "image_id": c.question_id, "benchmark": c.source, "question_id": c.question_id,
            "candidate_id": c.candidate_id, **{k: common[k] for k in ("question", "options", "answer",
                                                                       "spurious_attribute", "core_attribute",
                                                                       "category")},
            "image": {"bytes": anchor, "path": None},
            **{f"spurious_group_{i}": {"bytes": d, "path": None} for i, d in enumerate(spurious, 1)},
        })
    return long_rows, wide_rows, provenance


def _rank(seed: int, question_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{question_id}".encode()).digest(), "big")


def control_rows(curation_dir: Path, n: int, seed: int) -> tuple[list[dict], dict[str, Any]]:
    """`n` source items that were neither mined nor judged: the ones with the smallest
    sha256(f"{seed}:{question id}"), kept in a heap of size n over one metadata pass."""
    from spuriverse.curate.mine import candidate_id
    from spuriverse.curate.source import load_source, read_source_spec

    spec = read_source_spec(curation_dir)
    if spec is None:
        raise PublishError(f"--controls {n} needs {curation_dir / 'source.json'} (the source benchmark, written by "
                           "`curate mine --source`); this folder was mined from predictions: use --controls 0")
    excluded_ids = {e.candidate_id for e in read_jsonl(curation_dir / ERRORS, ErrorRecord)}
    excluded_ids |= {j.candidate_id for j in read_jsonl(curation_dir / JUDGMENTS, Judgment)}
    bench = load_source(spec)
    heap: list[tuple[int, str]] = []  # (-rank, item id): the root is the worst of the best n
    scanned = excluded = 0
    for item in bench.items():
        scanned += 1
        if candidate_id(spec.name, item.source_id) in excluded_ids:
            excluded += 1
            continue
        entry = (-_rank(seed, item.source_id), item.item_id)
        if len(heap) < n:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
    chosen = {item_id for _, item_id in heap}
    dataset = spec.dataset if not Path(spec.dataset).expanduser().exists() else Path(spec.dataset).name
    rows: list[dict[str, Any]] = []
    for li in bench.iter_items(lambda _i, it: it.item_id in chosen, keep_pixels=False):
        if li.image is None:
            raise PublishError(f"control item {li.item.item_id!r} of {spec.dataset}: {li.image_error}")
        it = li.item
        cid = f"control/{candidate_id(spec.name, it.source_id)}"
        rows.append({
            "item_id": cid, "group_id": cid, "variant": "control", "question": it.question,
            "options": list(it.options), "answer": it.answer, "source_benchmark": spec.name,
            "source_id": it.source_id, "spurious_attribute": "", "core_attribute": it.core_attribute,
            "category": it.category, "image": {"bytes": li.image.data, "path": None},
            "provenance": _json({"kind": "control", "source": spec.name, "dataset": dataset,
                                 "config": spec.config, "split": spec.split, "question_id": it.source_id,
                                 "seed": seed}),
        })
    rows.sort(key=lambda r: r["item_id"])
    info = {"n": len(rows), "requested": n, "seed": seed, "source": spec.name, "dataset": dataset,
            "scanned": scanned, "excluded": excluded, "eligible": scanned - excluded}
    return rows, info


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PublishError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PublishError(f"{out} exists and is not empty; choose another --out or pass --overwrite")


def _sweep_stale(out: Path) -> None:
    """Remove what a publish killed mid-way left beside `out` (under the publish lock, so never a live
    run's): its temporary folder, or the previous folder it had moved aside (the new one is rebuilt
    from the curation folder, byte for byte)."""
    for pattern in (f".{out.name}.publish-*", f".{out.name}.old-*"):
        for stale in out.parent.glob(pattern):
            if stale.is_dir():
                if pattern.endswith("old-*") and not out.exists():
                    stale.rename(out)  # killed between the two renames: put the previous version back
                else:
                    shutil.rmtree(stale, ignore_errors=True)


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def publish(curation_dir: str | Path, opts: PublishOptions) -> PublishSummary:
    """Write the dataset folder (and push it when asked); see the module docstring."""
    curation_dir, out = Path(curation_dir), Path(opts.out)
    if opts.controls < 0:
        raise PublishError("--controls must be >= 0")
    card = find_card(opts.name, opts.card)
    _check_out(out, opts.overwrite)
    chosen, sel = select_candidates(curation_dir, opts.unverified)
    long_rows, wide_rows, provenance = candidate_rows(curation_dir, chosen)
    if opts.controls:
        controls, sel.controls = control_rows(curation_dir, opts.controls, opts.seed)
        long_rows += controls
    sel.counts = dict(Counter(r["variant"] for r in long_rows))
    sel.counts = {v: sel.counts.get(v, 0) for v in ("anchor", "spurious", "counter", "control")}

    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / f".{out.name}.publish.lock")):
        _sweep_stale(out)
        _write(out, opts, long_rows, wide_rows, provenance, card, sel)
    summary = PublishSummary(out, sel.counts, len(chosen), sel.controls, opts.unverified)
    if opts.push:
        push(out, opts.push, private=opts.private)
        summary.pushed = opts.push
    return summary


def _write(out: Path, opts: PublishOptions, long_rows: list, wide_rows: list, provenance: list, card: Path,
           sel: Selection) -> None:
    """Everything into a temporary folder beside `out`, then renamed into place."""
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.publish-"))
    try:
        os.chmod(tmp, 0o755)
        configs = [_parquet(long_rows, _features(), tmp / "data" / PARQUET)]
        configs[0].name = "default"
        if opts.wide:
            n_images = max(sum(k.startswith("spurious_group_") for k in r) for r in wide_rows)
            feats = wide_features(n_images)
            wide_rows = [{k: r.get(k) for k in feats} for r in wide_rows]  # a missing image is None
            wide = _parquet(wide_rows, feats, tmp / "wide" / PARQUET)
            configs.append(wide)
        (tmp / PROVENANCE).write_text("".join(p.model_dump_json() + "\n" for _, p in provenance), "utf-8")
        readme = card_text(card, opts.name, configs, sel, provenance, sel.counts["anchor"], opts.license)
        (tmp / "README.md").write_text(readme, "utf-8")
        _check_out(out, opts.overwrite)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def push(folder: Path, repo_id: str, private: bool = False) -> None:
    """Upload the dataset folder to the hub (`repo_type="dataset"`); the local folder is left as is."""
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message="spuriverse curate publish")
    except Exception as exc:  # offline, no token, no rights: all end the same way
        raise PublishError(
            f"could not push {folder} to the hub dataset {repo_id!r} ({type(exc).__name__}: {exc}). The local "
            f"folder is complete; push it later with `huggingface-cli upload {repo_id} {folder} --repo-type dataset`"
        ) from exc
