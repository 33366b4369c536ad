"""Where the search starts: the initial latents and the classes each restart tries.

The latents are standard normal samples truncated at ``truncation`` standard deviations,
drawn on the CPU from their own seeded generator. For a conditional generator without a
known label, each image tries the ``top_k`` classes of the discriminator's
``class_scores`` with ``restarts`` latents each.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["candidate_labels", "initial_latents", "starting_points"]


def initial_latents(n: int, z_dim: int, seed: int, truncation: float = 2.0) -> Tensor:
    """``[n, z_dim]`` standard normal samples truncated to ``[-truncation, truncation]``,
    drawn on the CPU from a generator seeded with ``seed`` (reproducible on any device)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.empty(n, z_dim)
    torch.nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation, generator=generator)
    return z


def candidate_labels(
    G: nn.Module, D: nn.Module | None, images: Tensor, labels, top_k: int
) -> Tensor | None:
    """``[B, K]`` classes to try per image (``K = 1`` when given), or ``None``."""
    b = images.shape[0]
    num_classes = int(getattr(G, "num_classes", 0))
    if num_classes == 0:
        if labels is not None:
            raise ValueError(
                "labels were given but the generator is unconditional (num_classes=0); "
                "pass labels=None"
            )
        return None
    if labels is None:
        if D is None or not hasattr(D, "class_scores"):
            raise ValueError(
                "the class is unknown (labels=None) and no discriminator with class_scores "
                "was given to search for it; pass labels"
            )
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got top_k={top_k!r}")
        with torch.no_grad():
            scores = D.class_scores(images)  # [B, num_classes]
        return scores.topk(min(top_k, num_classes), dim=1).indices  # [B, K]
    labels = torch.as_tensor(labels, device=images.device)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.dim() == 0:
        labels = labels.expand(b)
    if labels.shape != (b,):
        raise ValueError(f"labels must be an int or have shape [{b}], got {tuple(labels.shape)}")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ValueError(
            f"class {int(bad[0])} is out of range: the model has {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )
    return labels.long()[:, None]  # [B, 1]


def starting_points(
    G: nn.Module,
    D: nn.Module | None,
    images: Tensor,
    labels,
    *,
    top_k: int,
    restarts: int,
    seed: int,
    truncation: float,
) -> tuple[Tensor, Tensor | None]:
    """Every image's initial latents ``[B, T, z_dim]`` and their classes ``[B, T]`` (or
    ``None``), ``T = restarts * classes searched``; the latents of all images are drawn at
    once, so the result does not depend on the batch size."""
    b = images.shape[0]
    candidates = candidate_labels(G, D, images, labels, top_k)  # [B, K] or None
    per_class = 1 if candidates is None else candidates.shape[1]
    total = per_class * restarts  # latents per image
    z_all = initial_latents(b * total, int(G.z_dim), seed, truncation)  # [B*T, z_dim]
    z_all = z_all.view(b, total, -1)
    y_all = None
    if candidates is not None:
        y_all = candidates.repeat_interleave(restarts, dim=1)  # [B, T]
    return z_all, y_all
