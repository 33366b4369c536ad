"""FID, IS and KID against slow numpy/scipy references on synthetic features."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch

from ylg.metrics import (
    FeatureMoments,
    feature_statistics,
    fid_from_features,
    fid_from_statistics,
    inception_score,
    kid_from_features,
)

# --- references --------------------------------------------------------------------------


def fid_reference_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """FID with scipy's matrix square root (fine for well-conditioned full-rank covariances)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


def fid_reference_symmetric(a: np.ndarray, b: np.ndarray) -> float:
    """FID through the symmetric PSD matrix S1^1/2 S2 S1^1/2 (same spectrum as S1 S2).

    Its eigenvalues are real; clipping the rounding negatives at 0 is exact for a singular
    (rank-deficient) covariance.
    """
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def is_reference(logits: np.ndarray, splits: int, seed: int = 2020) -> tuple[float, float]:
    """Per-sample loops: exp(mean_x KL(p(y|x) || p(y))) per split of the shuffled samples."""
    x = logits[np.random.RandomState(seed).permutation(len(logits))]
    p = scipy.special.softmax(x, axis=1)
    n = len(x)
    scores = []
    for s in range(splits):
        part = p[s * n // splits : (s + 1) * n // splits]
        q = part.mean(axis=0)
        kls = [float(np.sum(row * (np.log(row) - np.log(q)))) for row in part]
        scores.append(np.exp(np.mean(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def kid_reference(a, b, subsets, subset_size, seed=2020) -> tuple[float, float]:
    """Unbiased MMD^2 by explicit double sums over i != j, subsets drawn as torch-fidelity."""
    rng = np.random.RandomState(seed)
    d = a.shape[1]

    def k(x, y):
        return (x @ y / d + 1) ** 3

    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), subset_size, replace=False)]
        y = b[rng.choice(len(b), subset_size, replace=False)]
        m = subset_size
        kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
        kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
        kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
        values.append(kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (m * m))
    return float(np.mean(values)), float(np.std(values))


def correlated_features(rng, n, d, shift=0.0, scale=1.0):
    """Gaussian features with one fixed correlation structure per d, shifted and scaled."""
    mix = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


# --- FID ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.3, 1.0), (0.0, 1.7), (-1.0, 0.5)])
def test_fid_equals_sqrtm_reference(shift, scale):
    rng = np.random.default_rng(0)
    a = correlated_features(rng, 400, 16)
    b = correlated_features(rng, 300, 16, shift, scale)
    got = fid_from_features(a, b)
    np.testing.assert_allclose(got, fid_reference_sqrtm(a, b), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got, fid_reference_symmetric(a, b), rtol=1e-6, atol=1e-9)
    assert (got > 0.5) == (shift != 0 or scale != 1)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    a = correlated_features(rng, 500, 32) + 5
    assert abs(fid_from_features(a, a)) < 1e-8
    assert abs(fid_from_features(torch.from_numpy(a).float(), a.astype(np.float32))) < 1e-5


def test_fid_with_rank_deficient_covariance_is_finite_and_correct():
    # 20 samples in 64 dimensions: both covariances have rank 19.
    rng = np.random.default_rng(2)
    a = correlated_features(rng, 20, 64)
    b = correlated_features(rng, 20, 64, shift=0.2)
    with pytest.warns(UserWarning, match=r"20 samples.*feature dimension 64.*biased"):
        got = fid_from_features(a, b)
    want = fid_reference_symmetric(a, b)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Identical singular sets: ~0 (relative to the trace), not NaN or complex junk.
    with pytest.warns(UserWarning):
        assert abs(fid_from_features(a, a)) < 1e-7 * np.trace(np.cov(a, rowvar=False))


@pytest.mark.filterwarnings("ignore:FID from .* fewer than the feature dimension")
@pytest.mark.parametrize("na,nb", [(15, 25), (40, 3), (63, 63)])
def test_fid_low_rank_path_equals_the_full_eigenvalue_path(na, nb):
    # Fewer samples than dimensions on both sides: the nuclear-norm formula is used; it must
    # equal the D x D eigenvalue computation on the same statistics.
    rng = np.random.default_rng(na)
    a = correlated_features(rng, na, 64)
    b = correlated_features(rng, nb, 64, shift=0.3, scale=1.3)
    got = fid_from_features(a, b)
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    # (the eigenvalue path takes square roots of rounding-level zero eigenvalues: ~1e-8 off)
    np.testing.assert_allclose(got, fid_from_statistics(mu1, s1, mu2, s2), rtol=1e-6)
    np.testing.assert_allclose(got, fid_reference_symmetric(a, b), rtol=1e-6)


def test_fid_no_warning_with_enough_samples():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(60, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid_from_features(a, b)


def test_fid_closed_form_for_diagonal_gaussians():
    # mu diff (1, 2), covariances diag(1, 4) and diag(4, 1): tr sqrt(S1 S2) = 2 + 2.
    got = fid_from_statistics(
        np.array([0.0, 0.0]), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 1.0])
    )
    assert got == pytest.approx(5 + 5 + 5 - 8)


