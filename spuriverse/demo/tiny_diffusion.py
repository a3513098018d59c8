"""Tiny random-weight Stable Diffusion pipelines of the real architectures, built offline.

Used by the tests, the synthesis bench and `make curate-demo`. Text-to-image (4-channel UNet), inpainting (9-channel UNet) and InstructPix2Pix (8-channel UNet),
each saved with `save_pretrained` so that the production backends load them back through the same
`from_pretrained` path users run (`AutoPipelineForText2Image`, `AutoPipelineForInpainting`,
`StableDiffusionInstructPix2PixPipeline`). Weights are random: the images are noise, but seeding,
batching, masking and sizes are real. Building one takes well under a second.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

_MERGES = ["t h", "th e</w>", "a n", "an d</w>", "o n</w>", "i n", "in g</w>", "e r</w>", "o f</w>", "c a", "ca t</w>"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-level table: every byte to a printable unicode character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer_files(folder: str | Path) -> tuple[Path, Path]:
    """vocab.json + merges.txt for `CLIPTokenizer`: the byte table, its end-of-word forms, a few
    merges and the two special tokens (~530 entries)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def _components(unet_in_channels: int, tmp: Path, seed: int) -> dict:
    from diffusers import DDIMScheduler
    from diffusers.models import AutoencoderKL, UNet2DConditionModel  # the package root shows type checkers dummies
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, _ = write_clip_tokenizer_files(tmp)
    tokenizer = CLIPTokenizer.from_pretrained(vocab.parent, model_max_length=77)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=unet_in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return dict(
        unet=unet.eval(),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build(pipeline_cls_name: str, unet_in_channels: int, out: str | Path, seed: int) -> Path:
    import diffusers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny-tok-") as tmp:
        pipe = getattr(diffusers, pipeline_cls_name)(**_components(unet_in_channels, Path(tmp), seed))
    pipe.save_pretrained(out)
    return out


def build_tiny_sd(out: str | Path, *, seed: int = 0) -> Path:
    """Text-to-image `StableDiffusionPipeline` (default 64x64, latents 32x32)."""
    return _build("StableDiffusionPipeline", 4, out, seed)


def build_tiny_inpaint(out: str | Path, *, seed: int = 0) -> Path:
    """`StableDiffusionInpaintPipeline`: 9-channel UNet (latents + mask + masked-image latents)."""
    return _build("StableDiffusionInpaintPipeline", 9, out, seed)


def build_tiny_instruct_pix2pix(out: str | Path, *, seed: int = 0) -> Path:
    """`StableDiffusionInstructPix2PixPipeline`: 8-channel UNet (latents + source-image latents)."""
    return _build("StableDiffusionInstructPix2PixPipeline", 8, out, seed)
