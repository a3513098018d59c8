"""Tiny random-weight models of today's open VLM families (Qwen2.5-VL, Qwen3-VL, Llama-3.2-Vision,
Gemma 3, LLaVA-OneVision), built offline and loaded back through the production code
(`spuriverse.models.hf.HFBackend`: `AutoProcessor` / `AutoModelForImageTextToText.from_pretrained`).

Chat templates are short stand-ins with the real families' structure (role markers, where the image
placeholder goes, the generation prompt); the tokenizer is the shared tiny BPE.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spuriverse.models.hf_compat import ImageOnlyVideoProcessor, video_stand_in_installed
from spuriverse.demo.tiny_models import build_tokenizer

QWEN_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"]
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _save(model, processor, out: Path) -> Path:
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _qwen_tokenizer():
    return build_tokenizer(extra_special=QWEN_SPECIAL, image_token="<|image_pad|>")


def _qwen_ids(tok) -> dict[str, int]:
    ids = tok.convert_tokens_to_ids
    return {"image_token_id": ids("<|image_pad|>"), "video_token_id": ids("<|video_pad|>"),
            "vision_start_token_id": ids("<|vision_start|>"), "vision_end_token_id": ids("<|vision_end|>")}


def _qwen_text(tok, **extra) -> dict:
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **extra)


def build_tiny_qwen2_5_vl(out: str | Path, *, seed: int = 0) -> Path:
    """Qwen2.5-VL: dynamic resolution (image-token count follows the image size), pre-patchified
    pixel_values with image_grid_thw, M-RoPE, window attention in the vision tower."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessorPil,
    )

    video_stand_in_installed()
    tok = _qwen_tokenizer()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 56, patch_size=14,
                                                 merge_size=2, temporal_patch_size=2),
        tokenizer=tok, video_processor=ImageOnlyVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text(tok, rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        **_qwen_ids(tok),
    )
    torch.manual_seed(seed)
    return _save(Qwen2_5_VLForConditionalGeneration(config).eval(), processor, Path(out))


def build_tiny_qwen2_vl(out: str | Path, *, seed: int = 0) -> Path:
    """Qwen2-VL: Qwen2.5-VL's image pipeline (pre-patchified pixel_values, 2x2 merge) with a plain vision
    tower (no window attention) and M-RoPE."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil, Qwen2VLProcessor

    video_stand_in_installed()
    tok = _qwen_tokenizer()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 84, patch_size=14,
                                                 merge_size=2, temporal_patch_size=2),
        tokenizer=tok, video_processor=ImageOnlyVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config=_qwen_text(tok, rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        **_qwen_ids(tok),
    )
    torch.manual_seed(seed)
    return _save(Qwen2VLForConditionalGeneration(config).eval(), processor, Path(out))


def build_tiny_qwen3_vl(out: str | Path, *, seed: int = 0) -> Path:
    """Qwen3-VL: Qwen2.5-VL's image pipeline (patch 16) with DeepStack visual features injected into
    early language-model layers and interleaved M-RoPE."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    video_stand_in_installed()
    tok = _qwen_tokenizer()
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=32 * 32 * 4, max_pixels=64 * 64, patch_size=16,
                                                 merge_size=2, temporal_patch_size=2),
        tokenizer=tok, video_processor=ImageOnlyVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config=_qwen_text(tok, head_dim=8, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                 "mrope_section": [1, 1, 2], "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16,
                           deepstack_visual_indexes=[0]),
        **_qwen_ids(tok),
    )
    torch.manual_seed(seed)
    return _save(Qwen3VLForConditionalGeneration(config).eval(), processor, Path(out))


MLLAMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_tiny_mllama(out: str | Path, *, seed: int = 0) -> Path:
    """Llama-3.2-Vision (Mllama): tiled images with aspect-ratio ids, read by cross-attention layers
    (the image is one <|image|> token in the text)."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil, MllamaProcessor

    tok = build_tokenizer(extra_special=["<|python_tag|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                          image_token="<|image|>")
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=2),
        tokenizer=tok, chat_template=MLLAMA_CHAT_TEMPLATE,
    )
    config = MllamaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=4,
                           intermediate_size=64, vision_output_dim=64, image_size=28, patch_size=14,
                           max_num_tiles=2, intermediate_layers_indices=[0],
                           supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]]),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[1],
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<|image|>"),
    )
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config).eval()
    # The cross-attention gates start at zero (tanh(0) = 0): a freshly initialised Mllama ignores the
    # image entirely. Open them so the tiny model's answers depend on its input, as a trained one's do.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "cross_attn_attn_gate" in name or "cross_attn_mlp_gate" in name:
                param.fill_(1.0)
    return _save(model, processor, Path(out))


GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' "
    "else message['role'] }}\n{% for c in message['content'] %}{% if c['type'] == 'image' %}<start_of_image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_tiny_gemma3(out: str | Path, *, seed: int = 0) -> Path:
    """Gemma 3: SigLIP tower pooled to a fixed number of soft tokens between <start_of_image> and
    <end_of_image>; bidirectional attention over image tokens."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    tok = build_tokenizer(extra_special=["<start_of_turn>", "<end_of_turn>"], image_token="<image_soft_token>",
                          named={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"})
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok,
        chat_template=GEMMA3_CHAT_TEMPLATE, image_seq_length=4,
    )
    ids = tok.convert_tokens_to_ids
    config = Gemma3Config(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=16,
                         layer_types=["sliding_attention", "full_attention"],  # both kinds, as the real 5:1 mix
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4),
        mm_tokens_per_image=4, boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    # The image projection is initialised to zeros: a fresh Gemma 3 maps every image to the same soft
    # tokens. Give it random weights so the tiny model's answers depend on the image.
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 0.5)
    return _save(model, processor, Path(out))


def build_tiny_llava_onevision(out: str | Path, *, seed: int = 0) -> Path:
    """LLaVA-OneVision: SigLIP + Qwen2 with anyres-max tiling (variable image-token counts) and an
    image-newline token per row."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )

    video_stand_in_installed()
    tok = build_tokenizer(extra_special=["<|im_start|>", "<|im_end|>", "<video>"])
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32},
                                                        image_grid_pinpoints=pinpoints),
        tokenizer=tok, video_processor=ImageOnlyVideoProcessor(), num_image_tokens=16,
        vision_feature_select_strategy="full", chat_template=QWEN_CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>\n"),
    )
    config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=32, patch_size=8, hidden_size=32,
                           intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
        text_config=dict(model_type="qwen2", **_qwen_text(tok)),
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints, vision_feature_select_strategy="full", vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    return _save(LlavaOnevisionForConditionalGeneration(config).eval(), processor, Path(out))
