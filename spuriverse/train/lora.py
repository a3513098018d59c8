"""Which weights train: peft LoRA on the language model, the vision tower or both, or everything.

Vision-language models name their towers differently (`language_model` / `text_model`,
`vision_tower` / `visual` / `vision_model`), and both towers have `q_proj`-like layers (CLIP and
Llama both do), so LoRA targets are a regex over full module names rooted at the tower found in
this model, never a bare list of leaf names.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

LANGUAGE_TOWERS = ("language_model", "text_model")
VISION_TOWERS = ("vision_tower", "visual", "vision_model")


class TargetError(ValueError):
    """The model has no module the requested LoRA target names."""


def tower_prefix(model: nn.Module, names: tuple[str, ...]) -> str | None:
    """The shortest module path whose last component is one of `names` (None if absent)."""
    found = [n for n, _ in model.named_modules() if n.rsplit(".", 1)[-1] in names]
    return min(found, key=lambda n: (n.count("."), n)) if found else None


def target_regex(model: nn.Module, target: str) -> str:
    """A regex (peft fullmatches it against module names) selecting every `nn.Linear` inside the
    requested tower(s): `language`, `vision` or `both`."""
    towers: dict[str, list[tuple[str, ...]]] = {"language": [LANGUAGE_TOWERS], "vision": [VISION_TOWERS],
                                                "both": [LANGUAGE_TOWERS, VISION_TOWERS]}
    if target not in towers:
        raise TargetError(f"unknown LoRA target {target!r} (language, vision, both)")
    parts = []
    for names in towers[target]:
        prefix = tower_prefix(model, names)
        if prefix is None:
            raise TargetError(f"this model has no {'/'.join(names)} module for LoRA target {target!r}; "
                              "pass --lora-target-modules REGEX")
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear) and n.startswith(prefix + ".")})
        if not leaves:
            raise TargetError(f"no linear layers under {prefix}")
        parts.append(rf"{re.escape(prefix)}\..*\.({'|'.join(map(re.escape, leaves))})")
    return parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)


def apply_lora(model: nn.Module, *, r: int, alpha: float, dropout: float, target_modules: str) -> Any:
    """Wrap `model` with fresh LoRA adapters (seed torch first: their init is random)."""
    from peft import LoraConfig, get_peft_model

    # peft annotates lora_alpha as int, but only ever scales by alpha / r: a float alpha is fine
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,  # type: ignore[arg-type]
                        bias="none")
    return get_peft_model(model, config)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
