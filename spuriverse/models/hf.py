"""Local models through `AutoProcessor` + `AutoModelForImageTextToText` (any hub id or folder).

Batches are left-padded, so the last position of every row is its own answer position: option
log-probs come from one forward pass per batch, generation decodes only the new tokens, and results
do not depend on the batch size.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from spuriverse.models.adapters import adapter_base, load_adapter_model
from spuriverse.models.adapters import load_processor as load_adapter_processor
from spuriverse.models.hf_compat import load_processor
from spuriverse.models.pixels import PixelTable
from spuriverse.models.base import LVLM, Generation, ModelError, ModelLoadError, OptionScores, Request
from spuriverse.schema import ModelInfo

# One batch ready for the model: its requests, rendered texts, in-context letter ids and processor inputs.
Prepared = tuple[Sequence[Request], list[str], list[list[int] | None], dict[str, Any]]
Result = TypeVar("Result", OptionScores, Generation)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
QUANTIZATIONS = ("4bit", "8bit")


def quantization_config(quantization: str, device: torch.device, dtype: torch.dtype) -> Any:
    """transformers' `BitsAndBytesConfig` for 4-bit (NF4, double quantization) or 8-bit weights.
    bitsandbytes' kernels need a CUDA GPU: anywhere else this is a clear error before any load."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r} ({', '.join(QUANTIZATIONS)})")
    if device.type != "cuda":
        raise ValueError(
            f"--quantization {quantization} needs a CUDA GPU (bitsandbytes kernels); this run is on "
            f"{device.type}. Drop --quantization to evaluate in full precision (float32 on CPU)."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"--quantization {quantization} needs bitsandbytes: pip install 'spuriverse[quant]'") from exc
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


class LetterTokenError(RuntimeError):
    """An option letter is not exactly one token after the prompt: log-prob scoring is not sound."""


