"""Benchmark images, decoded and validated once when loaded (models receive them as `ImageInput`).

Lives in the data layer because loading decodes them; `spuriverse.models.base` re-exports both names
as part of the model interface."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image as PILImage

_MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


class ImageDecodeError(ValueError):
    """The bytes are not a readable image."""


@dataclass
class ImageInput:
    """An encoded image as stored in the benchmark, decoded and validated once.

    `data` keeps the original bytes (API backends send them as-is); `pil()` gives an RGB image
    for local models.
    """

    data: bytes = field(repr=False)
    mime: str
    size: tuple[int, int]
    _pil: PILImage.Image | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, keep_pixels: bool = True) -> ImageInput:
        """Decode fully (a truncated file fails here, not inside a model batch). With
        `keep_pixels=False` only the encoded bytes are kept (API backends send those)."""
        if not data:
            raise ImageDecodeError("empty image bytes")
        try:
            with PILImage.open(io.BytesIO(data)) as im:
                fmt = im.format or ""
                im.load()
                # convert() copies even an RGB image; the decoded one is used as it is
                rgb = im if im.mode == "RGB" else im.convert("RGB")
        except Exception as exc:  # PIL raises many types for corrupt input
            raise ImageDecodeError(f"cannot decode image: {type(exc).__name__}: {exc}") from exc
        mime = _MIME.get(fmt.upper())
        if mime is None:
            # Re-encode exotic formats as PNG so every backend gets a standard MIME type.
            buf = io.BytesIO()
            rgb.save(buf, format="PNG")
            data, mime = buf.getvalue(), "image/png"
        return cls(data=data, mime=mime, size=rgb.size, _pil=rgb if keep_pixels else None)

    def pil(self) -> PILImage.Image:
        if self._pil is None:
            self._pil = PILImage.open(io.BytesIO(self.data)).convert("RGB")
        return self._pil
