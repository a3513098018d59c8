"""Provider profiles: what each OpenAI-compatible endpoint accepts, as data (`providers.toml`).

The OpenAI backend builds every request through `ProviderProfile.chat_params`, so a provider's quirks
(reasoning models' `max_completion_tokens`, Claude's temperature cap, endpoints without log-probs or
seeds, which image types they take) live in one table, never as branches in the runner.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from spuriverse.data.images import ImageInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PROVIDER = "openai"
SystemRole = Literal["system", "developer", "user"]


class MissingAPIKey(ValueError):
    """No API key for a provider: names the environment variable to set."""


@dataclass(frozen=True)
class Sampling:
    """Generation settings a run asks for; the profile decides which of them an endpoint is sent."""

    temperature: float | None = 0.0
    top_p: float | None = None
    seed: int | None = None
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class ProviderProfile:
    """One endpoint's request shape (fields documented in providers.toml)."""

    name: str
    api_key_env: str
    base_url: str | None = None
    logprobs: bool = True
    seed: bool = True
    temperature: bool = True
    temperature_max: float | None = None
    top_p: bool = True
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    min_completion_tokens: int = 0
    reasoning_effort: str | None = None
    system_role: SystemRole = "system"
    image_mimes: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif")
    docs: str = ""

    def api_key(self, given: str | None, alias: str) -> str:
        """`given` (--api-key) or the profile's environment variable; a clear error naming it."""
        key = given or os.environ.get(self.api_key_env)
        if not key:
            raise MissingAPIKey(
                f"no API key for {alias} (provider {self.name}): set {self.api_key_env} or pass --api-key"
            )
        return key

    def sent(self, sampling: Sampling) -> dict[str, Any]:
        """The sampling fields this endpoint is actually sent (also what a run records)."""
        out: dict[str, Any] = {}
        if self.temperature and sampling.temperature is not None:
            t = sampling.temperature
            out["temperature"] = min(t, self.temperature_max) if self.temperature_max is not None else t
        if self.top_p and sampling.top_p is not None:
            out["top_p"] = sampling.top_p
        if self.seed and sampling.seed is not None:
            out["seed"] = sampling.seed
        effort = sampling.reasoning_effort or self.reasoning_effort
        if self.reasoning_effort is not None and effort:
            out["reasoning_effort"] = effort
        return out

    def chat_params(self, model: str, messages: list[dict[str, Any]], max_tokens: int, sampling: Sampling,
                    top_logprobs: int | None) -> dict[str, Any]:
        """The JSON body of one chat-completions request (`top_logprobs` None: no log-probs asked)."""
        params: dict[str, Any] = {"model": model, "messages": messages,
                                  self.max_tokens_param: max(max_tokens, self.min_completion_tokens)}
        params.update(self.sent(sampling))
        if top_logprobs is not None and self.logprobs:
            params.update(logprobs=True, top_logprobs=top_logprobs)
        return params

    def messages(self, system: str | None, prompt: str, image_url: str | None) -> list[dict[str, Any]]:
        """System turn in the profile's role (or prepended to the user text), then the user turn:
        image part first, then text."""
        if system and self.system_role == "user":
            prompt, system = f"{system}\n\n{prompt}", None
        content: list[dict[str, Any]] = []
        if image_url is not None:
            content.append({"type": "image_url", "image_url": {"url": image_url}})
        content.append({"type": "text", "text": prompt})
        head = [{"role": self.system_role, "content": system}] if system else []
        return [*head, {"role": "user", "content": content}]

    def image_url(self, image: ImageInput) -> str:
        """A `data:` URL of the image, re-encoded as PNG when the endpoint does not take its type."""
        from spuriverse.remote import data_url  # the registry imports this module: keep it light

        if image.mime in self.image_mimes:
            return data_url(image.data, image.mime)
        buf = io.BytesIO()
        image.pil().save(buf, format="PNG")
        return data_url(buf.getvalue(), "image/png")


@cache
def providers() -> dict[str, ProviderProfile]:
    """Every provider profile of `providers.toml`, by name."""
    text = resources.files("spuriverse.models").joinpath("providers.toml").read_text("utf-8")
    out = {}
    for name, entry in tomllib.loads(text).items():
        entry = dict(entry)
        if "image_mimes" in entry:
            entry["image_mimes"] = tuple(entry["image_mimes"])
        out[name] = ProviderProfile(name=name, **entry)
    return out


def get_provider(name: str) -> ProviderProfile:
    """The profile called `name`; a clear error listing the known ones."""
    table = providers()
    if name not in table:
        raise ValueError(f"unknown provider {name!r} (known: {', '.join(table)})")
    return table[name]
