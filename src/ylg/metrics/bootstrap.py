"""Bootstrap confidence intervals for FID and KID.

FID and KID at small ``n`` are biased (FID upwards, strongly: with n = 1,000 generated images
it is several points above its n = 50,000 value) and noisy; a difference between two models
means something only next to its uncertainty. Both functions here resample the *generated*
features with replacement (the reference is the fixed target distribution; for KID its kept
features are resampled too) and report percentile intervals.

FID of a resample is computed exactly, without a D x D eigenproblem per resample: with the
reference covariance ``S2 = R R`` (``R`` its symmetric square root, computed once) and the
resample's centred features ``A`` [n, D], ``tr sqrt(S1 S2) = tr sqrt(R S1 R)`` and
``R S1 R = (A R).T (A R) / (n - 1)``, whose non-zero eigenvalues are those of the n x n Gram
matrix ``(A R)(A R).T / (n - 1)``; :class:`FidResampler` builds that Gram matrix for any
resample from one kernel matrix of the features (tested against scipy's ``sqrtm`` and
:func:`ylg.metrics.fid.fid_from_statistics`).

KID's interval is of the unbiased MMD^2 over *all* features of both sets (KID's point value
averages it over random subsets; both estimate the same MMD^2): the kernel matrices are
computed once and each resample weighs them by how often it drew each sample, leaving out
the pairs of a sample with its own duplicate (they would add ``k(x, x)`` and bias it up).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ylg.metrics._checks import as_features

__all__ = ["bootstrap_fid", "bootstrap_kid", "percentile_interval"]


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``values``."""
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _check(n_boot: int, level: float) -> None:
    if int(n_boot) != n_boot or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _sqrt_psd(sigma: np.ndarray) -> Tensor:
    s = torch.from_numpy(np.asarray(sigma, np.float64))
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T  # [D, D]


class FidResampler:
    """FID of resamples of fixed features ``x`` [n, D] against a fixed Gaussian, fast.

    A resample is given by its counts ``c`` [n] (how often each row was drawn; sum n). With
    ``X = x R`` and ``K = X X.T`` computed once, the non-zero eigenvalues of ``R S1 R`` are
    those of the small Gram matrix of the drawn rows, ``G = diag(sqrt c) (K - Kc 1.T / n -
    1 (Kc).T / n + c.T K c / n^2) diag(sqrt c) / (n - 1)`` over the rows with ``c > 0``: one
    symmetric eigenproblem of at most n x n per resample (the same number as
    FID of the repeated rows; tested against scipy's ``sqrtm``)."""

    def __init__(self, x: Tensor, mu2: Tensor, sigma2: np.ndarray):
        self.x = x  # [n, D] float64
        self.mu2 = mu2
        self.tr2 = float(np.trace(sigma2))
        xr = x @ _sqrt_psd(sigma2)  # [n, D]
        self.k = xr @ xr.T  # [n, n]
        self.sq = (x * x).sum(1)  # [n]

    def __call__(self, counts: Tensor) -> float:
        n = float(counts.sum())
        sel = counts > 0
        c = counts[sel]
        rows = self.k[sel]  # [m, n]: the drawn rows of K, gathered once
        kc = rows @ counts / n  # [m]: X_i . mean
        ckc = float(c @ kc) / n  # |mean|^2 = c.T K c / n^2 (only drawn rows have c > 0)
        g = rows[:, sel] - kc[:, None] - kc[None, :] + ckc  # [m, m]
        root = c.sqrt()
        g = g * root[:, None] * root[None, :] / (n - 1)
        eig = torch.linalg.eigvalsh(g)
        # The Gram matrix has rank <= min(m - 1, D): its other eigenvalues are rounding noise
        # (~1e-16 of the largest), whose square roots would add up; drop them as numpy's
        # matrix_rank does (tolerance: largest * size * eps).
        eig = eig[eig > eig.max() * len(eig) * torch.finfo(eig.dtype).eps]
        tr_covmean = float(eig.sqrt().sum())
        mu1 = counts @ self.x / n  # [D]
        tr1 = (float(counts @ self.sq) - n * float(mu1 @ mu1)) / (n - 1)
        diff = mu1 - self.mu2
        return float(diff @ diff) + tr1 + self.tr2 - 2 * tr_covmean


