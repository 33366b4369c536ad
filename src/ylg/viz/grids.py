"""Image grids and files: [-1, 1] float batches to uint8 grids, PNGs and GIFs (no torchvision)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """``[..., 3, H, W]`` floats in [-1, 1] -> uint8 in [0, 255] (clamped, rounded)."""
    return ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def make_grid(
    images: Tensor,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: int = 0,
    row_labels: list[str] | None = None,
):
    """Tile ``[N, 3, H, W]`` images into one uint8 ``[3, rows*(H+p)+p, nrow*(W+p)+p]``.

    Float input is taken to be in [-1, 1]; uint8 input is used as is. ``nrow`` (images per row)
    defaults to ``ceil(sqrt(N))``. ``row_labels`` (one string per row, e.g. class names) adds
    a margin on the left with each row's label (see :func:`add_row_labels`).
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
    if row_labels is not None:
        grid = add_row_labels(grid, row_labels, h, padding=p, pad_value=pad_value)
    return grid


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable (needs FreeType)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()  # the fixed bitmap font


def add_row_labels(
    grid: Tensor, row_labels: list[str], row_height: int, padding: int = 2, pad_value: int = 0
) -> Tensor:
    """A uint8 ``[3, H, W]`` grid with a margin on the left naming each row.

    Row ``r`` spans ``padding + r * (row_height + padding)`` to ``+ row_height``; its label
    is drawn there, vertically centred, in a margin as wide as the longest label (PIL's
    default font, light text on a dark margin or dark on a light one). Labels beyond the
    grid's rows are an error; fewer labels leave the last rows unnamed.
    """
    from PIL import Image, ImageDraw

    if grid.dtype != torch.uint8 or grid.dim() != 3 or grid.shape[0] != 3:
        raise ValueError(f"grid must be uint8 [3, H, W], got {grid.dtype} {tuple(grid.shape)}")
    rows = (grid.shape[1] - padding) // (row_height + padding)
    labels = [str(t) for t in row_labels]
    if len(labels) > rows:
        raise ValueError(f"{len(labels)} row labels for a grid of {rows} rows")
    font = _font(max(8, min(14, int(row_height * 0.4))))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max((measure.textlength(t, font=font) for t in labels), default=0)
    margin = int(math.ceil(width)) + 2 * max(padding, 3)
    canvas = Image.new("RGB", (margin + grid.shape[2], grid.shape[1]), (pad_value,) * 3)
    canvas.paste(Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy()), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    ink = (0, 0, 0) if pad_value > 127 else (255, 255, 255)
    for r, text in enumerate(labels):
        middle = padding + r * (row_height + padding) + row_height / 2
        draw.text((max(padding, 3), middle), text, fill=ink, font=font, anchor="lm")
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).contiguous()


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Save one ``[3, H, W]`` image (uint8, or float in [-1, 1]) as PNG/JPEG by extension."""
    from PIL import Image

    x = image if image.dtype == torch.uint8 else to_uint8(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x.permute(1, 2, 0).contiguous().numpy()).save(path)
    return path


def save_grid(
    images: Tensor,
    path: str | os.PathLike,
    nrow: int | None = None,
    row_labels: list[str] | None = None,
) -> Path:
    """``make_grid`` then ``save_image``; ``row_labels`` names each row in a left margin."""
    return save_image(make_grid(images, nrow=nrow, row_labels=row_labels), path)


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
