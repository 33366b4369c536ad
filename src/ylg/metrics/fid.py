"""Frechet Inception Distance, as TTUR / torch-fidelity define it.

``FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` with float64 means and unbiased
covariances (``np.cov``). The trace of the square root is the sum of the square roots of the
eigenvalues of ``S1 @ S2`` (taken as complex numbers, real part kept): those eigenvalues are
real and >= 0 in exact arithmetic, and this stays correct where ``scipy.linalg.sqrtm`` of a
singular product returns complex junk (fewer samples than dimensions).
"""

from __future__ import annotations

import warnings

import numpy as np
from torch import Tensor

from ylg.metrics._checks import as_features


def feature_statistics(features: Tensor | np.ndarray, name: str = "features"):
    """Mean [D] and unbiased covariance [D, D], float64, of features [N, D] (N >= 2)."""
    x = as_features(features, name)
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False)
    return mu, np.atleast_2d(sigma)


def fid_from_statistics(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """FID between two Gaussians given by mean [D] and covariance [D, D]."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, m, s in (("1", mu1, sigma1), ("2", mu2, sigma2)):
        if m.ndim != 1 or m.shape[0] != d or s.shape != (d, d):
            raise ValueError(
                f"statistics {name} must be a mean [D] and covariance [D, D] with the same D as "
                f"mu1 ({d}), got mean {m.shape} and covariance {s.shape}"
            )
        if not (np.isfinite(m).all() and np.isfinite(s).all()):
            raise ValueError(f"statistics {name} contain non-finite values")
    diff = mu1 - mu2
    eig = np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)
    tr_covmean = np.sqrt(eig).real.sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def warn_if_undersampled(n: int, dim: int, value: float) -> None:
    if n < dim:
        warnings.warn(
            f"FID from {n} samples, fewer than the feature dimension {dim}: the covariance is "
            f"singular and FID is biased upwards (use >= {dim}, ideally 50,000); "
            f"value {value:.4f}",
            stacklevel=3,
        )


def _fid_low_rank(x: np.ndarray, y: np.ndarray) -> float:
    """FID of float64 features x [Na, D], y [Nb, D] through their centred rows.

    With centred ``A`` [Na, D] and ``B`` [Nb, D], ``S1 = A.T A / (Na - 1)``, ``S2 = B.T B /
    (Nb - 1)`` and the non-zero eigenvalues of ``S1 S2`` are those of ``M M.T / c`` with
    ``M = A B.T`` [Na, Nb], ``c = (Na - 1)(Nb - 1)``: the squared singular values of ``M``
    over ``c``. So ``tr sqrt(S1 S2) = ||A B.T||_* / sqrt(c)`` (nuclear norm), exactly, with an
    SVD of an Na x Nb matrix instead of the eigenvalues of a D x D one.
    """
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    a, b = x - mu1, y - mu2
    c = (len(x) - 1) * (len(y) - 1)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(c)
    diff = mu1 - mu2
    tr1 = (a * a).sum() / (len(x) - 1)
    tr2 = (b * b).sum() / (len(y) - 1)
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


def fid_from_features(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """FID between feature sets ``a`` [Na, D] and ``b`` [Nb, D] (Na, Nb >= 2).

    With fewer samples than dimensions on both sides the trace of the square root is the
    nuclear norm of the centred cross product (:func:`_fid_low_rank`): exact, and an Na x Nb
    SVD instead of a D x D eigenproblem. Warns when either set has fewer samples than
    dimensions (the value is then biased).
    """
    x, y = as_features(a, "a"), as_features(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"a and b must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}"
        )
    dim = x.shape[1]
    if max(len(x), len(y)) < dim:
        value = _fid_low_rank(x, y)
    else:
        mu1, s1 = feature_statistics(x, "a")
        mu2, s2 = feature_statistics(y, "b")
        value = fid_from_statistics(mu1, s1, mu2, s2)
    warn_if_undersampled(min(len(x), len(y)), dim, value)
    return value