def bootstrap_fid(
    features: Tensor | np.ndarray,
    ref_mu: np.ndarray,
    ref_sigma: np.ndarray,
    n_boot: int = 100,
    *,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """``{"ci": [low, high], "std": ..., "resample_offset": ..., "n_boot": ...}``: the spread of
    FID when the generated ``features`` [n, D] are resampled with replacement, as an interval
    around the full-sample FID (the resamples' offset, the bootstrap's estimate of FID's
    small-n bias, taken out; see the comment in the code). It covers the expected FID at this
    ``n``, not the large-``n`` FID: the bias of the full-sample FID itself stays in it."""
    _check(n_boot, level)
    x = torch.from_numpy(as_features(features, "features"))  # [n, D] float64
    mu2 = torch.from_numpy(np.asarray(ref_mu, np.float64))
    if mu2.shape != (x.shape[1],):
        raise ValueError(f"ref_mu must be [{x.shape[1]}], got {tuple(mu2.shape)}")
    fid = FidResampler(x, mu2, ref_sigma)
    rng = np.random.default_rng(seed)
    p = np.full(len(x), 1 / len(x))
    values = np.array(
        [
            fid(torch.from_numpy(rng.multinomial(len(x), p).astype(np.float64)))
            for _ in range(n_boot)
        ]
    )
    # A resample holds ~63% distinct samples, and FID rises as the distinct samples fall (its
    # small-n bias), so the resamples sit above the full-sample FID: 116 -> 124-129 at n = 1,000
    # in ylg's emoji run. Their spread is the sampling noise; their offset is the bootstrap's
    # estimate of FID's own small-n bias (fewer distinct samples, higher FID), which the
    # duplicates make visible. So the interval is the resamples' percentile interval moved by
    # that offset (their median minus the full-sample FID), centred where the estimate is. It is
    # an interval for the expected FID at this n, not for the large-n FID: the full-sample
    # FID's own bias is not removed.
    point = fid(torch.ones(len(x), dtype=torch.float64))
    lo, hi = percentile_interval(values, level)
    offset = float(np.median(values)) - point
    return {
        "ci": [lo - offset, hi - offset],
        "std": float(values.std(ddof=1)),
        "resample_offset": offset,
        "level": level,
        "n_boot": int(n_boot),
    }


def _within(k: Tensor, c: Tensor) -> Tensor:
    """Mean kernel value over the pairs of a resample (counts ``c`` of each original sample)
    that are two *different* samples: duplicates of one sample would add ``k(x, x)`` and bias
    the unbiased estimate upwards."""
    same = (c * c * k.diagonal()).sum()
    return (c @ k @ c - same) / (c.sum() ** 2 - (c * c).sum())


def _mmd2(kxx: Tensor, kyy: Tensor, kxy: Tensor, cx: Tensor, cy: Tensor) -> float:
    return float(_within(kxx, cx) + _within(kyy, cy) - 2 * (cx @ kxy @ cy) / (cx.sum() * cy.sum()))


def bootstrap_kid(
    features: Tensor | np.ndarray,
    ref_features: Tensor | np.ndarray,
    n_boot: int = 100,
    *,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """``{"mmd2": ..., "ci": [low, high], "std": ..., "n_boot": ...}``: the unbiased MMD^2 with
    KID's cubic kernel over all of ``features`` [n, D] and ``ref_features`` [m, D], and its
    bootstrap distribution when both sets are resampled with replacement."""
    _check(n_boot, level)
    x = torch.from_numpy(as_features(features, "features"))
    y = torch.from_numpy(as_features(ref_features, "ref_features"))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3  # [n, n]
    kyy = (y @ y.T / d + 1) ** 3  # [m, m]
    kxy = (x @ y.T / d + 1) ** 3  # [n, m]
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        cx = torch.from_numpy(rng.multinomial(len(x), np.full(len(x), 1 / len(x))).astype(float))
        cy = torch.from_numpy(rng.multinomial(len(y), np.full(len(y), 1 / len(y))).astype(float))
        values[b] = _mmd2(kxx, kyy, kxy, cx, cy)
    ones_x, ones_y = torch.ones(len(x), dtype=x.dtype), torch.ones(len(y), dtype=y.dtype)
    return {
        "mmd2": _mmd2(kxx, kyy, kxy, ones_x, ones_y),
        "ci": list(percentile_interval(values, level)),
        "std": float(values.std(ddof=1)),
        "level": level,
        "n_boot": int(n_boot),
    }
