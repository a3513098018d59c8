"""The model-backend flags shared by every command that runs a model through the harness
(`spuriverse eval`, `spuriverse curate mine --model`), the options dict they become, and the
offline switch both take before loading anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BACKEND_FLAGS = ("model_revision", "device", "dtype", "device_map", "quantization", "base_url", "api_key",
                 "concurrency")


def add_backend_args(g: argparse._ActionsContainer) -> None:
    g.add_argument("--model-revision", help="model revision (hub commit or tag)")
    g.add_argument("--device", help="local models: cpu, cuda, cuda:1 ... (default: cuda if available)")
    g.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="local models on GPU")
    g.add_argument("--device-map", help="local models: e.g. auto (accelerate big-model placement)")
    g.add_argument("--quantization", choices=["4bit", "8bit"],
                   help="local models on a CUDA GPU: load the weights 4- or 8-bit (bitsandbytes; "
                   "pip install 'spuriverse[quant]'); refused on CPU; recorded in results.json")
    g.add_argument("--base-url", help="API models: OpenAI-compatible endpoint (default: the provider's)")
    g.add_argument("--api-key", help="API models: key (default: the provider's variable, e.g. $OPENAI_API_KEY, "
                   "$GEMINI_API_KEY, $ANTHROPIC_API_KEY, $DASHSCOPE_API_KEY); never written to disk")
    g.add_argument("--concurrency", type=int, help="API models: requests in flight (default 32)")


def backend_options(a: argparse.Namespace) -> dict[str, Any]:
    """The backend keyword options of `add_backend_args` (model_revision is a run option, not here)."""
    return {k: getattr(a, k) for k in BACKEND_FLAGS if k != "model_revision"}


def uses_hub(model: str, dataset: str) -> bool:
    """Does this run name a hub dataset or hub model (not a local path, alias of an API model...)?"""
    from spuriverse.models.registry import resolve_model

    def remote(name: str) -> bool:
        return not Path(name).expanduser().exists() and not any(ch in name for ch in "*?[")

    try:
        spec = resolve_model(model)
    except ValueError:
        return remote(dataset)
    return remote(dataset) or (spec.backend == "hf" and remote(spec.checkpoint))


def offline_if_hub_unreachable(model: str, dataset: str) -> None:
    """Switch to offline mode (saying so) when the run needs the hub and the hub does not answer."""
    from spuriverse.hub import go_offline_if_unreachable

    if uses_hub(model, dataset) and go_offline_if_unreachable():
        print("spuriverse: the Hugging Face hub is unreachable: offline mode (only cached or local "
              "datasets/models load)", file=sys.stderr)


def apply_threads(a: argparse.Namespace) -> None:
    """`--threads N`: torch's intra-op threads for this process (tiny models train fastest on 1)."""
    if getattr(a, "threads", None):
        import torch

        torch.set_num_threads(a.threads)
