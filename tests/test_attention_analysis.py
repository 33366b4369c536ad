"""ylg.attention.analysis.median_cross_correlation: does a map depend on its image?"""

import numpy as np
import pytest
import torch

from ylg.attention.analysis import median_cross_correlation


def test_median_cross_correlation_against_numpy():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 4, generator=g)
    maps = base + 0.3 * torch.rand(6, 4, 4, generator=g)  # [B, hk, wk]: shared part + noise
    c = np.corrcoef(maps.flatten(1).numpy())
    want = np.median(c[~np.eye(6, dtype=bool)])
    assert median_cross_correlation(maps) == pytest.approx(want, rel=1e-6)
    assert median_cross_correlation(base.expand(5, 4, 4) * torch.arange(1, 6)[:, None, None]) == (
        pytest.approx(1.0)  # scaled copies of one map: correlation 1
    )
    with pytest.raises(ValueError, match=r"maps must be \[B >= 2"):
        median_cross_correlation(maps[:1])
