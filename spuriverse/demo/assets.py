"""What `make curate-demo` needs, built offline: a source VQA benchmark, two tiny random-weight models.

``python -m spuriverse.demo.assets --out runs/curate-demo`` writes

- ``source/questions.jsonl`` + ``source/images/*.jpg``: a source benchmark in a plain layout
  (``question_id``, ``question``, ``options`` list, ``answer`` letter, ``image`` path relative to
  the file), made from spuriverse-mini's anchor photos and control questions. It stands in for
  A-OKVQA / SEED-Bench, which cannot be downloaded here;
- ``models/tiny-llava``: a tiny LLaVA of the real architecture with RANDOM weights (the mined and
  the verifying model);
- ``models/tiny-sd``: a tiny Stable Diffusion text-to-image pipeline with RANDOM weights (synthesis).

The judge of the demo is `spuriverse.demo.judge_server`, a scripted OpenAI-compatible server. So every
stage runs for real through the same code a user runs, but nothing the demo produces *means*
anything: random models answer noise and draw noise. Idempotent: existing assets are kept.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from spuriverse.persist import atomic_write_text

SOURCE_FILE = "source/questions.jsonl"


def _mini_rows(variants: tuple[str, ...]) -> list[dict]:
    import pandas as pd

    from spuriverse.demo.offline import mini_path

    frames = [pd.read_parquet(p) for p in sorted((mini_path() / "data").glob("*.parquet"))]
    df = pd.concat(frames, ignore_index=True)
    return [r for r in df.to_dict("records") if r["variant"] in variants]


def build_source(out_dir: Path, variants: tuple[str, ...] = ("anchor", "control")) -> Path:
    """The demo's source benchmark: one JSONL line per question, images beside it. Deterministic."""
    from PIL import Image

    path = out_dir / SOURCE_FILE
    if path.exists():
        return path
    images = path.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in _mini_rows(variants):
        qid = row["item_id"].removeprefix("mini/").replace("/", "-")
        data = row["image"]["bytes"]
        with Image.open(io.BytesIO(data)) as im:
            ext = {"JPEG": "jpg", "PNG": "png"}.get(im.format or "", "png")
        (images / f"{qid}.{ext}").write_bytes(data)
        lines.append(json.dumps({"question_id": qid, "question": row["question"], "options": list(row["options"]),
                                 "answer": row["answer"], "image": f"images/{qid}.{ext}",
                                 "category": row["category"]}, sort_keys=True))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def build_assets(out_dir: str | Path) -> dict[str, Path]:
    from spuriverse.demo.tiny_models import build_tiny_llava
    from spuriverse.demo.tiny_diffusion import build_tiny_sd

    out_dir = Path(out_dir)
    llava, sd = out_dir / "models" / "tiny-llava", out_dir / "models" / "tiny-sd"
    if not (llava / "config.json").exists():
        build_tiny_llava(llava, image_size=64, patch_size=8, hidden=64, layers=2)
    if not (sd / "model_index.json").exists():
        build_tiny_sd(sd)
    return {"source": build_source(out_dir), "llava": llava, "sd": sd}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spuriverse.demo.assets", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/curate-demo"))
    a = ap.parse_args(argv)
    for name, path in build_assets(a.out).items():
        print(f"{name:<7} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
