"""Kernel Inception Distance, as torch-fidelity (after Binkowski et al.) defines it.

The unbiased estimate of MMD^2 with the cubic polynomial kernel
``k(x, y) = (x . y / D + 1)^3``, averaged over ``subsets`` random pairs of subsets of
``subset_size`` samples, drawn without replacement by ``np.random.RandomState(seed)`` in the
same order as torch-fidelity (seed 2020), so equal features select equal subsets. Kernels are
computed in float64 (torch-fidelity uses the features' float32, which agrees to about 1e-4
relative: MMD^2 is a small difference of large sums).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ylg.metrics._checks import as_features


def polynomial_mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3, coef0: float = 1.0) -> Tensor:
    """Unbiased MMD^2 between samples x [m, D] and y [m, D] with kernel (x.y/D + coef0)^degree."""
    m, d = x.shape
    k_xx = (x @ x.T / d + coef0) ** degree  # [m, m]
    k_yy = (y @ y.T / d + coef0) ** degree  # [m, m]
    k_xy = (x @ y.T / d + coef0) ** degree  # [m, m]
    off_diag = (k_xx.sum() - k_xx.diagonal().sum()) + (k_yy.sum() - k_yy.diagonal().sum())
    return off_diag / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def kid_from_features(
    a: Tensor | np.ndarray,
    b: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    *,
    seed: int = 2020,
) -> tuple[float, float]:
    """(mean, std) KID between features a [Na, D] and b [Nb, D]; needs Na, Nb >= subset_size."""
    if int(subsets) != subsets or subsets < 1:
        raise ValueError(f"subsets must be a positive integer, got {subsets!r}")
    if int(subset_size) != subset_size or subset_size < 2:
        raise ValueError(f"subset_size must be an integer >= 2, got {subset_size!r}")
    xa = as_features(a, "a")
    xb = as_features(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(
            f"a and b must have the same feature dimension, got {xa.shape[1]} and {xb.shape[1]}"
        )
    for name, arr in (("a", xa), ("b", xb)):
        if arr.shape[0] < subset_size:
            raise ValueError(
                f"KID subset_size={subset_size} is larger than the {arr.shape[0]} samples of "
                f"{name}; pass subset_size <= {arr.shape[0]}"
            )
    ta, tb = torch.from_numpy(xa), torch.from_numpy(xb)
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        ia = torch.from_numpy(rng.choice(len(xa), subset_size, replace=False))
        ib = torch.from_numpy(rng.choice(len(xb), subset_size, replace=False))
        mmds[i] = float(polynomial_mmd2_unbiased(ta[ia], tb[ib]))
    return float(mmds.mean()), float(mmds.std())
