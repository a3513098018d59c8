"""Local models through `AutoProcessor` + `AutoModelForImageTextToText` (any hub id or folder).

Batches are left-padded, so the last position of every row is its own answer position: option
log-probs come from one forward pass per batch, generation decodes only the new tokens, and results
do not depend on the batch size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from spuriverse.models.base import Generation, ModelError, OptionScores, Request
from spuriverse.schema import ModelInfo

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class LetterTokenError(RuntimeError):
    """An option letter is not exactly one token after the prompt: log-prob scoring is not sound."""


class HFBackend:
    supports_logprobs = True

    def __init__(
        self,
        checkpoint: str,
        *,
        alias: str | None = None,
        revision: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        device_map: str | None = None,
        batch_size: int = 8,
        system_prompt: str = "prepend",
        prompt_format: str = "chat",
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if system_prompt not in ("role", "prepend") or prompt_format not in ("chat", "raw"):
            raise ValueError("system_prompt must be role|prepend and prompt_format chat|raw")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # fp32 on CPU (half precision there is slow and inexact); the registry's dtype on GPU.
        name = "float32" if self.device.type == "cpu" and device_map is None else (dtype or "bfloat16")
        if name not in _DTYPES:
            raise ValueError(f"unknown dtype {name!r} ({', '.join(_DTYPES)})")
        self.system_prompt, self.prompt_format = system_prompt, prompt_format
        self.chunk_size = batch_size
        self.processor = AutoProcessor.from_pretrained(checkpoint, revision=revision, padding_side="left")
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForImageTextToText.from_pretrained(
            checkpoint, revision=revision, dtype=_DTYPES[name], device_map=device_map
        ).eval()
        if device_map is None:
            self.model.to(self.device)
        self.info = ModelInfo(
            alias=alias or checkpoint,
            backend="hf",
            checkpoint=checkpoint,
            revision=revision or getattr(self.model.config, "_commit_hash", None),
            dtype=name,
            device=str(self.model.device),
        )
        self._letter_cache: dict[tuple[str, str], int] = {}

    # -- prompt construction (the only per-family knobs: system_prompt, prompt_format) ----------
    def render(self, r: Request) -> str:
        system = r.system if self.system_prompt == "role" else None
        user = f"{r.system}\n\n{r.prompt}" if r.system and self.system_prompt == "prepend" else r.prompt
        if self.prompt_format == "raw":
            return user
        content: list[dict[str, Any]] = [{"type": "image"}] if r.image is not None else []
        content.append({"type": "text", "text": user})
        messages = [{"role": "user", "content": content}]
        if system:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _inputs(self, requests: Sequence[Request], texts: list[str]) -> dict[str, torch.Tensor]:
        images = [r.image.pil() for r in requests if r.image is not None]
        if images and len(images) != len(requests):
            raise ValueError("a batch mixes requests with and without images")
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = images
        batch = self.processor(**kwargs)
        return {k: (v.to(self.model.device) if hasattr(v, "to") else v) for k, v in batch.items()}

    def letter_ids(self, text: str, letters: Sequence[str]) -> list[int]:
        """Token id of each letter as the model would write it right after `text`, tokenized in
        context; raises if a letter is not exactly one token there."""
        tail = text[-64:]  # tokenization of a continuation only depends on the prompt's tail
        ids = []
        for letter in letters:
            key = (tail, letter)
            if key not in self._letter_cache:
                self._letter_cache[key] = self._tokenize_letter(text, letter)
            ids.append(self._letter_cache[key])
        return ids

    def _tokenize_letter(self, text: str, letter: str) -> int:
        base = self.tokenizer(text, add_special_tokens=False).input_ids
        # After "ASSISTANT:" a model writes " A"; after "assistant\n" it writes "A".
        for cont in ([letter] if text[-1:].isspace() else [" " + letter, letter]):
            full = self.tokenizer(text + cont, add_special_tokens=False).input_ids
            if len(full) == len(base) + 1 and full[: len(base)] == base:
                return full[-1]
        raise LetterTokenError(
            f"option letter {letter!r} is not a single token after the prompt for this tokenizer; "
            "use --scoring generate"
        )

    # -- request types ----------------------------------------------------------------------
    def _isolating(self, requests: Sequence[Request], run, make_error) -> Iterator[tuple[int, Any]]:
        """Run in batches of same-modality requests; if a batch fails, retry its requests one at a
        time so a single bad input becomes one error record, not a lost batch."""
        groups: dict[bool, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.image is not None, []).append(i)
        for idx in sorted(groups.values(), key=lambda g: g[0]):
            for start in range(0, len(idx), self.chunk_size):
                part = idx[start : start + self.chunk_size]
                t0 = time.perf_counter()
                try:
                    results = run([requests[i] for i in part])
                except LetterTokenError:
                    raise
                except Exception as exc:
                    if len(part) == 1:
                        yield part[0], make_error(f"{type(exc).__name__}: {exc}")
                        continue
                    for i in part:
                        yield from ((i, res) for _, res in self._isolating([requests[i]], run, make_error))
                    continue
                dt = (time.perf_counter() - t0) / len(part)
                for i, res in zip(part, results):
                    res.latency_s = dt
                    yield i, res

    @torch.inference_mode()
    def _score_batch(self, requests: Sequence[Request]) -> list[OptionScores]:
        texts = [self.render(r) for r in requests]
        letter_ids = [self.letter_ids(t, r.letters) for t, r in zip(texts, requests)]
        logits = self.model(**self._inputs(requests, texts)).logits[:, -1, :]
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        return [
            OptionScores(logprobs={letter: float(logp[row, tid]) for letter, tid in zip(r.letters, ids)})
            for row, (r, ids) in enumerate(zip(requests, letter_ids))
        ]

    @torch.inference_mode()
    def _generate_batch(self, requests: Sequence[Request]) -> list[Generation]:
        texts = [self.render(r) for r in requests]
        inputs = self._inputs(requests, texts)
        n_new = max(r.max_new_tokens for r in requests)
        out = self.model.generate(
            **inputs,
            max_new_tokens=n_new,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        prompt_len = inputs["input_ids"].shape[1]
        new = out.sequences[:, prompt_len:].cpu()
        first = torch.log_softmax(out.scores[0].float(), dim=-1).cpu()
        eos = self.tokenizer.eos_token_id
        gens = []
        for row, r in enumerate(requests):
            tokens = new[row, : r.max_new_tokens].tolist()
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            try:
                ids = self.letter_ids(texts[row], r.letters)
                lps = {letter: float(first[row, tid]) for letter, tid in zip(r.letters, ids)}
            except LetterTokenError:
                lps = None
            n_gen = next((k + 1 for k, t in enumerate(tokens) if t == eos), len(tokens))
            gens.append(
                Generation(
                    text=text,
                    finish_reason="stop" if eos in tokens else "length",
                    usage={"prompt_tokens": int(inputs["attention_mask"][row].sum()), "completion_tokens": n_gen},
                    logprobs=lps,
                )
            )
        return gens

    def score_options(self, requests: Sequence[Request]) -> Iterator[tuple[int, OptionScores]]:
        yield from self._isolating(requests, self._score_batch, lambda m: OptionScores(error=ModelError(m)))

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Generation]]:
        yield from self._isolating(requests, self._generate_batch, lambda m: Generation(error=ModelError(m)))

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
