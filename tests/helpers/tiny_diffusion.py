"""Tiny random-weight diffusers pipelines: the builders live in the package (`make curate-demo` uses them)."""

from spuriverse.demo.tiny_diffusion import build_tiny_inpaint, build_tiny_instruct_pix2pix, build_tiny_sd, write_clip_tokenizer_files

__all__ = ["build_tiny_inpaint", "build_tiny_instruct_pix2pix", "build_tiny_sd", "write_clip_tokenizer_files"]
