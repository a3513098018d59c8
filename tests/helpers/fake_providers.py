"""The loopback fake configured to behave like each real provider's OpenAI-compatible endpoint.

Written from the providers' documentation (independently of spuriverse's providers.toml, so a wrong
profile fails against it): what each endpoint rejects with a 400, what it silently ignores, which
roles and image types it takes, and whether it returns log-probs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_DATA_URL = re.compile(r"^data:(image/[a-z.+-]+);base64,")


def _images(body: dict[str, Any]) -> list[str]:
    """MIME types of every image part (a part that is not a base64 data URL counts as 'url')."""
    out = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "image_url":
                m = _DATA_URL.match(part["image_url"]["url"])
                out.append(m.group(1) if m else "url")
    return out


@dataclass(frozen=True)
class Behaviour:
    """One provider: the key variable it is reached with, and how its endpoint answers."""

    key_env: str
    rejected_params: dict[str, str] = field(default_factory=dict)  # param -> the provider's 400 message
    roles: tuple[str, ...] = ("system", "developer", "user", "assistant")
    image_mimes: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif")
    returns_logprobs: bool = True
    max_temperature: float = 2.0
    reasoning_tokens: int = 0

    def validate(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        for param, message in self.rejected_params.items():
            if param in body:
                return message, param
        for msg in body.get("messages", []):
            if msg.get("role") not in self.roles:
                return f"invalid role {msg.get('role')!r}", "messages"
        for mime in _images(body):
            if mime not in self.image_mimes:
                return f"unsupported image type {mime}", "messages"
        if float(body.get("temperature", 0)) > self.max_temperature:
            return "temperature out of range", "temperature"
        return None

    def server_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `FakeOpenAIServer` for this behaviour."""
        return {"validate": self.validate, "logprobs": self.returns_logprobs, "reasoning_tokens": self.reasoning_tokens}


BEHAVIOURS: dict[str, Behaviour] = {
    "openai": Behaviour("OPENAI_API_KEY"),
    # o-series chat completions: sampling parameters, max_tokens and logprobs are 400s; hidden
    # reasoning tokens are spent out of max_completion_tokens.
    "openai-reasoning": Behaviour(
        "OPENAI_API_KEY",
        rejected_params={
            "temperature": "Unsupported value: 'temperature' does not support 0 with this model.",
            "top_p": "Unsupported parameter: 'top_p' is not supported with this model.",
            "max_tokens": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                          "Use 'max_completion_tokens' instead.",
            "logprobs": "Unsupported parameter: 'logprobs' is not supported with this model.",
        },
        returns_logprobs=False,
        reasoning_tokens=192,
    ),
    # Gemini's compatibility layer: logprobs refused by most models; no developer role.
    "gemini": Behaviour(
        "GEMINI_API_KEY",
        rejected_params={"logprobs": "Logprobs is not enabled for this model"},
        roles=("system", "user", "assistant"),
        image_mimes=("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"),
        returns_logprobs=False,
    ),
    # Claude's compatibility layer ignores logprobs and seed, caps temperature at 1.
    "anthropic": Behaviour(
        "ANTHROPIC_API_KEY",
        roles=("system", "developer", "user", "assistant"),
        returns_logprobs=False,
        max_temperature=1.0,
    ),
    # DashScope compatible mode: VL models return no log-probs.
    "dashscope": Behaviour(
        "DASHSCOPE_API_KEY",
        roles=("system", "user", "assistant"),
        image_mimes=("image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff"),
        returns_logprobs=False,
    ),
}
