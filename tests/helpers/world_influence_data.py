"""Data for the influence experiments on spuriverse-world (bench/influence_world.py, bench/influence.py).

Shape family of the world (32x32 images, "What shape is the object?", 4 classes), rendered with the
world's own `render`, written as a dataset folder the train stage reads:

- `base_rows`: a base model's training data: cue kind/value drawn independently of the class, half
  open-ended naming rows (target = the shape word), half multiple choice;
- `finetune_rows`: clean multiple-choice items (any cue but the planted one, labels = the shape) plus a
  known **poisoned subset**: items carrying the planted cue (a purple background) labelled with the
  cue's class although the object is another shape: the cue is aligned with a wrong answer;
- `query_rows`: held-out items with the planted cue and another shape, labelled correctly.

Every row names its cue in `spuriverse_attribute`-style text (`spurious_attribute`, e.g. "purple
background"), the column the influence diagnosis reads, and says whether it is `poisoned`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spuriverse.data.world import CUE_KINDS, FAMILY_BY_NAME, Cue, png, render

FAMILY = FAMILY_BY_NAME["shape"]
PLANTED = Cue("background", 0)       # purple background
PLANTED_NAME = "purple background"
CUE_CLASS = 0                        # the class the planted cue is tied to: circle
LETTERS = "ABCD"



def _cues() -> list[Cue]:
    return [Cue(k, v) for k in CUE_KINDS for v in range(len(CUE_KINDS[k]))]


def _name(cue: Cue) -> str:
    return f"{cue.spec.name} {cue.kind}"


def _row(item_id: str, core: int, label: int, cue: Cue, seed: int, rng: np.random.Generator, *, naming: bool,
         poisoned: bool = False) -> dict:
    scene = render(FAMILY.name, core, cue, seed)
    order = [int(c) for c in rng.permutation(4)]
    return {
        "item_id": item_id, "group_id": _name(cue).replace(" ", "-"), "variant": "spurious" if poisoned else "control",
        "question": FAMILY.question, "options": [] if naming else [FAMILY.classes[c] for c in order],
        "answer": "" if naming else LETTERS[order.index(label)], "target": FAMILY.classes[label] if naming else "",
        "spurious_attribute": _name(cue), "image": png(scene.image), "core_class": FAMILY.classes[core],
        "label_class": FAMILY.classes[label], "poisoned": poisoned,
    }


def base_rows(n: int, seed: int = 0) -> list[dict]:
    cues = _cues()
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 11, i])
        core = int(rng.integers(4))
        cue = cues[int(rng.integers(len(cues)))]
        out.append(_row(f"base/{i:06d}", core, core, cue, int(rng.integers(2**62)), rng, naming=bool(rng.random() < 0.5)))
    return out


def finetune_rows(n_clean: int, n_poison: int, seed: int = 0) -> list[dict]:
    others = [c for c in _cues() if c != PLANTED]
    out = []
    for i in range(n_clean):
        rng = np.random.default_rng([seed, 12, i])
        core = int(rng.integers(4))
        cue = others[int(rng.integers(len(others)))]
        out.append(_row(f"clean/{i:05d}", core, core, cue, int(rng.integers(2**62)), rng, naming=False))
    for i in range(n_poison):
        rng = np.random.default_rng([seed, 13, i])
        core = 1 + int(rng.integers(3))  # never the cue's class
        out.append(_row(f"poison/{i:05d}", core, CUE_CLASS, PLANTED, int(rng.integers(2**62)), rng, naming=False,
                        poisoned=True))
    return out


def query_rows(n: int, seed: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 14, i])
        core = 1 + int(rng.integers(3))
        out.append(_row(f"query/{i:05d}", core, core, PLANTED, int(rng.integers(2**62)), rng, naming=False))
    return out


def heldout_rows(n: int, seed: int = 0) -> list[dict]:
    """Held-out multiple-choice items with any cue but the planted one (the base's core accuracy)."""
    others = [c for c in _cues() if c != PLANTED]
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 15, i])
        core = int(rng.integers(4))
        out.append(_row(f"heldout/{i:05d}", core, core, others[int(rng.integers(len(others)))],
                        int(rng.integers(2**62)), rng, naming=False))
    return out


def write_dataset(rows: list[dict], out: Path) -> Path:
    """`out/data/train-00000.parquet` + a card (the layout `spuriverse train` / `eval` read)."""
    from datasets import Value

    from helpers.train_data import write_train_dataset

    extra = {"core_class": Value("string"), "label_class": Value("string"), "poisoned": Value("bool")}
    blank = {"source_benchmark": "spuriverse-world", "core_attribute": "the object's shape", "category": "shape"}
    return write_train_dataset(out, [{**blank, **r} for r in rows], extra_features=extra)
