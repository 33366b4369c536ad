"""Attention-map snapshots: where each head of an attention layer looks, over the image.

For a batch of samples and their attention probabilities ``[B, heads, Nq, Nk]`` a snapshot
is one row per sample: the sample, then one panel per head showing the head's *saliency*
(the attention each key receives, averaged over all queries), upsampled to the image and
overlaid on it. Keys are assumed to lie on a square raster grid (``Nk = k * k``), as in
:class:`ylg.attention.YLGAttention2d`, pooled or not.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ylg.viz.grids import make_grid, save_image, to_uint8


def key_saliency(probs: Tensor) -> Tensor:
    """``[B, heads, Nq, Nk]`` -> ``[B, heads, k, k]``: mean over queries, on the key grid,
    each map scaled to [0, 1] by its own maximum."""
    if probs.dim() != 4:
        raise ValueError(f"probs must be [B, heads, Nq, Nk], got {tuple(probs.shape)}")
    b, h, _, nk = probs.shape
    k = math.isqrt(nk)
    if k * k != nk:
        raise ValueError(f"keys must form a square grid, got Nk={nk}")
    sal = probs.detach().float().mean(dim=2).reshape(b, h, k, k)  # [B, heads, k, k]
    peak = sal.flatten(2).amax(dim=2).clamp_min(1e-12)[..., None, None]
    return sal / peak


def overlay(images: Tensor, maps: Tensor, alpha: float = 0.6, cmap: str = "inferno") -> Tensor:
    """Blend heat maps over images.

    Args:
        images: ``[B, 3, H, W]`` floats in [-1, 1].
        maps: ``[B, M, h, w]`` in [0, 1], upsampled to ``H x W`` (nearest, so the key cells
            stay visible).
    Returns:
        uint8 ``[B, M, 3, H, W]``.
    """
    import matplotlib

    b, _, hgt, wid = images.shape
    up = F.interpolate(maps.float(), size=(hgt, wid), mode="nearest")  # [B, M, H, W]
    lut = torch.tensor(matplotlib.colormaps[cmap](torch.linspace(0, 1, 256).numpy())[:, :3])
    colour = lut[(up.clamp(0, 1) * 255).round().long()]  # [B, M, H, W, 3]
    colour = colour.permute(0, 1, 4, 2, 3).float()  # [B, M, 3, H, W]
    base = (images.detach().float().cpu()[:, None] + 1) / 2  # [B, 1, 3, H, W] in [0, 1]
    gray = base.mean(dim=2, keepdim=True).expand_as(colour)
    mix = (1 - alpha) * gray + alpha * colour
    return (mix * 255).round().clamp(0, 255).to(torch.uint8)


def attention_snapshot(images: Tensor, probs: Tensor, scale: int = 2) -> Tensor:
    """A uint8 ``[3, H', W']`` picture: per sample, the image then one overlay per head.

    ``scale`` enlarges the (small) images by pixel repetition for legibility.
    """
    b = images.shape[0]
    heads = probs.shape[1]
    panels = overlay(images, key_saliency(probs))  # [B, heads, 3, H, W]
    rows = torch.cat([to_uint8(images)[:, None], panels], dim=1)  # [B, 1 + heads, 3, H, W]
    tiles = rows.flatten(0, 1)  # [B * (1 + heads), 3, H, W]
    if scale > 1:
        tiles = tiles.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    assert tiles.shape[0] == b * (1 + heads)
    return make_grid(tiles, nrow=1 + heads, padding=2, pad_value=255)


def save_attention_snapshot(
    images: Tensor, probs: Tensor, path: str | os.PathLike, scale: int = 2
) -> Path:
    return save_image(attention_snapshot(images, probs, scale=scale), path)