@pytest.mark.parametrize(
    "a,b,match",
    [
        (np.zeros((1, 4)), np.zeros((5, 4)), "at least 2 samples"),
        (np.zeros(8), np.zeros((5, 4)), "2-D"),
        (np.full((3, 4), np.nan), np.zeros((5, 4)), "non-finite"),
        (np.zeros((3, 4)), np.zeros((5, 3)), "same feature dimension"),
    ],
)
def test_fid_rejects_bad_features(a, b, match):
    with pytest.raises(ValueError, match=match):
        fid_from_features(a, b)


@pytest.mark.parametrize("batch", [1, 7, 64, 500])
def test_streaming_moments_equal_np_cov_whatever_the_batch_size(batch):
    rng = np.random.default_rng(4)
    x = correlated_features(rng, 300, 12, shift=100.0)  # a large mean tests the shift
    moments = FeatureMoments()
    for start in range(0, len(x), batch):
        moments.update(torch.from_numpy(x[start : start + batch]))
    mu, sigma = moments.mean_cov()
    mu_ref, sigma_ref = feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sigma_ref, np.cov(x, rowvar=False), rtol=1e-12)


def test_streaming_moments_errors():
    moments = FeatureMoments()
    moments.update(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="at least 2 samples"):
        moments.mean_cov()
    with pytest.raises(ValueError, match="non-finite"):
        moments.update(torch.tensor([[0.0, float("inf"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="dimension 3"):
        moments.update(torch.zeros(2, 3))


# --- IS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n,splits", [(100, 10), (37, 4), (10, 1)])
def test_inception_score_equals_reference(n, splits):
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3.0, size=(n, 30))
    got = inception_score(torch.from_numpy(logits).float(), splits=splits)
    want = is_reference(logits.astype(np.float32).astype(np.float64), splits)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_inception_score_of_confident_distinct_classes_is_the_class_count():
    # Each split holds 5 samples, each (almost surely) of its own class: IS = 5, std 0.
    logits = np.zeros((50, 1008))
    logits[np.arange(50), np.arange(50) % 5 + 5 * (np.arange(50) // 5)] = 60.0
    mean, std = inception_score(logits, splits=10, shuffle=False)
    assert mean == pytest.approx(5.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    # All samples of one class: IS = 1.
    same = np.zeros((20, 10))
    same[:, 3] = 60.0
    assert inception_score(same, splits=2)[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 10 samples"):
        inception_score(np.zeros((5, 10)), splits=10)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.zeros((5, 10)), splits=0)
    with pytest.raises(ValueError, match="non-finite"):
        inception_score(np.full((20, 10), np.inf))


# --- KID ---------------------------------------------------------------------------------


def test_kid_equals_double_sum_reference():
    rng = np.random.default_rng(6)
    a = np.abs(rng.normal(size=(40, 8)))
    b = np.abs(rng.normal(size=(50, 8))) * 1.3
    got = kid_from_features(torch.from_numpy(a), b, subsets=5, subset_size=12)
    want = kid_reference(a, b, subsets=5, subset_size=12)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got[0] > 0


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, same_std = kid_from_features(a, b, subsets=20, subset_size=200)
    diff, _ = kid_from_features(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert diff > 10 * max(abs(same), same_std)


def test_kid_rejects_bad_input():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
    with pytest.raises(ValueError, match=r"subset_size=40 is larger than the 30 samples of a"):
        kid_from_features(a, b, subset_size=40)
    with pytest.raises(ValueError, match="same feature dimension"):
        kid_from_features(a, b[:, :3], subset_size=10)
    with pytest.raises(ValueError, match="subsets"):
        kid_from_features(a, b, subsets=0, subset_size=10)
