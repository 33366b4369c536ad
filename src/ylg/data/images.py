"""Reading one image file into the tensor every ylg dataset returns.

All datasets share one conversion so that a folder, an ``.npz`` and the built-in scenes give
identical tensors for identical pixels:

1. mode conversion to RGB: grayscale is replicated, 16-bit images are scaled to 8 bits,
   images with transparency (RGBA, LA, palette with a transparent index) are composited over
   white, CMYK / YCbCr / HSV go through PIL's converters; EXIF orientation is applied;
2. the largest centred square is cropped (odd margins put the extra pixel on the right /
   bottom, as ``(W - S) // 2``);
3. it is resized to ``resolution`` with PIL's Lanczos filter, whose support scales with the
   reduction factor, so downsampling is antialiased (no moire on fine detail);
4. ``uint8 [0, 255]`` is mapped to ``float32 [-1, 1]`` as ``x / 127.5 - 1``.

Unreadable files are the callers' business: :func:`verify_image` tells whether a file looks
complete (cheaply, without a full decode in the common cases) so that datasets can skip bad
files before training, and :func:`load_image` raises ``ValueError`` naming the path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DECODE_ERRORS",
    "IMAGE_EXTENSIONS",
    "center_crop_box",
    "is_image_file",
    "load_image",
    "pil_to_tensor",
    "to_rgb",
    "uint8_to_tensor",
    "verify_image",
]

#: File name endings treated as images (compared case-insensitively).
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
    ".pbm",
)

#: The errors PIL (and the dataset writer's openers) raise for missing, corrupt, truncated or
#: unsupported files.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError)

_JPEG_TAIL = 1024  # bytes searched for the end-of-image marker


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_EXTENSIONS` (no file access)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    return resolution


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (transparency composited over white)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        # A palette may carry a transparent index; go through RGBA so it is honoured.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16/32-bit grayscale: PIL's convert("L") clips instead of scaling.
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if array.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square ``(left, top, right, bottom)`` of a ``width x height`` image."""
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """``uint8 [H, W, 3]`` -> ``float32 [3, H, W]`` in ``[-1, 1]``."""
    # numpy, not torch, for this small elementwise work: no intra-op thread pool to wake.
    chw = np.transpose(array, (2, 0, 1)).astype(np.float32, order="C")  # [3, H, W] copy
    chw *= 1.0 / 127.5
    chw -= 1.0
    return torch.from_numpy(chw)


def pil_to_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    """RGB conversion, centre square crop and antialiased resize of a PIL image.

    Returns:
        ``float32 [3, resolution, resolution]`` in ``[-1, 1]``.
    """
    resolution = _check_resolution(resolution)
    image = to_rgb(image)
    if image.size == (resolution, resolution):
        square = image
    else:
        # Crop first: resize(box=...) would let the filter read pixels outside the square.
        # Lanczos widens its support by the reduction factor, which is what makes it an
        # antialiasing filter when shrinking.
        square = image.crop(center_crop_box(*image.size))
        if square.size != (resolution, resolution):
            square = square.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return uint8_to_tensor(np.asarray(square, dtype=np.uint8))


def load_image(path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """Read an image file as ``float32 [3, resolution, resolution]`` in ``[-1, 1]``.

    Largest centred square crop, antialiased (Lanczos) resize, grayscale / RGBA / palette /
    16-bit converted to RGB, EXIF orientation applied.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be decoded (corrupt, truncated, not an image), or
            ``resolution`` is not a positive int.
    """
    resolution = _check_resolution(resolution)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                # Let libjpeg decode at a reduced DCT scale when the image is much larger
                # than the target: far faster, and the Lanczos resize still antialiases.
                image.draft("RGB", (resolution * 2, resolution * 2))
            image.load()
            image = ImageOps.exif_transpose(image)
            return pil_to_tensor(image, resolution)
    except DECODE_ERRORS as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from err


def _jpeg_has_end_marker(path: Path) -> bool:
    """Whether the JPEG end-of-image marker FF D9 is among the last bytes of the file.

    Inside entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so
    FF D9 near the end of a file only appears when the file is complete.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - _JPEG_TAIL))
        return b"\xff\xd9" in f.read()


def verify_image(path: str | os.PathLike, full: bool = False) -> str | None:
    """Check that an image file can be read; return ``None`` if so, else the reason.

    The cheap check (``full=False``) opens the header with PIL and runs ``Image.verify()``
    (for PNG this walks every chunk and checks its CRC, so truncation is caught); for JPEG it
    also looks for the end-of-image marker in the file's tail, and only when that is missing
    (a truncated file, or a camera trailer after the image) decodes the file at a reduced
    scale to decide. ``full=True`` decodes every file completely.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            fmt = image.format
            if full:
                image.load()
                return None
            image.verify()
        if fmt == "JPEG" and not _jpeg_has_end_marker(path):
            with Image.open(path) as image:
                image.draft("RGB", (64, 64))
                image.load()
    except DECODE_ERRORS as err:
        return f"{type(err).__name__}: {err}"
    return None
