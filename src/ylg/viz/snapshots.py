"""Attention-map snapshots: where each head of an attention layer looks, over the image.

For a batch of samples and their attention probabilities ``[B, heads, Nq, Nk]`` a snapshot
is one row per sample: the sample, then one panel per head showing the head's saliency map,
upsampled to the image and overlaid on it. Keys are assumed to lie on a square raster grid
(``Nk = k * k``), as in :class:`ylg.attention.YLGAttention2d`, pooled or not.

The maps are ``relative`` (:func:`relative_saliency`): the attention each key receives,
relative to the uniform share of the rows of the queries that may see it, averaged over
those queries. A head that attends uniformly within its mask is flat (1 everywhere), so the
picture changes only when the model's attention does. (The plain mean over all queries,
:func:`key_saliency`, is dominated by how many queries the mask lets see each key: it looks
the same for any image and any training step.) The colour scale is fixed, ``[0, vmax]``
with ``vmax = 3`` by default (1 = uniform), so snapshots of different steps compare.

- :func:`attention_snapshot`: a bare tile grid (image | one tile per head), uint8;
- :func:`attention_snapshot_figure`: the same maps with head names and a colour bar, uint8.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ylg.attention.analysis import saliency_from_probs
from ylg.viz.attention import (
    _colorbar,
    _image_hwc,
    _new_figure,
    _overlay,
    _titles,
    _upsample,
    figure_to_uint8,
)
from ylg.viz.grids import make_grid, save_image, to_uint8

#: top of the fixed colour scale of the snapshots (1 = uniform within the mask)
SNAPSHOT_VMAX = 3.0


def relative_saliency(probs: Tensor, masks: Tensor | None = None) -> Tensor:
    """``[B, heads, Nq, Nk]`` -> ``[B, heads, k, k]``: the ``relative`` normalisation of
    :func:`ylg.attention.analysis.saliency_from_probs` (1 = uniform within the mask) on the
    square key grid; ``masks [heads, Nq, Nk]`` default to the non-zero pattern of ``probs``."""
    if probs.dim() != 4:
        raise ValueError(f"probs must be [B, heads, Nq, Nk], got {tuple(probs.shape)}")
    k = math.isqrt(probs.shape[-1])
    if k * k != probs.shape[-1]:
        raise ValueError(f"keys must form a square grid, got Nk={probs.shape[-1]}")
    return saliency_from_probs(probs.detach().float(), (k, k), "relative", masks)


def key_saliency(probs: Tensor) -> Tensor:
    """``[B, heads, Nq, Nk]`` -> ``[B, heads, k, k]``: mean over queries, on the key grid,
    each map scaled to [0, 1] by its own maximum (the ``paper`` normalisation; not used by
    the snapshots, whose maps it would hide behind the mask's structure)."""
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


def attention_snapshot(
    images: Tensor,
    probs: Tensor,
    scale: int = 2,
    masks: Tensor | None = None,
    vmax: float = SNAPSHOT_VMAX,
) -> Tensor:
    """A uint8 ``[3, H', W']`` picture: per sample, the image then one overlay per head
    (``relative`` maps on the fixed scale ``[0, vmax]``).

    ``scale`` enlarges the (small) images by pixel repetition for legibility.
    """
    b = images.shape[0]
    heads = probs.shape[1]
    maps = relative_saliency(probs, masks).cpu() / vmax  # [B, heads, k, k], 1 = vmax
    panels = overlay(images, maps)  # [B, heads, 3, H, W]
    rows = torch.cat([to_uint8(images)[:, None], panels], dim=1)  # [B, 1 + heads, 3, H, W]
    tiles = rows.flatten(0, 1)  # [B * (1 + heads), 3, H, W]
    if scale > 1:
        tiles = tiles.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    assert tiles.shape[0] == b * (1 + heads)
    return make_grid(tiles, nrow=1 + heads, padding=2, pad_value=255)


def attention_snapshot_figure(
    images: Tensor,
    probs: Tensor,
    head_names: list[str] | None = None,
    masks: Tensor | None = None,
    vmax: float = SNAPSHOT_VMAX,
    title: str | None = None,
) -> Tensor:
    """The snapshot as a figure: per sample a row (image | one overlay per head), panels
    titled with the head names (``0: RTL step 0``, ...; :func:`ylg.attention.analysis.head_names`),
    one colour bar (``[0, vmax]``, 1 = uniform within the mask). Returns uint8 ``[3, H, W]``."""
    maps = relative_saliency(probs, masks).cpu()  # [B, heads, k, k]
    b, heads = maps.shape[:2]
    titles = _titles(heads, head_names)
    fig, axes = _new_figure(b, heads + 1, panel=1.5)
    mappable = None
    for i in range(b):
        img = _image_hwc(images[i])
        up = _upsample(maps[i], img.shape[0]).numpy()  # [heads, R, R]
        axes[i, 0].imshow(img)
        for h in range(heads):
            mappable = _overlay(axes[i, h + 1], img, up[h], vmax)
            if i == 0:
                axes[i, h + 1].set_title(titles[h], fontsize=7)
    _colorbar(fig, mappable, axes[:, 1:].flat, "attention / uniform share (1 = uniform)")
    if title:
        fig.suptitle(title, fontsize=9)
    return figure_to_uint8(fig)


def save_attention_snapshot(
    images: Tensor, probs: Tensor, path: str | os.PathLike, scale: int = 2
) -> Path:
    return save_image(attention_snapshot(images, probs, scale=scale), path)
