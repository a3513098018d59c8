"""Loading a processor on a machine without torchvision (image-only evaluation).

Processors of video-capable families (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, InternVL ...) carry
a video processor, and in transformers 5.x every video processor class needs torchvision. spuriverse
evaluates images only, so where torchvision is missing (it is here: its PyPI build fails to import beside
the CPU torch) the processor is loaded with a stand-in video processor that refuses any video input.
Where torchvision is importable nothing changes: `AutoProcessor.from_pretrained` runs as usual.
"""

from __future__ import annotations

from typing import Any

from transformers.image_processing_base import ImageProcessingMixin


class ImageOnlyVideoProcessor(ImageProcessingMixin):
    """Stand-in for a video processor when torchvision is absent: any video input is an error."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("video inputs need torchvision; spuriverse evaluates images only")


def _torchvision_missing(exc: BaseException) -> bool:
    return "torchvision" in str(exc).lower()


def video_stand_in_installed() -> bool:
    """Make `ImageOnlyVideoProcessor` acceptable where a `VideoProcessorMixin` is expected, only when
    transformers has no real one (torchvision missing). Returns whether the stand-in is in place."""
    import transformers.processing_utils as pu

    try:
        _ = pu.transformers_module.VideoProcessorMixin  # a lazy import: raises without torchvision
    except (AttributeError, ImportError):
        # setattr: transformers declares no such attribute for type checkers (it is one of its lazy names)
        setattr(pu.transformers_module, "VideoProcessorMixin", ImageOnlyVideoProcessor)  # noqa: B010
        return True
    return pu.transformers_module.VideoProcessorMixin is ImageOnlyVideoProcessor


def load_processor(checkpoint: str, **kwargs: Any) -> Any:
    """`AutoProcessor.from_pretrained`, falling back to an image-only processor when the checkpoint's
    video processor cannot load because torchvision is missing."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(checkpoint, **kwargs)
    except (ImportError, OSError, ValueError) as exc:  # transformers words it as any of these
        if not _torchvision_missing(exc) or not video_stand_in_installed():
            raise
        return AutoProcessor.from_pretrained(checkpoint, video_processor=ImageOnlyVideoProcessor(), **kwargs)
