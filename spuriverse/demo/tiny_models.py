"""A tiny random-weight LLaVA (the real architecture), built offline in ~0.1 s.

Saved with `save_pretrained` and loaded back through `AutoProcessor` /
`AutoModelForImageTextToText.from_pretrained`, exactly as a user's hub checkpoint would be. Used by
the offline demo (`make eval`), the tests and the benches. Its weights are RANDOM: it answers
nonsense, and everything that shows it says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedTokenizerFast

from spuriverse.schema import LETTERS


LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_CORPUS = [
    "USER: Question: What is the man by the bags awaiting? Options: (A) cab (B) train ASSISTANT: A",
    "Please select the correct answer from the options above. Answer with the option's letter only.",
    "Answer: (A) Answer: (B) Answer: (C) Answer: (D) Answer: (E) Answer: (F)",
    "The answer is B. The correct option is C. I choose D. Option E. Option F.",
    "[INST] a photo of a dog on a red sofa [/INST] The dog is brown.",
    "yes no one two three four cab train delivery skateboarder kitchen beach snow",
] + [f"ASSISTANT: {x} [/INST] {x} ({x}) {x}." for x in LETTERS] * 20


def _corpus() -> list[str]:
    """Training text: a few sentences plus the prompt templates, so prompts tokenize into a
    realistic number of tokens (as a real tokenizer's would), not one token per byte."""
    from spuriverse.eval.prompts import STRATEGIES, get_template

    templates = [get_template(s).system + "\n" + get_template(s).user for s in STRATEGIES]
    return _CORPUS + templates * 5


def build_tokenizer(extra_special: list[str] | None = None, vocab_size: int = 400,
                    image_token: str = "<image>", named: dict[str, str] | None = None,
                    corpus: list[str] | None = None, split_pattern: str | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained in-process; option letters with and without a space are single tokens.
    `image_token` is the placeholder the processor expands (Qwen-VL: "<|image_pad|>"); `named` are further
    special tokens processors read as tokenizer attributes (Gemma 3: boi_token, eoi_token).
    `corpus`: more training text. `split_pattern`: a regex whose matches are the pre-tokens (instead of
    GPT-2's word/punctuation split), so BPE may merge within each match (e.g. a whole option line)."""
    named = dict(named or {})
    wanted = [image_token] + list(extra_special or []) + list(named.values())
    special = ["<pad>", "<s>", "</s>", "<unk>"] + list(dict.fromkeys(wanted))
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if split_pattern is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split_pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
    )
    tok.train_from_iterator(_corpus() + list(corpus or []), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        extra_special_tokens={"image_token": image_token, **named},
    )
    fast.add_special_tokens({"additional_special_tokens": special[4:]})
    return fast


def llama_text_config(tok: PreTrainedTokenizerFast, hidden: int, layers: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )


def clip_vision_config(image_size: int, patch_size: int, hidden: int, layers: int = 2) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        projection_dim=hidden,
    )


def build_tiny_llava(
    out: str | Path,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden: int = 32,
    layers: int = 2,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> Path:
    """LLaVA-1.5 architecture (CLIP vision tower + Llama), random weights, saved to `out` (with
    `tokenizer`, or the default tiny one)."""
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out)
    tok = tokenizer if tokenizer is not None else build_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    image_token = tok.convert_tokens_to_ids("<image>")
    assert isinstance(image_token, int)  # one token in, one id out
    config = LlavaConfig(
        vision_config=clip_vision_config(image_size, patch_size, vision_hidden, vision_layers),
        text_config=llama_text_config(tok, hidden, layers),
        image_token_index=image_token,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
