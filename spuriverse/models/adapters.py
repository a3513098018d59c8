"""peft adapter folders (`adapter_config.json`, e.g. from `spuriverse train --lora`) as models:
the base named in the adapter's config is loaded, the adapter applied through peft and merged
in memory (inference then runs at the base model's speed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spuriverse.models.base import ModelLoadError

ADAPTER_CONFIG = "adapter_config.json"


def adapter_base(checkpoint: str) -> tuple[str, str | None] | None:
    """(base model, base revision) when `checkpoint` is a local adapter folder, else None."""
    path = Path(checkpoint).expanduser() / ADAPTER_CONFIG
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text("utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})") from None
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ModelLoadError(f"{path} names no base model (base_model_name_or_path)")
    return str(base), cfg.get("revision")


def _local_path(name: str) -> bool:
    """`name` is written as a filesystem path (absolute, ./, ../, ~), not a hub id."""
    return Path(name).is_absolute() or name.startswith((".", "~"))


def _unloadable(checkpoint: str, base: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"{checkpoint} is a LoRA adapter for the base model {base!r} (adapter_config.json), which cannot be "
        f"loaded: {reason.rstrip('.')}. Put the base model back at that path (or pass a merged model folder, "
        "`spuriverse train --merge`)."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_base_exists(checkpoint: str, base: str) -> None:
    if _local_path(base) and not Path(base).expanduser().exists():
        raise _unloadable(checkpoint, base, "that folder does not exist")


def load_adapter_model(checkpoint: str, base: str, revision: str | None, **kwargs: Any) -> Any:
    """Base (through `AutoModelForImageTextToText`, or itself an adapter folder: a LoRA trained on a
    LoRA) + adapter (peft), merged. A missing or unloadable base is a `ModelLoadError` naming it."""
    from transformers import AutoModelForImageTextToText

    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - peft is a dependency
        raise ModelLoadError(f"{checkpoint} is a peft adapter folder; install peft to load it") from exc
    _check_base_exists(checkpoint, base)
    nested = adapter_base(base)
    if nested is not None:
        try:
            model = load_adapter_model(base, *nested, **kwargs)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{checkpoint} is a LoRA adapter trained on the adapter {base!r}: {exc}") from exc
    else:
        try:
            model = AutoModelForImageTextToText.from_pretrained(base, revision=revision, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to load the base (missing, corrupt, offline) is this error
            raise _unloadable(checkpoint, base, _first_line(exc)) from exc
    return PeftModel.from_pretrained(model, checkpoint).merge_and_unload()


def load_processor(checkpoint: str, base: str, revision: str | None, **kwargs: Any) -> Any:
    """The adapter folder's own processor (`spuriverse train` saves it there), else the base's
    (for a LoRA trained on a LoRA, found down the chain)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(checkpoint, **kwargs)
    except (OSError, ValueError, TypeError):
        pass
    _check_base_exists(checkpoint, base)
    nested = adapter_base(base)
    if nested is not None:
        return load_processor(base, *nested, **kwargs)
    try:
        return AutoProcessor.from_pretrained(base, revision=revision, **kwargs)
    except Exception as exc:  # noqa: BLE001 - see load_adapter_model
        raise _unloadable(checkpoint, base, _first_line(exc)) from exc
