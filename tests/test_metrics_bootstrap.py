"""Bootstrap intervals of FID and KID (ylg.metrics.bootstrap) against the plain estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from ylg.metrics.bootstrap import FidResampler, bootstrap_fid, bootstrap_kid
from ylg.metrics.fid import feature_statistics, fid_from_statistics
from ylg.metrics.kid import polynomial_mmd2_unbiased


def _scipy_fid(x, mu2, s2):
    mu1, s1 = feature_statistics(x)
    covmean = linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n, dim", [(40, 8), (12, 30)])  # more and fewer samples than dims
def test_the_fast_resampled_fid_equals_the_sqrtm_reference(n, dim):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim))
    ref = rng.normal(0.3, 1.5, size=(200, dim))
    mu2, s2 = feature_statistics(ref)
    fid = FidResampler(torch.from_numpy(x), torch.from_numpy(mu2), s2)
    ones = np.ones(n)
    # scipy's sqrtm is good to ~1e-7 relative here; the eigenvalues of S1 S2 carry rounding
    # noise from the zero eigenvalues when n < D (~1e-8 relative), which the Gram form drops
    assert fid(torch.from_numpy(ones)) == pytest.approx(_scipy_fid(x, mu2, s2), rel=1e-6)
    assert fid(torch.from_numpy(ones)) == pytest.approx(
        fid_from_statistics(*feature_statistics(x), mu2, s2), rel=1e-7
    )
    for _ in range(3):  # resamples with repeats: the FID of the repeated rows
        counts = rng.multinomial(n, np.full(n, 1 / n)).astype(float)
        rows = np.repeat(x, counts.astype(int), axis=0)
        want = _scipy_fid(rows, mu2, s2)
        assert fid(torch.from_numpy(counts)) == pytest.approx(want, rel=1e-6)
        assert want == pytest.approx(fid_from_statistics(*feature_statistics(rows), mu2, s2))


def test_fid_interval_covers_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(2000, 6))
    mu2, s2 = feature_statistics(ref)
    widths = []
    for n in (50, 800):
        x = rng.normal(0.2, 1.0, size=(n, 6))
        point = fid_from_statistics(*feature_statistics(x), mu2, s2)
        out = bootstrap_fid(x, mu2, s2, n_boot=200, seed=0)
        lo, hi = out["ci"]
        assert lo < point < hi and out["n_boot"] == 200 and out["std"] > 0
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n)
    again = bootstrap_fid(x, mu2, s2, n_boot=200, seed=0)
    assert again["ci"] == out["ci"]  # seeded


def test_fid_interval_holds_the_estimate_when_resamples_are_biased():
    # Fewer samples than dimensions: FID of a resample (~63% distinct rows) is well above the
    # full-sample FID; the interval must still be around the estimate, not around the resamples.
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(3000, 100))
    mu2, s2 = feature_statistics(ref)
    x = rng.normal(0.1, 1.0, size=(60, 100))
    point = fid_from_statistics(*feature_statistics(x), mu2, s2)
    out = bootstrap_fid(x, mu2, s2, n_boot=100, seed=0)
    assert out["resample_offset"] > 0.05 * point  # the duplicates' offset is real here
    lo, hi = out["ci"]
    assert lo < point < hi


def test_kid_full_set_mmd_equals_the_reference_and_its_interval_covers_it():
    rng = np.random.default_rng(2)
    x = rng.normal(0.5, 1.0, size=(60, 5))
    y = rng.normal(0.0, 1.0, size=(60, 5))
    out = bootstrap_kid(x, y, n_boot=300, seed=0)
    want = float(polynomial_mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)))
    assert out["mmd2"] == pytest.approx(want, rel=1e-10)
    lo, hi = out["ci"]
    assert lo < out["mmd2"] < hi and lo > 0  # clearly different distributions
    same = bootstrap_kid(x, rng.normal(0.5, 1.0, size=(60, 5)), n_boot=300, seed=0)
    assert same["ci"][0] < 0 < same["ci"][1]  # same distribution: 0 inside


def test_bad_arguments_are_named():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="n_boot must be an integer >= 2, got 1"):
        bootstrap_fid(x, np.zeros(3), np.eye(3), n_boot=1)
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_kid(x, x, level=1.5)
    with pytest.raises(ValueError, match=r"ref_mu must be \[3\]"):
        bootstrap_fid(x, np.zeros(4), np.eye(4))