class HFBackend(LVLM):
    supports_logprobs = True
    needs_pixels = True

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
        workers: int | None = None,
        system_prompt: str = "prepend",
        prompt_format: str | None = None,
        quantization: str | None = None,
        temperature: float = 0.0,
        top_p: float | None = None,
        min_p: float | None = None,
        sample_seed: int | None = None,
    ) -> None:
        if system_prompt not in ("role", "prepend") or prompt_format not in (None, "chat", "raw"):
            raise ValueError("system_prompt must be role|prepend and prompt_format chat|raw")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # fp32 on CPU (half precision there is slow and inexact); the registry's dtype on GPU.
        name = "float32" if self.device.type == "cpu" and device_map is None else (dtype or "bfloat16")
        if name not in _DTYPES:
            raise ValueError(f"unknown dtype {name!r} ({', '.join(_DTYPES)})")
        quant = quantization_config(quantization, self.device, _DTYPES[name]) if quantization else None
        if quant is not None and device_map is None:
            device_map = str(self.device)  # bitsandbytes places the weights at load; .to() is refused
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        # temperature 0: greedy (the default). Sampling (a preset's) is seeded per batch, so it is
        # reproducible for one batch size; unlike greedy, it is not batch-size invariant.
        sample = temperature > 0
        # What generate() is given, also recorded as the run's generation settings.
        self.generation = {"do_sample": sample, "temperature": float(temperature), "top_p": top_p if sample else None,
                           "min_p": min_p if sample else None, "seed": sample_seed if sample else None}
        self.processor, model, revision = _load(checkpoint, revision, _DTYPES[name], device_map, quant)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # No chat template (PaliGemma): plain text, the processor inserts the image tokens itself.
        self.prompt_format = prompt_format or ("chat" if getattr(self.processor, "chat_template", None) else "raw")
        self.model = model.eval()
        if device_map is None:
            self.model.to(self.device)
        self.info = ModelInfo(
            alias=alias or checkpoint,
            backend="hf",
            checkpoint=checkpoint,
            revision=revision or getattr(self.model.config, "_commit_hash", None),
            dtype=name,
            device=str(self.model.device),
            quantization=quantization,
        )
        self._letter_cache: dict[tuple[str, str], int] = {}
        # rescale + normalize as a lookup of the processor's own values (bit-identical), where exact
        self._pixel_table = PixelTable.for_processor(self.processor)
        # A fast tokenizer must not be used from two threads at once: each thread gets its own copy
        # of the processor.
        self._local = threading.local()
        self._local.processor = self.processor
        self._need_letters = True
        cpu = self.model.device.type == "cpu"
        # One worker when sampling: parallel batches would share (and race on) the global RNG.
        self.workers = 1 if temperature > 0 else workers or (min(torch.get_num_threads(), 8) if cpu else 1)
        # The runner hands over many batches per call so workers rarely wait at a call boundary
        # (the runner also caps a chunk by decoded pixels, so large images stay bounded in memory).
        self.chunk_size = batch_size * 16 * max(2, self.workers)

    def _processor(self) -> Any:
        proc = getattr(self._local, "processor", None)
        if proc is None:
            proc = self._local.processor = copy.deepcopy(self.processor)
        return proc

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
        return self._processor().apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _inputs(self, requests: Sequence[Request], texts: list[str]) -> dict[str, torch.Tensor]:
        images = [r.image.pil() for r in requests if r.image is not None]
        if images and len(images) != len(requests):
            raise ValueError("a batch mixes requests with and without images")
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = [[im] for im in images]  # one list per prompt (Mllama, Gemma 3 need it)
        table = self._pixel_table if images else None
        batch = self._processor()(**kwargs, **(table.overrides if table else {}))
        if table is not None:
            pixels = table.apply(batch["pixel_values"])
            if pixels is None:  # not the uint8 pixels the table was made for: the stock way
                batch = self._processor()(**kwargs)
            else:
                batch["pixel_values"] = pixels
        # Some processors (PaliGemma) also return training labels: the forward would compute a loss.
        return {k: (v.to(self.model.device) if hasattr(v, "to") else v) for k, v in batch.items() if k != "labels"}

    def letter_ids(self, tail: str, letters: Sequence[str]) -> list[int]:
        """Token id of each letter as the model would write it right after `tail` (the decoded end
        of the actual model input), tokenized in context; raises if a letter is not exactly one
        token there."""
        ids = []
        for letter in letters:
            key = (tail, letter)
            if key not in self._letter_cache:
                self._letter_cache[key] = self._tokenize_letter(tail, letter)
            ids.append(self._letter_cache[key])
        return ids

    def _tokenize_letter(self, text: str, letter: str) -> int:
        tok = self._processor().tokenizer
        base = tok(text, add_special_tokens=False).input_ids
        # After "ASSISTANT:" a model writes " A"; after "assistant\n" (or PaliGemma's "\n") it writes "A".
        for cont in ([letter] if text[-1:].isspace() else [" " + letter, letter]):
            full = tok(text + cont, add_special_tokens=False).input_ids
            if len(full) == len(base) + 1 and full[: len(base)] == base:
                return full[-1]
        raise LetterTokenError(
            f"option letter {letter!r} is not a single token after the prompt for this tokenizer; "
            "use --scoring generate"
        )

    def _input_tails(self, inputs: dict[str, torch.Tensor], n_tokens: int = 8) -> list[str]:
        """The decoded last tokens of each row as the model will see them. Processors may append
        to the prompt (PaliGemma adds "\n"), so letters are tokenized after the real input."""
        tok = self._processor().tokenizer
        ids, mask = inputs["input_ids"].cpu(), inputs["attention_mask"].cpu()
        return [tok.decode(row[m.bool()][-n_tokens:].tolist(), skip_special_tokens=False) for row, m in zip(ids, mask)]

    # -- request types ----------------------------------------------------------------------
    def _batches(self, requests: Sequence[Request]) -> list[list[int]]:
        """Positions in batches of `chunk_size`, never mixing requests with and without images."""
        groups: dict[bool, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.image is not None, []).append(i)
        return [
            idx[s : s + self.batch_size]
            for idx in sorted(groups.values(), key=lambda g: g[0])
            for s in range(0, len(idx), self.batch_size)
        ]

    def _pipelined(self, requests: Sequence[Request], prepare: Callable[[Sequence[Request]], Prepared],
                   execute: Callable[[Prepared], list[Result]],
                   make_error: Callable[[str], Result]) -> Iterator[tuple[int, Result]]:
        """Run batches, yielding results in batch order.

        CPU: `workers` threads each prepare and run whole batches with one intra-op thread
        (weights shared, torch releases the GIL); on a few cores this beats one batch at a time
        on all threads, whose barriers idle cores while preprocessing waits. GPU: one worker
        prepares batch k+1 (template, tokenizer, image processor) while batch k runs.
        A failed batch is redone one request at a time, so a bad input costs one error record.
        """
        batches = self._batches(requests)
        if not batches:
            return
        parallel = self.workers > 1
        job: Callable[[Sequence[Request]], Any] = (lambda part: execute(prepare(part))) if parallel else prepare
        threads = torch.get_num_threads()
        if parallel:
            torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="spuriverse-batch") as pool:
                ahead = max(2, 2 * self.workers)
                futures: list[Future[Any] | None] = [pool.submit(job, [requests[i] for i in b]) for b in batches[:ahead]]
                for k, part in enumerate(batches):
                    if k + ahead < len(batches):
                        futures.append(pool.submit(job, [requests[i] for i in batches[k + ahead]]))
                    t0 = time.perf_counter()
                    future = futures[k]
                    assert future is not None
                    try:
                        results = future.result() if parallel else execute(future.result())
                    except LetterTokenError:
                        raise
                    except Exception as exc:
                        if len(part) == 1:
                            yield part[0], make_error(f"{type(exc).__name__}: {exc}")
                        else:
                            for i in part:
                                yield i, self._single(requests[i], prepare, execute, make_error)
                        continue
                    finally:
                        futures[k] = None  # free the batch's tensors
                    dt = (time.perf_counter() - t0) / len(part)
                    for i, res in zip(part, results):
                        res.latency_s = dt
                        yield i, res
        finally:
            if parallel:
                torch.set_num_threads(threads)

    @staticmethod
    def _single(request: Request, prepare: Callable[[Sequence[Request]], Prepared],
                execute: Callable[[Prepared], list[Result]], make_error: Callable[[str], Result]) -> Result:
        try:
            return execute(prepare([request]))[0]
        except LetterTokenError:
            raise
        except Exception as exc:
            return make_error(f"{type(exc).__name__}: {exc}")

    def _prepare(self, requests: Sequence[Request]) -> Prepared:
        """Chat template, in-context letter ids and processor inputs for one batch (thread-safe)."""
        texts = [self.render(r) for r in requests]
        inputs = self._inputs(requests, texts)
        letter_ids: list[list[int] | None] = []
        for tail, r in zip(self._input_tails(inputs), requests):
            try:
                letter_ids.append(self.letter_ids(tail, r.letters))
            except LetterTokenError:
                if self._need_letters:
                    raise
                letter_ids.append(None)
        return requests, texts, letter_ids, inputs

    @torch.inference_mode()
    def _score(self, prepared: Prepared) -> list[OptionScores]:
        requests, _, letter_ids, inputs = prepared
        # Only the last position's logits: no (batch x seq x vocab) tensor (GBs for 32k vocabularies).
        logits = self.model(**inputs, logits_to_keep=1).logits[:, -1, :]
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        out = []
        for row, (r, ids) in enumerate(zip(requests, letter_ids)):
            assert ids is not None  # scoring needs every letter as one token (_need_letters)
            out.append(OptionScores(logprobs={letter: float(logp[row, tid]) for letter, tid in zip(r.letters, ids)}))
        return out

    @torch.inference_mode()
    def _generate(self, prepared: Prepared) -> list[Generation]:
        requests, _, letter_ids, inputs = prepared
        n_new = max(r.max_new_tokens for r in requests)
        g = self.generation
        if g["do_sample"] and g["seed"] is not None:
            torch.manual_seed(g["seed"])  # per batch: the same batches sample the same tokens
        out = self.model.generate(
            **inputs,
            max_new_tokens=n_new,
            do_sample=g["do_sample"],
            temperature=g["temperature"] if g["do_sample"] else None,
            top_p=g["top_p"],
            min_p=g["min_p"],
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
            text = self._processor().tokenizer.decode(tokens, skip_special_tokens=True).strip()
            ids = letter_ids[row]
            lps = None if ids is None else {letter: float(first[row, tid]) for letter, tid in zip(r.letters, ids)}
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
        self._need_letters = True
        yield from self._pipelined(requests, self._prepare, self._score, lambda m: OptionScores(error=ModelError(m)))

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Generation]]:
        self._need_letters = False  # letter log-probs are a bonus in generation mode
        yield from self._pipelined(requests, self._prepare, self._generate, lambda m: Generation(error=ModelError(m)))

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _load(checkpoint: str, revision: str | None, dtype: torch.dtype, device_map: str | None,
          quant: Any) -> tuple[Any, Any, str | None]:
    """(processor, model, revision): a peft adapter folder loads as its base + the adapter, merged."""
    from transformers import AutoModelForImageTextToText

    try:
        adapter = adapter_base(checkpoint)
        if adapter is not None:
            processor = load_adapter_processor(checkpoint, *adapter, padding_side="left")
            model = load_adapter_model(checkpoint, *adapter, dtype=dtype, device_map=device_map)
            return processor, model, revision or adapter[1]
        processor = load_processor(checkpoint, revision=revision, padding_side="left")
        model = AutoModelForImageTextToText.from_pretrained(
            checkpoint, revision=revision, dtype=dtype, device_map=device_map,
            **({"quantization_config": quant} if quant is not None else {}),
        )
        return processor, model, revision
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load model {checkpoint!r}: {str(exc).splitlines()[0]} Without hub access, pass a local "
            "folder saved with save_pretrained as --model (make eval MODEL=/path), or run `make eval` with "
            "no MODEL for the offline demo."
        ) from exc
