"""Image grids and files: [-1, 1] float batches to uint8 grids, PNGs and GIFs (no torchvision)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """``[..., 3, H, W]`` floats in [-1, 1] -> uint8 in [0, 255] (clamped, rounded)."""
    return ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 0):
    """Tile ``[N, 3, H, W]`` images into one uint8 ``[3, rows*(H+p)+p, nrow*(W+p)+p]``.

    Float input is taken to be in [-1, 1]; uint8 input is used as is. ``nrow`` (images per row)
    defaults to ``ceil(sqrt(N))``.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got {tuple(images.shape)}")
    x = images if images.dtype == torch.uint8 else to_uint8(images)
    x = x.cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    p = padding
    grid = torch.full((3, rows * (h + p) + p, nrow * (w + p) + p), pad_value, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = p + r * (h + p), p + c * (w + p)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Save one ``[3, H, W]`` image (uint8, or float in [-1, 1]) as PNG/JPEG by extension."""
    from PIL import Image

    x = image if image.dtype == torch.uint8 else to_uint8(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x.permute(1, 2, 0).contiguous().numpy()).save(path)
    return path


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """``make_grid`` then ``save_image``."""
    return save_image(make_grid(images, nrow=nrow), path)


def save_gif(
    frames: Tensor | list[Tensor], path: str | os.PathLike, duration_ms: int = 80, loop: int = 0
) -> Path:
    """Animated GIF from frames ``[T, 3, H, W]`` (uint8, or float in [-1, 1])."""
    from PIL import Image

    frames = list(frames)
    if not frames:
        raise ValueError("save_gif needs at least one frame, got 0")
    pil = [
        Image.fromarray((f if f.dtype == torch.uint8 else to_uint8(f)).permute(1, 2, 0).numpy())
        for f in frames
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil[0].save(
        path, save_all=True, append_images=pil[1:], duration=duration_ms, loop=loop, optimize=False
    )
    return path
