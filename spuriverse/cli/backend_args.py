"""The model-backend flags shared by every command that runs a model through the harness
(`spuriverse eval`, `spuriverse curate mine --model`), and the options dict they become."""

from __future__ import annotations

import argparse
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
