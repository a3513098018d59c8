"""Building the spuriverse-mini folder: the rows (items), the parquet file, the card with generated
front matter and the recorded build environment, and the command line."""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

from spuriverse.data.layouts import long_features

from .groups import CONTROLS, GROUPS
from .images import group_images, jpeg_bytes
from .photos import photo

NAME = "spuriverse-mini"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # spuriverse/data, where the built folder ships
DEFAULT_OUT = PACKAGE_DIR / NAME
CARD_SOURCE = PACKAGE_DIR.parent.parent / "data_cards" / f"{NAME}.md"
PARQUET_NAME = "test-00000.parquet"


def build_rows() -> list[dict]:
    """Every row of the benchmark, in order: per group anchor, spurious_1..4, counter_1..2; then controls."""
    rows: list[dict] = []
    for g in GROUPS:
        k = {"spurious": 0, "counter": 0}
        for variant, attribute, im in group_images(g):
            if variant == "anchor":
                item_id = f"mini/{g.gid}/anchor"
            else:
                k[variant] += 1
                item_id = f"mini/{g.gid}/{variant}_{k[variant]}"
            rows.append({
                "item_id": item_id, "group_id": g.gid, "variant": variant, "question": g.question,
                "options": list(g.options), "answer": g.answer, "source_benchmark": NAME,
                "source_id": f"skimage.data.{g.photo}", "spurious_attribute": attribute,
                "core_attribute": g.core, "category": g.category, "image": jpeg_bytes(im),
            })
    for c in CONTROLS:
        rows.append({
            "item_id": f"mini/control/{c.name}", "group_id": f"control/{c.name}", "variant": "control",
            "question": c.question, "options": list(c.options), "answer": c.answer, "source_benchmark": NAME,
            "source_id": f"skimage.data.{c.photo}", "spurious_attribute": "", "core_attribute": c.core,
            "category": c.category, "image": jpeg_bytes(photo(c.photo)),
        })
    return rows


# -------------------------------------------------------------------------------------------------
# Writing the dataset folder
# -------------------------------------------------------------------------------------------------


def features():
    """The native long layout's Features (one definition, in spuriverse.data.layouts)."""
    return long_features()


def build_environment() -> dict[str, str]:
    """The library versions the built bytes depend on (images: the first four; parquet: all)."""
    import datasets
    import pyarrow
    from PIL import __version__ as pil_version, features as pil_features

    try:
        from importlib.metadata import version

        skimage_version = version("scikit-image")
    except Exception:  # pragma: no cover
        skimage_version = "missing"
    return {
        "pillow": pil_version,
        "freetype2": str(pil_features.version("freetype2")),
        "libjpeg_turbo": str(pil_features.version("libjpeg_turbo")),
        "scikit-image": skimage_version,
        "datasets": datasets.__version__,
        "pyarrow": pyarrow.__version__,
    }


IMAGE_ENV_KEYS = ("pillow", "freetype2", "libjpeg_turbo", "scikit-image")
_ENV_RE = re.compile(r"<!-- build-environment: (\{.*?\}) -->")


def recorded_environment(folder: str | Path) -> dict[str, str] | None:
    """The build environment recorded in a built folder's README.md (None if absent)."""
    try:
        m = _ENV_RE.search((Path(folder) / "README.md").read_text(encoding="utf-8"))
    except OSError:
        return None
    return json.loads(m.group(1)) if m else None


def front_matter(n_rows: int, num_bytes: int, download_size: int) -> str:
    import yaml
    from datasets import DatasetInfo, SplitDict, SplitInfo

    splits = SplitDict()
    splits.add(SplitInfo(name="test", num_bytes=num_bytes, num_examples=n_rows))
    info = DatasetInfo(features=features(), splits=splits, download_size=download_size,
                       dataset_size=num_bytes)._to_yaml_dict()
    meta = {
        "pretty_name": "spuriverse-mini",
        "license": "cc0-1.0",
        "language": ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["spurious-correlations", "multiple-choice", "vision-language", "counterfactual"],
        "size_categories": ["n<1K"],
        "configs": [{"config_name": "default", "data_files": [{"split": "test", "path": "data/*.parquet"}]}],
        "dataset_info": info,
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def card_text(card: Path, n_rows: int, num_bytes: int, download_size: int) -> str:
    body = card.read_text(encoding="utf-8")
    if body.startswith("---\n"):  # a front matter in the source card is replaced by the generated one
        body = body.split("\n---\n", 1)[1]
    env = json.dumps(build_environment(), sort_keys=True)
    return (front_matter(n_rows, num_bytes, download_size) + "\n" + body.lstrip("\n").rstrip("\n") + "\n\n"
            + f"<!-- build-environment: {env} -->\n")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for secrets; this is a public card
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_mini(out_dir: Path = DEFAULT_OUT, card: Path | None = None) -> Path:
    """Build spuriverse-mini into `out_dir` (README.md + data/test-00000.parquet); return `out_dir`."""
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    out_dir = Path(out_dir)
    card = Path(card) if card is not None else CARD_SOURCE
    if not card.is_file():
        raise FileNotFoundError(f"{card}: the data card is missing (run from a checkout of the repository, or --card)")
    rows = build_rows()
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    recs = [{**r, "image": {"bytes": r["image"], "path": None}} for r in rows]
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".build-") as tmp:
            tmp_parquet = Path(tmp) / PARQUET_NAME
            ds = Dataset.from_list(recs, features=features())
            num_bytes = ds.data.nbytes
            ds.to_parquet(str(tmp_parquet))
            os.chmod(tmp_parquet, 0o644)
            os.replace(tmp_parquet, data_dir / PARQUET_NAME)
    finally:
        if not bars_were_off:
            enable_progress_bars()
    for stale in data_dir.glob("*.parquet"):  # an older build's shards would be loaded too
        if stale.name != PARQUET_NAME:
            stale.unlink()
    download_size = (data_dir / PARQUET_NAME).stat().st_size
    _atomic_write(out_dir / "README.md", card_text(card, len(rows), num_bytes, download_size).encode("utf-8"))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spuriverse.data.mini",
        description="Build spuriverse-mini (README.md card + data/test-00000.parquet) from scikit-image's "
                    "bundled public-domain photos with deterministic, offline edits.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--card", type=Path, default=CARD_SOURCE, help=f"the data card to ship (default: {CARD_SOURCE})")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = build_mini(args.out, args.card)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"built {out} ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0
