"""Checkpoints that survive kill -9: a checkpoint counts only once its completion marker exists.

The Trainer writes a checkpoint's files one after another (weights, optimizer, scheduler, RNG,
trainer_state.json), none atomically. After every save a callback writes `spuriverse-complete.json`
atomically, listing each file and its size. On resume, a checkpoint without the marker (killed while
writing) or whose files no longer match it is moved to `checkpoints/incomplete/` (kept, never
deleted) and training resumes from the newest complete one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from spuriverse.atomic import atomic_write_text

MARKER = "spuriverse-complete.json"
PREFIX = "checkpoint-"


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MARKER}


def mark_complete(folder: Path) -> None:
    atomic_write_text(folder / MARKER, json.dumps({"files": _files(folder)}, indent=1, sort_keys=True) + "\n")


def is_complete(folder: Path) -> bool:
    try:
        recorded = json.loads((folder / MARKER).read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(recorded) and recorded == _files(folder)


def _step(folder: Path) -> int:
    try:
        return int(folder.name[len(PREFIX):])
    except ValueError:
        return -1


def last_complete_checkpoint(ckpt_dir: Path, log: Callable[[str], object] = print) -> Path | None:
    """The newest complete checkpoint under `ckpt_dir`; incomplete ones are set aside (moved, not
    deleted) with a message, so the Trainer never resumes from, or rotates around, half a save."""
    if not ckpt_dir.is_dir():
        return None
    found = sorted((p for p in ckpt_dir.glob(f"{PREFIX}*") if p.is_dir() and _step(p) >= 0), key=_step)
    best = None
    for folder in found:
        if is_complete(folder):
            best = folder
            continue
        aside = ckpt_dir / "incomplete" / folder.name
        k = 1
        while aside.exists():
            aside, k = ckpt_dir / "incomplete" / f"{folder.name}.{k}", k + 1
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(aside))
        log(f"spuriverse train: {folder.name} is incomplete (the run was killed while writing it); "
            f"moved to {aside} and resuming from the checkpoint before it")
    return best


class CompletionMarker(TrainerCallback):
    """Writes the marker after the Trainer finished saving a checkpoint (all ranks done)."""

    def on_save(self, args, state, control, **kwargs):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank has written its RNG state
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX}{state.global_step}"
            if folder.is_dir():
                mark_complete(folder)
        return control


def weights_folder(out: Path, output: str) -> Path:
    """Where a finished run's trained weights lie: the adapter (`adapter`: OUT; `merged`: OUT/adapter)
    or the full model (OUT)."""
    return Path(out) / "adapter" if output == "merged" else Path(out)


def weights_digest(folder: Path) -> str:
    """sha256 over the folder's weight files (``*.safetensors`` / ``*.bin``: names and bytes, sorted):
    recorded in train.json, so a diagnostic can tell the run's model from another one."""
    import hashlib

    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix in (".safetensors", ".bin") and p.name != "training_args.bin")
    for p in files:
        h.update(p.name.encode() + b"\0")
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()
