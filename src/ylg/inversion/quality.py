"""Reconstruction quality: PSNR and SSIM via scikit-image.

Images are ``[3, H, W]`` (or batches ``[B, 3, H, W]``) floats in ``[-1, 1]``; they are mapped
to ``[0, 1]`` (clamped) and compared with ``data_range=1``. SSIM uses scikit-image's default
7x7 uniform window over the colour channels (``channel_axis``), shrunk to the largest odd
size that fits for images smaller than 7 pixels.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["psnr", "ssim", "reconstruction_quality"]


def _to_hwc(image: Tensor) -> np.ndarray:
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be [3, H, W] (or [1, H, W]), got {tuple(image.shape)}")
    x = (image.detach().float().cpu().clamp(-1, 1) + 1) / 2  # [C, H, W] in [0, 1]
    return x.permute(1, 2, 0).numpy().astype(np.float64)


def _pairs(a: Tensor, b: Tensor):
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dim() == 4:
        return [(_to_hwc(x), _to_hwc(y)) for x, y in zip(a, b)], True
    return [(_to_hwc(a), _to_hwc(b))], False


def psnr(a: Tensor, b: Tensor) -> float | list[float]:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images); a list for batches."""
    from skimage.metrics import peak_signal_noise_ratio

    pairs, batched = _pairs(a, b)
    values = []
    for x, y in pairs:
        if np.array_equal(x, y):
            values.append(float("inf"))
        else:
            values.append(float(peak_signal_noise_ratio(x, y, data_range=1.0)))
    return values if batched else values[0]


def ssim(a: Tensor, b: Tensor) -> float | list[float]:
    """Structural similarity in ``[-1, 1]`` (1 = identical); a list for batches."""
    from skimage.metrics import structural_similarity

    pairs, batched = _pairs(a, b)
    values = []
    for x, y in pairs:
        side = min(x.shape[0], x.shape[1])
        win = min(7, side if side % 2 else side - 1)
        values.append(
            float(structural_similarity(x, y, data_range=1.0, channel_axis=2, win_size=win))
        )
    return values if batched else values[0]


def reconstruction_quality(target: Tensor, reconstruction: Tensor) -> dict[str, float]:
    """``{"psnr": dB, "ssim": ...}`` of one image pair ``[3, H, W]``."""
    return {"psnr": psnr(target, reconstruction), "ssim": ssim(target, reconstruction)}
