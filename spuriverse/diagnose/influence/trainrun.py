"""A finished training run, checked and loaded for diagnosis: its manifest, its training data (found
and verified by fingerprint), its model (the base + the trained adapter, unmerged, verified against
the run), and the query items.

Every check runs before anything is written: bad input is one `InfluenceInputError` naming what is
wrong and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spuriverse.data.layouts import BenchmarkError
from spuriverse.models.base import ModelLoadError
from spuriverse.models.registry import ModelSpecError, build_model, resolve_model
from spuriverse.schema.train import TrainDataSpec, TrainManifest
from spuriverse.train import weights_digest, weights_folder
from spuriverse.train.data import TrainDataError, TrainExample, load_examples, summarize

MANIFEST = "train.json"


class InfluenceInputError(ValueError):
    """The training run, its data, the model or the queries cannot be diagnosed (the message says why)."""


@dataclass
class TrainRun:
    folder: Path
    manifest: TrainManifest
    train: list[TrainExample]


def read_run(folder: Path, train_data: Sequence[TrainDataSpec] | None = None) -> TrainRun:
    """The run's manifest and its training examples, verified against the recorded fingerprint.
    `train_data`: where the data lives now, when it moved since training."""
    folder = Path(folder).expanduser().resolve()
    path = folder / MANIFEST
    if not path.is_file():
        raise InfluenceInputError(f"{folder} is not a training run: no {MANIFEST} (the folder `spuriverse train --out` writes)")
    try:
        manifest = TrainManifest.model_validate_json(path.read_text("utf-8"))
    except (ValidationError, ValueError) as exc:
        raise InfluenceInputError(f"{path} is not a valid training manifest: {str(exc).splitlines()[0]}") from None
    if manifest.status != "complete":
        raise InfluenceInputError(f"{folder}: the training run did not finish (status {manifest.status}); "
                                  "re-run `spuriverse train` with the same arguments to complete it")
    specs = list(train_data or manifest.config.train_data)
    where = ", ".join(s.source for s in specs)
    try:
        train = load_examples(specs)
    except (TrainDataError, BenchmarkError, FileNotFoundError, OSError) as exc:
        raise InfluenceInputError(
            f"the training data of {folder} cannot be read ({where}): {exc}. Influence needs the exact examples "
            "the model was trained on: put them back, or pass --train-data SRC where they are now"
        ) from None
    found, recorded = summarize(train).fingerprint, manifest.config.train_fingerprint
    if found != recorded:
        raise InfluenceInputError(
            f"the data at {where} is not what {folder} was trained on (fingerprint {found[:19]}..., the run "
            f"recorded {recorded[:19]}...): pass --train-data with the run's own training data"
        )
    return TrainRun(folder, manifest, train)


def _adapter_config(folder: Path) -> dict[str, Any]:
    path = folder / "adapter_config.json"
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        raise InfluenceInputError(f"{folder} holds no LoRA adapter (adapter_config.json), but the run trained one") from None
    except ValueError as exc:
        raise InfluenceInputError(f"{path}: not valid JSON ({exc})") from None


def check_model(run: TrainRun, model_dir: Path) -> str | None:
    """`model_dir` holds weights this run trained: the same adapter settings and base and, when the
    run recorded it, the same weights digest. Returns the digest found."""
    m = run.manifest
    if not model_dir.is_dir():
        raise InfluenceInputError(f"--model {model_dir}: no such folder")
    if m.output != "full":
        cfg, lora = _adapter_config(model_dir), m.config.lora
        found = {"base": cfg.get("base_model_name_or_path"), "r": cfg.get("r"), "alpha": cfg.get("lora_alpha"),
                 "target_modules": cfg.get("target_modules")}
        want = {"base": m.base_model, "r": lora.r if lora else None, "alpha": lora.alpha if lora else None,
                "target_modules": lora.target_modules if lora else None}
        diffs = [f"{k}: {found[k]!r} (the run: {want[k]!r})" for k in want if found[k] != want[k]]
        if diffs:
            raise InfluenceInputError(f"{model_dir} is not a model {run.folder} trained: {'; '.join(diffs)}")
    digest = weights_digest(model_dir)
    if m.weights_sha256 is not None and digest != m.weights_sha256:
        raise InfluenceInputError(
            f"{model_dir} holds other weights than {run.folder} trained (digest {digest[:19]}..., train.json "
            f"records {m.weights_sha256[:19]}...): diagnose the run's own model"
        )
    return digest


def _model_spec(m: TrainManifest, full_dir: Path | None) -> Any:
    """What the run loaded, as the train stage resolved it (an alias keeps its prompt settings)."""
    if full_dir is not None:
        return resolve_model(str(full_dir))
    name = m.config.model
    local = Path(name).expanduser()
    if local.is_dir() and str(local.resolve()) != m.base_model:
        name = m.base_model  # a relative folder that now resolves elsewhere: the recorded absolute base
    try:
        return resolve_model(name, m.config.revision)
    except ModelSpecError:
        return resolve_model(m.base_model, m.base_revision)


def load_model(run: TrainRun, model_dir: Path | None = None, *, device: str | None = None,
               batch_size: int = 8) -> tuple[Any, Any, Path, str | None]:
    """(backend, model, weights folder, digest): the run's base with its adapter attached unmerged
    and trainable (peft), or the full fine-tuned model; eval mode."""
    m = run.manifest
    folder = Path(model_dir).expanduser().resolve() if model_dir else weights_folder(run.folder, m.output)
    digest = check_model(run, folder)
    dtype = m.config.dtype
    try:
        backend = build_model(_model_spec(m, folder if m.output == "full" else None), device=device, dtype=dtype,
                              batch_size=batch_size)
    except (ModelLoadError, ModelSpecError, OSError) as exc:
        raise InfluenceInputError(f"cannot load the model of {run.folder}: {exc}") from None
    from spuriverse.models.hf import HFBackend

    if not isinstance(backend, HFBackend):
        raise InfluenceInputError(f"the model of {run.folder} did not load as a local HF model")
    model = backend.model
    if m.output == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        import warnings

        from peft import PeftModel

        with warnings.catch_warnings():  # peft asks the old name (transformers 5: FutureWarning)
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(model, str(folder), is_trainable=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable != m.trainable_params:
        raise InfluenceInputError(f"{folder}: {trainable:,} trainable parameters, but the run trained "
                                  f"{m.trainable_params:,}: not the run's model")
    backend.model = model.eval()
    return backend, backend.model, folder, digest


def load_queries(specs: Sequence[TrainDataSpec], items: Sequence[str] | None = None) -> list[TrainExample]:
    """The multiple-choice items of `specs` (naming rows are skipped), restricted to `items`."""
    try:
        examples = [ex for ex in load_examples(specs, role="query") if ex.kind == "choice"]
    except (TrainDataError, BenchmarkError, FileNotFoundError, OSError) as exc:
        raise InfluenceInputError(f"the queries cannot be read: {exc}") from None
    if items is not None:
        wanted = list(dict.fromkeys(items))
        by_id = {ex.item_id: ex for ex in examples}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise InfluenceInputError(f"--items: {len(missing)} id(s) not among the query items: "
                                      f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        examples = [by_id[i] for i in wanted]
    if not examples:
        raise InfluenceInputError("no multiple-choice query items selected")
    return examples
