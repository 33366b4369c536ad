"""Saliency maps from a discriminator's attention: where, per head, D looks in an image.

D's attention layer gives, for every query position, a distribution over key positions
(``probs [B, heads, Nq, Nk]``, each row summing to 1). Averaging over the queries leaves one
distribution over the keys per head: how much attention each key cell receives in total,
i.e. which parts of the image the head finds relevant. Keys lie on the key grid of the layer
(half the feature map in each direction when it pools, as SAGAN does) in raster order.

The inversion losses weight D0's feature difference by these maps after projecting them
(nearest neighbour) to D0's spatial size; :func:`project_saliency` does that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["attention_probs", "project_saliency", "require_attention", "saliency_maps"]


def require_attention(D: nn.Module, what: str = "saliency maps") -> nn.Module:
    """D's attention layer, or a ValueError saying that ``what`` needs one."""
    attention = getattr(D, "attention", None)
    if attention is None:
        raise ValueError(
            f"{what} need a discriminator with an attention layer, but this one has none "
            "(attention variant 'none'); use method 'pixel' or 'features', or a checkpoint "
            "trained with attention"
        )
    if not hasattr(D, "features"):
        raise ValueError(
            f"{what} need D.features(x) (the features before the attention layer); "
            f"{type(D).__name__} has no such method"
        )
    return attention


def attention_probs(D: nn.Module, features: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Run D's attention layer on pre-attention ``features [B, C, h, w]``.

    Returns:
        ``probs [B, heads, Nq, Nk]`` and the key grid ``(hk, wk)`` with ``hk * wk == Nk``.
    """
    attention = require_attention(D)
    _, probs = attention(features, return_attention=True)  # [B, heads, Nq, Nk]
    h, w = features.shape[-2:]
    pooled = bool(getattr(attention, "pool", False))
    key_grid = (h // 2, w // 2) if pooled else (h, w)
    if key_grid[0] * key_grid[1] != probs.shape[-1]:
        raise ValueError(
            f"attention has Nk={probs.shape[-1]} keys but the key grid of a {h}x{w} feature "
            f"map (pool={pooled}) is {key_grid[0]}x{key_grid[1]}"
        )
    return probs, key_grid


def saliency_from_probs(probs: Tensor, key_grid: tuple[int, int]) -> Tensor:
    """``probs [B, heads, Nq, Nk]`` -> ``[B, heads, hk, wk]``: the mean over queries, on the key
    grid (raster order). Each head's map sums to 1 when each query's row does."""
    b, heads, _, nk = probs.shape
    hk, wk = key_grid
    if hk * wk != nk:
        raise ValueError(f"key_grid {hk}x{wk} does not hold Nk={nk} keys")
    return probs.float().mean(dim=2).reshape(b, heads, hk, wk)  # [B, heads, hk, wk]


def saliency_maps(D: nn.Module, images: Tensor, labels: Tensor | None = None) -> Tensor:
    """Per-head saliency of D's attention on ``images [B, 3, R, R]`` -> ``[B, heads, hk, wk]``.

    Every map is a distribution over D's key grid (non-negative, sums to 1 per head). Computed
    as ``D.attention(D.features(images))``: in a projection discriminator the class label
    enters only after the attention layer, so ``labels`` does not change the maps; it is
    accepted (and checked against ``D.num_classes``) so that callers can pass what they have.
    Runs without gradients and leaves D's mode and statistics unchanged.

    Raises:
        ValueError: D has no attention layer, or ``images`` / ``labels`` are malformed.
    """
    require_attention(D)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    num_classes = int(getattr(D, "num_classes", 0))
    if labels is not None and num_classes > 0:
        labels = torch.as_tensor(labels)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape [{images.shape[0]}], got {tuple(labels.shape)}"
            )
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.numel():
            raise ValueError(
                f"class {int(bad[0])} is out of range: valid classes are 0..{num_classes - 1}"
            )
    with torch.no_grad():
        features = D.features(images)  # [B, C, h, w]
        probs, key_grid = attention_probs(D, features)
    return saliency_from_probs(probs, key_grid)


def project_saliency(maps: Tensor, size: tuple[int, int], mean_one: bool = True) -> Tensor:
    """Project saliency ``[B, M, hk, wk]`` to ``size = (h, w)`` by nearest neighbour.

    With ``mean_one`` each map is rescaled to spatial mean 1 (it sums to ``h * w``), so that a
    uniform saliency weights every position by exactly 1 and the saliency losses reduce to
    the plain feature loss (see docs/inversion.md).

    Returns:
        ``[B, M, h, w]``.
    """
    if maps.dim() != 4:
        raise ValueError(f"saliency maps must be [B, M, hk, wk], got shape {tuple(maps.shape)}")
    up = F.interpolate(maps.float(), size=tuple(size), mode="nearest")  # [B, M, h, w]
    if mean_one:
        total = up.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)  # [B, M, 1, 1]
        up = up * (size[0] * size[1] / total)
    return up
