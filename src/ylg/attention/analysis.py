"""Saliency maps from a discriminator's attention: where, per head, D looks in an image.

D's attention layer gives, for every query position ``q``, a distribution over key positions
``k`` (``probs [B, heads, Nq, Nk]``, each row summing to 1; masked pairs are exactly 0).
Summing a head's attention over the queries says how much attention each key cell receives.
How that sum is normalised matters, because a sparse mask lets different keys be seen by
very different numbers of queries (``A[q, k]`` below is True when the head's mask allows
query ``q`` to attend key ``k``; ``n_q = #{k : A[q, k]}``, ``m_k = #{q : A[q, k]}``):

- ``paper`` (default): ``S[k] = (1 / Nq) * sum_q p[q, k]``, the mean over all queries; a
  distribution over the keys (sums to 1 per head). With a sparse mask a key seen by many
  queries gets a large weight whatever the image: the map is dominated by ``m_k``.
- ``code`` (the authors' TensorFlow ``get_saliency``): ``S[k] = sum_q p[q, k] / m_k``, the
  mean over the queries that may attend ``k``. The original counts the non-zero entries of
  the probabilities; ylg counts the mask, which is the same whenever no allowed probability
  underflows to 0 (the original adds -1000 to masked logits, ylg -inf).
- ``relative`` (for figures): ``S[k] = (1 / m_k) * sum_{q : A[q, k]} n_q * p[q, k]``, the
  attention relative to the uniform share ``1 / n_q`` of each query's row. A head that
  attends uniformly within its mask gives ``S = 1`` everywhere (a flat map); ``S > 1``
  where the head looks more than uniformly. Dense attention: ``relative = Nk * paper``.

Keys lie on the key grid of the layer (half the feature map in each direction when it pools,
as SAGAN does) in raster order. Keys that no query may attend get 0 in ``code`` and
``relative``.

The inversion losses weight D0's feature difference by these maps after projecting them
(nearest neighbour) to D0's spatial size; :func:`project_saliency` does that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "NORMALIZATIONS",
    "attention_masks",
    "attention_probs",
    "head_names",
    "mask_only_saliency",
    "median_cross_correlation",
    "project_saliency",
    "require_attention",
    "saliency_from_probs",
    "saliency_maps",
    "select_heads",
]

NORMALIZATIONS = ("paper", "code", "relative")


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


def attention_masks(attention: nn.Module, probs: Tensor, query_grid: tuple[int, int]) -> Tensor:
    """The boolean masks ``[heads, Nq, Nk]`` of ``attention`` for a query grid, or, for a layer
    without ``masks(h, w)``, the non-zero pattern of ``probs [B, heads, Nq, Nk]`` (any image)."""
    masks = getattr(attention, "masks", None)
    if callable(masks):
        m = masks(*query_grid)
        if m.shape == probs.shape[1:]:
            return m.to(probs.device)
    return (probs != 0).any(dim=0)


def head_names(attention: nn.Module | None, heads: int | None = None) -> list[str]:
    """Readable names of an attention layer's heads: ``RTL step 0``, ``LTR step 1``, ``dense``;
    ``head h`` when the layout is an explicit tensor or unknown."""
    specs = getattr(attention, "_specs", None)
    n = heads if heads is not None else int(getattr(attention, "heads", 0))
    if specs is None:
        return [f"head {h}" for h in range(n)]
    names = []
    for h, spec in enumerate(specs):
        if spec == "dense":
            names.append(f"{h}: dense")
        else:
            names.append(f"{h}: {spec[0].upper()} step {spec[1]}")
    return names


def select_heads(maps: Tensor, heads: Sequence[int] | None, dim: int = 1) -> Tensor:
    """Keep the listed heads of ``maps`` (along ``dim``); all when ``heads`` is None."""
    if heads is None:
        return maps
    heads = [int(h) for h in heads]
    n = maps.shape[dim]
    if not heads or any(h < 0 or h >= n for h in heads):
        raise ValueError(f"heads={heads} must list head indices in 0..{n - 1} (at least one)")
    return maps.index_select(dim, torch.tensor(heads, device=maps.device))


def _check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization={normalization!r} is not known; valid: {', '.join(NORMALIZATIONS)}"
        )
    return normalization


def saliency_from_probs(
    probs: Tensor,
    key_grid: tuple[int, int],
    normalization: str = "paper",
    masks: Tensor | None = None,
) -> Tensor:
    """``probs [B, heads, Nq, Nk]`` -> ``[B, heads, hk, wk]`` on the key grid (raster order).

    ``normalization`` as in the module doc. ``masks [heads, Nq, Nk]`` (bool) are needed for
    ``code`` and ``relative``; without them the non-zero pattern of ``probs`` is used (the
    original code's ``count_nonzero``).
    """
    _check_normalization(normalization)
    b, heads, nq, nk = probs.shape
    hk, wk = key_grid
    if hk * wk != nk:
        raise ValueError(f"key_grid {hk}x{wk} does not hold Nk={nk} keys")
    p = probs.float()
    if normalization == "paper":
        return p.mean(dim=2).reshape(b, heads, hk, wk)  # [B, heads, hk, wk]
    allowed = (p != 0).any(dim=0) if masks is None else masks.to(p.device).bool()
    if allowed.shape != (heads, nq, nk):
        raise ValueError(
            f"masks must be [heads={heads}, Nq={nq}, Nk={nk}], got {tuple(allowed.shape)}"
        )
    allowed = allowed.float()  # [heads, Nq, Nk]
    m_k = allowed.sum(dim=1)  # [heads, Nk] queries that may attend each key
    if normalization == "code":
        total = p.sum(dim=2)  # [B, heads, Nk]
    else:
        n_q = allowed.sum(dim=2, keepdim=True)  # [heads, Nq, 1] keys each query may see
        total = (p * n_q).sum(dim=2)  # [B, heads, Nk]
    maps = torch.where(m_k > 0, total / m_k.clamp_min(1), torch.zeros_like(total))
    return maps.reshape(b, heads, hk, wk)


def saliency_maps(
    D: nn.Module,
    images: Tensor,
    labels: Tensor | None = None,
    *,
    normalization: str = "paper",
    heads: Sequence[int] | None = None,
) -> Tensor:
    """Per-head saliency of D's attention on ``images [B, 3, R, R]`` -> ``[B, heads, hk, wk]``.

    ``normalization``: ``paper`` (default; each map is a distribution over D's key grid:
    non-negative, sums to 1), ``code`` (the authors' code: summed attention over the number of
    queries whose mask allows the key) or ``relative`` (1 = uniform within the mask); see the
    module doc. ``heads``: indices of the heads to keep (default all; the original inversion
    uses 0-3, the RTL heads of the ``ylg`` layout).

    Computed as ``D.attention(D.features(images))``: in a projection discriminator the class
    label enters only after the attention layer, so ``labels`` does not change the maps; it is
    accepted (and checked against ``D.num_classes``) so that callers can pass what they have.
    Runs without gradients and leaves D's mode and statistics unchanged.

    Raises:
        ValueError: D has no attention layer, or ``images`` / ``labels`` / ``normalization``
            / ``heads`` are malformed.
    """
    attention = require_attention(D)
    _check_normalization(normalization)
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
        probs, key_grid = attention_probs(D, features)  # [B, heads, Nq, Nk]
        masks = None
        if normalization != "paper":
            masks = attention_masks(attention, probs, tuple(features.shape[-2:]))
        maps = saliency_from_probs(probs, key_grid, normalization, masks)
    return select_heads(maps, heads)


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


def mask_only_saliency(
    D: nn.Module,
    images: Tensor,
    *,
    normalization: str = "code",
    heads: Sequence[int] | None = None,
) -> Tensor:
    """The saliency maps D's attention would give if it had learned nothing: each head's
    probabilities replaced by uniform weights inside its mask (``mask / mask.sum(-1)``), then
    :func:`saliency_from_probs` as :func:`saliency_maps` does -> ``[B, heads, hk, wk]`` (the
    same map for every image). ``saliency_maps(...) / mask_only_saliency(...)`` is what the
    learned attention adds over its mask."""
    attention = require_attention(D)
    _check_normalization(normalization)
    with torch.no_grad():
        features = D.features(images)  # [B, C, h, w]
        probs, key_grid = attention_probs(D, features)  # [B, heads, Nq, Nk]
        masks = attention_masks(attention, probs, tuple(features.shape[-2:]))  # [heads, Nq, Nk]
        m = masks.float()
        uniform = (m / m.sum(-1, keepdim=True).clamp_min(1)).expand_as(probs)  # [B, heads, Nq, Nk]
        maps = saliency_from_probs(uniform, key_grid, normalization, masks)
    return select_heads(maps, heads)


def median_cross_correlation(maps: Tensor) -> float:
    """How much maps depend on their image: ``maps [B, ...]`` (one map per image, B >= 2) ->
    the median Pearson correlation between the flattened maps of two different images.

    Near 1: every image gets the same map (a property of the mask, not of the image)."""
    if maps.dim() < 2 or maps.shape[0] < 2:
        raise ValueError(f"maps must be [B >= 2, ...], got shape {tuple(maps.shape)}")
    flat = maps.flatten(1).double()  # [B, cells]
    flat = flat - flat.mean(1, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    c = flat @ flat.T  # [B, B]
    return float(c[~torch.eye(len(c), dtype=torch.bool)].median())
