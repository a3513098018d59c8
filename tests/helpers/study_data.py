"""A small long-layout benchmark for the fine-tuning study: correlations from two sources, controls of both."""

from __future__ import annotations

import random
from pathlib import Path

from helpers.bench_data import WORDS, png_bytes

SOURCES = ("srcA", "srcB")


def study_rows(n_groups: int = 12, n_spurious: int = 2, n_controls: int = 20, seed: int = 0) -> list[dict]:
    """Per group an anchor, `n_spurious` spurious items and (even groups) a counter item; per source
    `n_controls` controls, one group each. The source alternates between groups."""
    rng = random.Random(seed)
    rows = []
    for g in range(n_groups):
        opts = rng.sample(WORDS, 3)
        answer = "ABC"[g % 3]
        variants = ["anchor"] + ["spurious"] * n_spurious + ["counter"] * (g % 2 == 0)
        for k, v in enumerate(variants):
            rows.append({"item_id": f"g{g:02d}/{v}_{k}", "group_id": f"g{g:02d}", "variant": v,
                         "question": f"What is in picture {g}?", "options": opts, "answer": answer,
                         "source_benchmark": SOURCES[g % 2], "source_id": f"q{g}",
                         "image": png_bytes(seed * 1009 + g * 31 + k, (24, 24))})
    for s, source in enumerate(SOURCES):
        for c in range(n_controls):
            opts = rng.sample(WORDS, 2 + c % 2)
            rows.append({"item_id": f"{source}/c{c:03d}", "group_id": f"{source}/c{c:03d}", "variant": "control",
                         "question": f"Which word fits control {c}?", "options": opts, "answer": "AB"[c % 2],
                         "source_benchmark": source, "source_id": f"c{c}",
                         "image": png_bytes(seed * 7 + 5000 + 100 * s + c, (24, 24))})
    return rows


def quick_args(model: Path, bench: Path, out: Path, *extra: str) -> list[str]:
    """`spuriverse study finetune` with the quick settings the tests use (one seed, 1 epoch)."""
    return ["study", "finetune", "--model", str(model), "--dataset", str(bench), "--out", str(out), "--quick",
            "--seeds", "3", "--bootstrap", "20", "--batch-size", "4", "--lr", "5e-3", "--lora-dropout", "0",
            "--threads", "1", "--no-progress", *extra]
