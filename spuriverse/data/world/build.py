"""Writing the world: two dataset folders (README.md card with configs + parquet with Image features),
and the command line.

    OUT/train/       configs `biased` (cue aligned with p_align) and `balanced` (p_align = chance),
                     each with splits `train`, `validation` and `test` (held out: never train or choose on it)
    OUT/benchmark/   the long-layout benchmark, one split `test` (`spuriverse eval --dataset OUT/benchmark`)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from spuriverse.atomic import atomic_write_text
from spuriverse.data.layouts import long_features

from .rows import CHANCE, MASK_COLUMNS, NAME, benchmark_rows, training_rows

CARD_SOURCE = Path(__file__).resolve().parents[3] / "data_cards" / f"{NAME}.md"
IMAGE_COLUMNS = ("image", *MASK_COLUMNS)
_FALLBACK_BODY = f"# {NAME}\n\nA planted-cue VQA world with ground-truth masks; see `data_cards/{NAME}.md` in the repository.\n"


def features():
    """The long layout's Features plus the world's extra columns (masks as `Image()`)."""
    from datasets import Features, Image, Value

    feats = dict(long_features())
    for name in ("kind", "split", "family", "answer_class", "cue_kind", "cue_value", "cue_class"):
        feats[name] = Value("string")
    feats["aligned"] = Value("bool")
    feats["correlation_id"] = Value("string")
    feats["scene_seed"] = Value("int64")
    feats["target"] = Value("string")
    for name in MASK_COLUMNS:
        feats[name] = Image()
    return Features(feats)


def build_environment() -> dict[str, str]:
    """The library versions the bytes depend on (PNG: Pillow + zlib; parquet: datasets + pyarrow)."""
    import zlib

    import datasets
    import numpy
    import pyarrow
    from PIL import __version__ as pil_version

    return {"pillow": pil_version, "zlib": zlib.ZLIB_RUNTIME_VERSION, "numpy": numpy.__version__,
            "datasets": datasets.__version__, "pyarrow": pyarrow.__version__}


def _write_parquet(rows: Iterable[dict], path: Path) -> tuple[int, int]:
    """Write rows to `path` atomically; return (n_rows, in-memory Arrow bytes)."""
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    recs = [{**r, **{c: {"bytes": r[c], "path": None} for c in IMAGE_COLUMNS}} for r in rows]
    if not recs:
        raise ValueError(f"{path}: no rows to write")
    ds = Dataset.from_list(recs, features=features())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        ds.to_parquet(str(tmp))
    finally:
        if not bars_were_off:
            enable_progress_bars()
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    for stale in path.parent.glob("*.parquet"):  # an older build's shards would be loaded too
        if stale.name != path.name and stale.name.split("-")[0] == path.name.split("-")[0]:
            stale.unlink()
    return len(recs), ds.data.nbytes


def _card(configs: list[dict], infos: list[dict], params: dict, card: Path | None) -> str:
    import yaml

    meta = {
        "pretty_name": NAME, "license": "cc0-1.0", "language": ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["spurious-correlations", "multiple-choice", "vision-language", "synthetic", "ground-truth-masks"],
        "configs": configs, "dataset_info": infos if len(infos) > 1 else infos[0],
    }
    src = card if card is not None else CARD_SOURCE
    body = src.read_text(encoding="utf-8") if src.is_file() else _FALLBACK_BODY
    build = json.dumps({"params": params, "environment": build_environment()}, sort_keys=True)
    return ("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"
            + body.strip("\n") + f"\n\n<!-- world-build: {build} -->\n")


def _info(config: str, splits: dict[str, tuple[int, int]], size: int) -> dict:
    from datasets import DatasetInfo, SplitDict, SplitInfo

    sd = SplitDict()
    for name, (n, nbytes) in splits.items():
        sd.add(SplitInfo(name=name, num_bytes=nbytes, num_examples=n))
    info = DatasetInfo(features=features(), splits=sd, download_size=size,
                       dataset_size=sum(b for _, b in splits.values()))._to_yaml_dict()
    return {"config_name": config, **info}


def _write_folder(folder: Path, parts: Mapping[str, Mapping[str, Iterable[dict]]], params: dict,
                  card: Path | None) -> int:
    """parts: config -> split -> rows. Parquet files at data/<config>/<split>-00000.parquet
    (data/<split>-00000.parquet for a single `default` config). Returns the number of rows."""
    configs: list[dict] = []
    infos, total = [], 0
    for config, splits in parts.items():
        sub = folder / "data" if config == "default" else folder / "data" / config
        written, files, size = {}, [], 0
        for split, rows in splits.items():
            path = sub / f"{split}-00000.parquet"
            written[split] = _write_parquet(rows, path)
            size += path.stat().st_size
            files.append({"split": split, "path": str(path.relative_to(folder).parent / f"{split}-*.parquet")})
            total += written[split][0]
        configs.append({"config_name": config, **({"default": True} if not configs else {}), "data_files": files})
        infos.append(_info(config, written, size))
    atomic_write_text(folder / "README.md", _card(configs, infos, params, card))
    os.chmod(folder / "README.md", 0o644)  # atomic_write's temp file is 0600; this is a public card
    return total


def build_world(out: Path, *, p_align: float = 0.95, seed: int = 0, n_train: int = 10_000, n_val: int = 1_000,
                naming_frac: float = 0.5, n_controls: int = 144, n_test: int = 2_000, no_cue_frac: float = 0.2,
                card: Path | None = None) -> dict[str, int]:
    """Generate the world into `out` (see the module docstring); return rows written per folder."""
    out = Path(out)
    params = {"p_align": p_align, "seed": seed, "n_train": n_train, "n_val": n_val, "naming_frac": naming_frac,
              "n_controls": n_controls, "n_test": n_test, "no_cue_frac": no_cue_frac}
    sizes = {"train": n_train, "validation": n_val, "test": n_test}
    train: dict[str, dict[str, Iterable[dict]]] = {config: {split: training_rows(f"{config}/{split}", n, p, seed, naming_frac, no_cue_frac)
                      for split, n in sizes.items() if n}
             for config, p in (("biased", p_align), ("balanced", CHANCE))}
    return {"train": _write_folder(out / "train", train, params, card),
            "benchmark": build_benchmark(out / "benchmark", seed=seed, n_controls=n_controls, card=card)}


def build_benchmark(folder: Path, *, seed: int = 0, n_controls: int = 144, card: Path | None = None) -> int:
    """Only the benchmark (the folder `spuriverse eval --dataset` reads), into `folder`; the same bytes
    as `build_world(...)/benchmark` with that seed and `n_controls`. Returns the number of rows."""
    params = {"seed": seed, "n_controls": n_controls}  # all the benchmark depends on
    return _write_folder(Path(folder), {"default": {"test": benchmark_rows(seed, n_controls)}}, params, card)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spuriverse.data.world",
        description="Generate spuriverse-world: planted-cue multiple-choice VQA images with ground-truth core "
                    "and cue masks; OUT/train (configs biased, balanced; splits train, validation) and "
                    "OUT/benchmark (the long-layout benchmark for `spuriverse eval`).",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--p-align", type=float, default=0.95,
                        help="P(cue suggests the answer | a cue) in the biased config (default 0.95; balanced: 0.25)")
    parser.add_argument("--no-cue-frac", type=float, default=0.2,
                        help="fraction of training/validation/test rows without any cue (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--n-train", type=int, default=10_000, help="training rows per config (default 10000)")
    parser.add_argument("--n-val", type=int, default=1_000, help="validation rows per config (default 1000)")
    parser.add_argument("--naming-frac", type=float, default=0.5,
                        help="fraction of training/validation rows that are open-ended naming items (default 0.5)")
    parser.add_argument("--n-controls", type=int, default=144, help="benchmark control items (default 144)")
    parser.add_argument("--n-test", type=int, default=2_000,
                        help="held-out test rows per training config (default 2000; 0: no test split)")
    parser.add_argument("--card", type=Path, default=None, help=f"data card body (default: {CARD_SOURCE})")
    args = parser.parse_args(argv)
    if not all(0.0 <= p <= 1.0 for p in (args.p_align, args.naming_frac, args.no_cue_frac)):
        parser.error("--p-align, --naming-frac and --no-cue-frac must lie in [0, 1]")
    if min(args.n_train, args.n_val, args.n_controls) < 1 or args.n_test < 0:
        parser.error("--n-train, --n-val and --n-controls must be at least 1 (--n-test at least 0)")
    t0 = time.perf_counter()
    counts = build_world(args.out, p_align=args.p_align, seed=args.seed, n_train=args.n_train, n_val=args.n_val,
                         naming_frac=args.naming_frac, n_controls=args.n_controls, n_test=args.n_test,
                         no_cue_frac=args.no_cue_frac, card=args.card)
    dt = time.perf_counter() - t0
    n = sum(counts.values())
    print(f"wrote {args.out}/train ({counts['train']} rows) and {args.out}/benchmark ({counts['benchmark']} rows): "
          f"{n} items in {dt:.1f} s ({n / dt:.0f} items/s)")
    return 0
