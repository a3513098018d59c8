"""The world's rows: training / validation items (cue aligned with probability `p_align`) and the
benchmark in the native long layout (per correlation an anchor, 10 spurious, 2 counter items; controls).

Every row is a valid long-layout row (the `Item` fields + `image`) followed by the world's extra columns
(`EXTRA_COLUMNS`), identical across splits. Every random choice of item `i` of split `s` comes from
`numpy.random.default_rng([seed, SPLIT_CODES[s], i])`, and the image from `render(..., scene_seed)`, so
a row can be regenerated alone and the output is the same for the same seed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from spuriverse.schema import LETTERS

from .design import CORRELATIONS, CUE_KIND_NAMES, CUE_KINDS, FAMILIES, N_CLASSES, Cue, Family, cue_for_class, suggested_class
from .render import render

NAME = "spuriverse-world"
CHANCE = 1.0 / N_CLASSES
N_SPURIOUS, N_COUNTER = 10, 2
SPLIT_CODES = {"biased/train": 1, "biased/validation": 2, "balanced/train": 3, "balanced/validation": 4,
               "benchmark": 5, "control": 6}
EXTRA_COLUMNS = ("kind", "split", "family", "answer_class", "cue_kind", "cue_value", "cue_class", "aligned",
                 "correlation_id", "scene_seed", "core_mask", "cue_mask")
MASK_COLUMNS = ("core_mask", "cue_mask")


def png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB image or a boolean mask (L mode, 0 / 255); no metadata, so the
    bytes depend only on the pixels and the Pillow / zlib versions."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


@dataclass(frozen=True)
class Spec:
    """Everything that defines one row except its ids and variant."""

    family: Family
    cls: int
    cue: Cue | None
    scene_seed: int
    order: tuple[int, ...]  # option k shows class order[k]
    kind: str = "mc"        # "mc" (multiple choice) or "naming" (open-ended: target = answer_class)


def _row(spec: Spec, *, item_id: str, group_id: str, variant: str, split: str, attribute: str) -> dict:
    fam, cue = spec.family, spec.cue
    scene = render(fam.name, spec.cls, cue, spec.scene_seed)
    cue_class = fam.classes[suggested_class(fam.name, cue.kind, cue.value)] if cue else ""
    answer_class = fam.classes[spec.cls]
    return {
        "item_id": item_id, "group_id": group_id, "variant": variant, "question": fam.question,
        "options": [fam.classes[c] for c in spec.order], "answer": LETTERS[spec.order.index(spec.cls)],
        "source_benchmark": NAME, "source_id": f"scene-{spec.scene_seed}", "spurious_attribute": attribute,
        "core_attribute": fam.core_attribute, "category": fam.name, "image": png(scene.image),
        "kind": spec.kind, "split": split, "family": fam.name, "answer_class": answer_class,
        "cue_kind": cue.kind if cue else "none", "cue_value": cue.spec.name if cue else "",
        "cue_class": cue_class, "aligned": bool(cue) and cue_class == answer_class,
        "correlation_id": _cid(fam, cue), "scene_seed": spec.scene_seed,
        "core_mask": png(scene.core_mask), "cue_mask": png(scene.cue_mask),
    }


def _cid(fam: Family, cue: Cue | None) -> str:
    return f"{fam.name}/{cue.kind}/{cue.spec.name}" if cue else ""


def _scene_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**62))


def _order(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(c) for c in rng.permutation(N_CLASSES))


def _attribute(fam: Family, cue: Cue | None) -> str:
    if cue is None:
        return "none (no cue)"
    return f"{cue.spec.name} {cue.kind} (suggests {fam.classes[suggested_class(fam.name, cue.kind, cue.value)]})"


def training_rows(split: str, n: int, p_align: float, seed: int, naming_frac: float = 0.5) -> Iterator[dict]:
    """`n` rows of a training or validation split: every image has one cue (kind uniform), which suggests
    the answer with probability `p_align` and otherwise one of the other classes uniformly; so
    `p_align` = 1 / N_CLASSES makes cue and answer independent. A row is a naming item with probability
    `naming_frac`. Variant: `control` when aligned, `spurious` when the cue suggests a wrong answer."""
    if not 0.0 <= p_align <= 1.0 or not 0.0 <= naming_frac <= 1.0:
        raise ValueError("p_align and naming_frac must lie in [0, 1]")
    code = SPLIT_CODES[split]
    for i in range(n):
        rng = np.random.default_rng([seed, code, i])
        fam = FAMILIES[int(rng.integers(len(FAMILIES)))]
        cls = int(rng.integers(N_CLASSES))
        kind = CUE_KIND_NAMES[int(rng.integers(len(CUE_KIND_NAMES)))]
        aligned = bool(rng.random() < p_align)
        others = [v for v in range(N_CLASSES) if suggested_class(fam.name, kind, v) != cls]
        value = cue_for_class(fam.name, kind, cls) if aligned else others[int(rng.integers(len(others)))]
        row_kind = "naming" if rng.random() < naming_frac else "mc"
        cue = Cue(kind, value)
        spec = Spec(fam, cls, cue, _scene_seed(rng), _order(rng), row_kind)
        yield _row(spec, item_id=f"world/{split}/{i:06d}", group_id=_cid(fam, cue),
                   variant="control" if aligned else "spurious", split=split, attribute=_attribute(fam, cue))


def benchmark_rows(seed: int, n_controls: int = 144) -> Iterator[dict]:
    """The benchmark: per correlation (group_id = correlation id) an anchor and N_SPURIOUS spurious items
    (answer = a class the cue does NOT suggest, cue present, varied scenes) and N_COUNTER counter items
    (same question, options and answer, no cue); then `n_controls` cue-free control items (families in
    turn, random class), each its own group `control/<family>/<k>`."""
    for g, corr in enumerate(CORRELATIONS):
        rng = np.random.default_rng([seed, SPLIT_CODES["benchmark"], g])
        fam = next(f for f in FAMILIES if f.name == corr.family)
        wrong = [c for c in range(N_CLASSES) if c != corr.cls]
        cls, order = wrong[int(rng.integers(len(wrong)))], _order(rng)
        items: list[tuple[str, str, Cue | None]] = [("anchor", "anchor", corr.cue)]
        items += [("spurious", f"spurious_{k}", corr.cue) for k in range(1, N_SPURIOUS + 1)]
        items += [("counter", f"counter_{k}", None) for k in range(1, N_COUNTER + 1)]
        for variant, name, cue in items:
            spec = Spec(fam, cls, cue, _scene_seed(rng), order)
            attribute = _attribute(fam, corr.cue) if cue else f"none (counter: {CUE_KINDS[corr.kind][corr.value].name} {corr.kind} removed)"
            row = _row(spec, item_id=f"world/{corr.cid}/{name}", group_id=corr.cid, variant=variant,
                       split="benchmark", attribute=attribute)
            row["correlation_id"] = corr.cid  # counters belong to their correlation too
            yield row
    for k in range(n_controls):
        rng = np.random.default_rng([seed, SPLIT_CODES["control"], k])
        fam = FAMILIES[k % len(FAMILIES)]
        spec = Spec(fam, int(rng.integers(N_CLASSES)), None, _scene_seed(rng), _order(rng))
        yield _row(spec, item_id=f"world/control/{fam.name}/{k:03d}", group_id=f"control/{fam.name}/{k:03d}",
                   variant="control", split="benchmark", attribute="")
