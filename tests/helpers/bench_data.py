"""Synthetic benchmarks written the way users publish them (datasets -> parquet + card)."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

from spuriverse.data.layouts import long_features

WORDS = ["cab", "train", "delivery", "skateboarder", "kitchen", "beach", "snow", "dog", "cat", "bus",
         "red", "blue", "two", "three", "tennis", "surfing", "pizza", "cake", "office", "farm"]

CARD = """---
configs:
- config_name: default
  data_files:
  - split: test
    path: data/*.parquet
---
# test benchmark
"""


def png_bytes(seed: int, size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    """A small deterministic picture (coloured background + a shape)."""
    rng = random.Random(seed)
    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    x, y = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
    d.rectangle([x, y, x + size[0] // 3, y + size[1] // 3], fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def long_rows(n_groups: int = 4, n_spurious: int = 3, n_counter: int = 1, n_controls: int = 4,
              seed: int = 0, image_size: tuple[int, int] = (40, 30)) -> list[dict]:
    """Native long-layout rows: per group an anchor, spurious and counter items; then controls.
    Option counts cycle through 2..4 so prompts show the true count."""
    rng = random.Random(seed)
    rows = []
    for g in range(n_groups):
        n_opt = 2 + g % 3
        opts = rng.sample(WORDS, n_opt)
        answer = "ABCDEF"[rng.randrange(n_opt)]
        q = f"What is shown in picture {g}?"
        variants = ["anchor"] + ["spurious"] * n_spurious + ["counter"] * n_counter
        for k, v in enumerate(variants):
            rows.append({
                "item_id": f"g{g:03d}/{v}_{k}", "group_id": f"g{g:03d}", "variant": v, "question": q,
                "options": opts, "answer": answer, "source_benchmark": ["aokvqa", "seedbench"][g % 2],
                "source_id": str(1000 + g), "spurious_attribute": f"attr{g % 3}", "core_attribute": "core",
                "image": png_bytes(seed * 100003 + g * 101 + k, image_size),
            })
    for c in range(n_controls):
        n_opt = 2 + c % 3
        opts = rng.sample(WORDS, n_opt)
        rows.append({
            "item_id": f"ctrl{c:03d}", "group_id": f"ctrl{c:03d}", "variant": "control",
            "question": f"Which word fits control {c}?", "options": opts, "answer": "ABCDEF"[rng.randrange(n_opt)],
            "source_benchmark": "seedbench", "source_id": str(5000 + c), "spurious_attribute": "",
            "core_attribute": "", "image": png_bytes(seed * 7919 + 50000 + c, image_size),
        })
    return rows


def write_long_dataset(out: str | Path, rows: list[dict] | None = None, **kw) -> Path:
    """Write rows as `out/data/test-00000.parquet` + a card declaring the config (a local dataset folder)."""
    from datasets import Dataset

    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else long_rows(**kw)
    feats = long_features()
    blank = {k: "" for k in feats if k not in ("image", "options")}
    recs = [{**blank, **r, "image": {"bytes": r["image"], "path": None}} for r in rows]
    Dataset.from_list(recs, features=feats).to_parquet(str(out / "data" / "test-00000.parquet"))
    (out / "README.md").write_text(CARD)
    return out


def write_wide_dataset(out: str | Path, rows: list[dict], n_images: int) -> Path:
    """The SpuriVerse release layout: one row per correlation, `image` + `spurious_group_1..N`.
    Extra text columns in `rows` (question, A..D, answer) are written as strings."""
    from datasets import Dataset, Features, Image as HFImage, Value

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text_cols = sorted({k for r in rows for k in r if k != "image" and not k.startswith("spurious_group_")})
    feats = {c: Value("string") for c in text_cols}
    feats["image"] = HFImage()
    for k in range(1, n_images + 1):
        feats[f"spurious_group_{k}"] = HFImage()
    recs = []
    for r in rows:
        rec = {c: r.get(c) for c in text_cols}
        rec["image"] = {"bytes": r["image"], "path": None}
        for k in range(1, n_images + 1):
            b = r.get(f"spurious_group_{k}")
            rec[f"spurious_group_{k}"] = None if b is None else {"bytes": b, "path": None}
        recs.append(rec)
    path = out / "train.parquet"
    Dataset.from_list(recs, features=Features(feats)).to_parquet(str(path))
    return path
