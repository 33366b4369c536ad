"""Inception Score, as torch-fidelity defines it.

``IS = exp(E_x KL(p(y|x) || p(y)))`` per split, from the unbiased logits (no fc bias), in
float64. The samples are shuffled with ``np.random.RandomState(seed)`` (seed 2020, as
torch-fidelity) and cut into ``splits`` contiguous parts; the result is the mean and the
(population) standard deviation of the per-split scores.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ylg.metrics._checks import as_features


def inception_score(
    logits: Tensor | np.ndarray, splits: int = 10, *, shuffle: bool = True, seed: int = 2020
) -> tuple[float, float]:
    """(mean, std) Inception Score of logits [N, classes]; needs N >= max(2, splits)."""
    if int(splits) != splits or splits < 1:
        raise ValueError(f"splits must be a positive integer, got {splits!r}")
    x = as_features(logits, "logits", min_rows=max(2, splits))
    n = x.shape[0]
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    x = torch.from_numpy(x)  # [N, classes] float64
    p = x.softmax(dim=1)
    log_p = x.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_i, log_p_i = p[lo:hi], log_p[lo:hi]  # [n_i, classes]
        log_q = p_i.mean(dim=0, keepdim=True).log()  # [1, classes], the split's marginal
        kl = (p_i * (log_p_i - log_q)).sum(dim=1)  # [n_i]
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))
