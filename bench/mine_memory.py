"""Memory of `build mine --source --model` in source size: peak RSS should not grow with the source.

Builds a synthetic source benchmark on disk (parquet shards of 1,000 rows: question_id, question,
an `options` list, a letter answer, a small random PNG as an `Image()` cell, a category), then, in
a fresh subprocess per size, mines the first N items (the first N/1000 shards, as their own source
folder) with a tiny random-weight LLaVA (`spuriverse.demo.tiny_models`) and reports the child's peak RSS
(`ru_maxrss`). The ratio largest/smallest should be ~1 (flat).

    python bench/mine_memory.py                       # 5k / 10k / 20k items
    python bench/mine_memory.py --sizes 500,1000,2000  # quick check
    python bench/mine_memory.py --quick                # tiny sizes (20 / 40 items): a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SHARD = 1000
WORDS = ["cat", "dog", "bus", "tree", "red", "blue", "two", "three", "snow", "beach", "pizza", "kitchen"]


def _png(rng: random.Random, size: int) -> bytes:
    import io

    from PIL import Image

    im = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(3 * size * size)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def build_source(root: Path, n_items: int, image_size: int) -> Path:
    """`root/shards/shard-00000.parquet ...` (SHARD rows each); idempotent."""
    import datasets
    from datasets import Dataset, Features, Image, List, Value

    datasets.disable_progress_bars()

    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    feats = Features({"question_id": Value("string"), "question": Value("string"), "options": List(Value("string")),
                      "answer": Value("string"), "image": Image(), "category": Value("string")})
    for s in range((n_items + SHARD - 1) // SHARD):
        path = shards / f"shard-{s:05d}.parquet"
        if path.exists():
            continue
        rng = random.Random(s)
        rows = []
        for i in range(s * SHARD, min(n_items, (s + 1) * SHARD)):
            k = 2 + i % 3
            rows.append({"question_id": f"{i:06d}", "question": f"What is shown in picture {i}?",
                         "options": rng.sample(WORDS, k), "answer": "ABCD"[rng.randrange(k)],
                         "image": {"bytes": _png(rng, image_size), "path": None}, "category": f"c{i % 5}"})
        tmp = path.with_suffix(".tmp")
        Dataset.from_list(rows, features=feats).to_parquet(str(tmp))
        os.replace(tmp, path)
    return shards


def source_for(root: Path, size: int) -> Path:
    """A folder holding (hard links to) the first size/SHARD shards: a source of exactly `size` items."""
    if size % SHARD:
        raise SystemExit(f"sizes must be multiples of the shard size {SHARD} (got {size})")
    folder = root / f"source-{size}"
    folder.mkdir(exist_ok=True)
    for s in range(size // SHARD):
        link = folder / f"shard-{s:05d}.parquet"
        if not link.exists():
            os.link(root / "shards" / link.name, link)
    return folder


def child(root: Path, size: int, model: Path, batch_size: int) -> None:
    from spuriverse.curate.mine_model import mine_with_model
    from spuriverse.curate.source import make_source_spec

    out = root / f"build-{size}"
    if out.exists():
        shutil.rmtree(out)
    spec = make_source_spec(str(source_for(root, size)), name="synth")
    t0 = time.perf_counter()
    s = mine_with_model(spec, str(model), out, batch_size=batch_size, progress=False,
                        backend_options={"device": "cpu"})
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"size": size, "peak_rss_mb": peak_kib / 1024, "seconds": time.perf_counter() - t0,
                      "items": s.items, "errors": s.errors, "failures": s.failures}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5000,10000,20000",
                    help="comma-separated item counts (multiples of the smallest, or of 1000)")
    ap.add_argument("--workdir", type=Path, help="where the source, model and curation folder go (default: a temp dir)")
    ap.add_argument("--image-size", type=int, default=16, help="source images are N x N random PNGs (default 16)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--shard", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (20 and 40 items): a smoke run")
    a = ap.parse_args()
    if a.quick:
        a.sizes = "20,40"
    sizes = sorted(int(x) for x in a.sizes.split(","))
    root = a.workdir or Path(tempfile.mkdtemp(prefix="spuriverse-mine-memory-"))
    try:
        run(a, sizes, root)
    finally:
        if a.workdir is None and a.child is None:  # our own temp dir: leave nothing behind
            shutil.rmtree(root, ignore_errors=True)


def run(a: argparse.Namespace, sizes: list[int], root: Path) -> None:
    """Build the source and the model once, then measure each size in a fresh subprocess."""
    model = root / "tiny-llava"
    global SHARD
    # Quick checks with sizes below 1,000 use smaller shards (each size is a whole number of shards).
    SHARD = a.shard or min(SHARD, *sizes)
    if a.child is not None:
        child(root, a.child, model, a.batch_size)
        return
    t0 = time.perf_counter()
    build_source(root, max(sizes), a.image_size)
    if not (model / "config.json").exists():
        from spuriverse.demo.tiny_models import build_tiny_llava

        build_tiny_llava(model, image_size=16, patch_size=8, hidden=32, layers=2)
    print(f"source: {max(sizes)} items in {root / 'shards'} ({time.perf_counter() - t0:.1f} s)")
    results = []
    for size in sizes:
        cmd = [sys.executable, __file__, "--workdir", str(root), "--child", str(size), "--batch-size",
               str(a.batch_size), "--shard", str(SHARD)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(
            Path(__file__).resolve().parents[1])})
        if proc.returncode != 0:
            raise SystemExit(f"size {size} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{size:>7} items: peak RSS {r['peak_rss_mb']:7.1f} MB, {r['seconds']:6.1f} s "
              f"({r['errors']} errors, {r['failures']} failures)", flush=True)
    ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    print(f"peak RSS {sizes[-1]} / {sizes[0]} items: {ratio:.3f} (flat: ~1)")


if __name__ == "__main__":
    main()
