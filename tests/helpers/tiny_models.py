"""Tiny random-weight vision-language models of the real architectures, built offline.

LLaVA (and the shared tokenizer) live in the package (`spuriverse.demo.tiny_models`, used by the offline
demo); the other architectures are test-only. All are loaded back by the production code through
`AutoProcessor` / `AutoModelForImageTextToText.from_pretrained`. Weights are random: the models answer
nonsense, but every invariant that matters (batching, padding, tokenization, determinism) is real.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spuriverse.demo.tiny_models import (  # noqa: F401  (re-exported for tests and benches)
    LLAVA_CHAT_TEMPLATE,
    clip_vision_config,
    llama_text_config,
    build_tiny_llava,
    build_tokenizer,
)

MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ ' [/INST]' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}{% endfor %}"
)


def build_tiny_llava_next(out: str | Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """LLaVA-NeXT (anyres tiling; variable image-token counts per image), Mistral-style template."""
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    out = Path(out)
    tok = build_tokenizer()
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=MISTRAL_CHAT_TEMPLATE,
    )
    config = LlavaNextConfig(
        vision_config=clip_vision_config(32, 8, 32),
        text_config=llama_text_config(tok, hidden, 2),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_paligemma(out: str | Path, *, seed: int = 0) -> Path:
    """PaliGemma (SigLIP + Gemma): no chat template; the processor inserts image tokens, adds BOS
    and appends "\n" to the prompt (so the answer letter follows a newline)."""
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    out = Path(out)
    tok = build_tokenizer()
    processor = PaliGemmaProcessor(
        image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}, image_seq_length=16), tokenizer=tok
    )  # adds 1,152 <loc>/<seg> tokens to the tokenizer: size the vocabulary after it
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
        text_config=GemmaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tiny_idefics3(out: str | Path, *, seed: int = 0) -> Path:
    """Idefics3 (the SmolVLM architecture): image blocks wrapped in <fake_token_around_image>,
    a chat template with a system role; image splitting off."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    out = Path(out)
    tok = build_tokenizer(extra_special=["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"])
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": 32},
                                               max_image_size={"longest_edge": 32}),
        tokenizer=tok, image_seq_len=4, chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=4),
        text_config=llama_text_config(tok, 32, 2),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
