"""One source image to ``uint8 [R, R, 3]``: RGB, crop and resize, by rule.

Crops (:data:`CROPS`): ``center`` (the largest centred square) or ``none`` (the whole image,
padded to a square with white). Resizes (:data:`RESIZES`): ``lanczos`` (antialiased, PIL) or
``tf-bilinear``, the original YLG input pipeline's ``tf.image.crop_and_resize`` over its own
central square (2-tap bilinear, no antialiasing). This is not
:func:`ylg.metrics.resize_bilinear_tf1`, the FID Inception's ``resize_bilinear`` to 299.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from ylg.data.images import center_crop_box, to_rgb
from ylg.data.items import SkipItem

__all__ = ["CROPS", "RESIZES", "check_choice", "prepare_image", "tf_crop_and_resize"]

CROPS = ("center", "none")
RESIZES = ("lanczos", "tf-bilinear")


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def tf_crop_and_resize(image: Image.Image, resolution: int) -> np.ndarray:
    """The largest central square, bilinear-resampled without antialiasing, as YLG's TF code.

    The original input pipeline (``ylg/data_provider.py``, from tensorflow-gan) takes the
    largest central square with offsets ``ceil((H - S) / 2)``, ``ceil((W - S) / 2)`` and
    resamples it with ``tf.image.crop_and_resize``: output pixel ``i`` samples input
    coordinate ``offset + i * (S - 1) / (R - 1)`` (the crop's first and last pixels map to the
    output's first and last; ``R == 1`` samples the centre) and interpolates the 2 x 2
    neighbours bilinearly, whatever the scale, so downsampling aliases. Computed in float64
    and rounded to uint8 (the original kept floats).
    """
    x = np.asarray(image, dtype=np.float64)  # [H, W, 3]
    h, w = x.shape[:2]
    side = min(h, w)

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo_edge = math.ceil((n_in - side) / 2)
        if resolution > 1:
            pos = lo_edge + np.arange(resolution) * ((side - 1) / (resolution - 1))
        else:
            pos = np.array([lo_edge + 0.5 * (side - 1)])
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    rows = x[y0] * (1 - fy)[:, None, None] + x[y1] * fy[:, None, None]  # [R, W, 3]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]  # [R, R, 3]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def prepare_image(
    image: Image.Image,
    resolution: int,
    *,
    crop: str = "center",
    resize: str = "lanczos",
    min_size: int = 1,
) -> np.ndarray:
    """Convert a PIL image to ``uint8 [R, R, 3]``: RGB, crop, resize.

    Args:
        image: any PIL mode (grayscale, 16-bit, CMYK, RGBA / LA / transparent palette are
            converted as :func:`ylg.data.images.to_rgb`: transparency composited on white).
        resolution: output side ``R``.
        crop: ``"center"``: the largest centred square; ``"none"``: the whole image, padded
            to a square with white (aspect ratio kept).
        resize: ``"lanczos"`` (antialiased, PIL) or ``"tf-bilinear"`` (2-tap bilinear
            without antialiasing over the largest central square, as the original YLG input
            pipeline's ``tf.image.crop_and_resize``; see :func:`tf_crop_and_resize`).
        min_size: images whose shorter side is below this raise :class:`SkipItem`.

    Raises:
        SkipItem: the image is smaller than ``min_size``.
        ValueError: a bad ``crop`` / ``resize`` / ``resolution``.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    check_choice("crop", crop, CROPS)
    check_choice("resize", resize, RESIZES)
    if min(image.size) < min_size:
        raise SkipItem(f"smaller than --min-size {min_size} px")
    image = ImageOps.exif_transpose(image)
    image = to_rgb(image)
    if crop == "none" and image.width != image.height:
        side = max(image.size)
        padded = Image.new("RGB", (side, side), (255, 255, 255))
        padded.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = padded
    if resize == "tf-bilinear":
        return tf_crop_and_resize(image, resolution)  # its own (ceil) centre crop
    square = image.crop(center_crop_box(*image.size))
    if square.size == (resolution, resolution):
        return np.asarray(square, dtype=np.uint8).copy()
    return np.asarray(square.resize((resolution, resolution), Image.Resampling.LANCZOS))
