"""Running Inception over many images: batched extraction and streaming feature moments."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ylg.metrics.inception import InceptionV3FID, check_uint8_images


@torch.no_grad()
def extract_features(
    inception: InceptionV3FID, images: Tensor, batch_size: int = 64
) -> tuple[Tensor, Tensor]:
    """(pool [N, 2048], logits [N, 1008]) float32 on the CPU for uint8 images [N, 3, H, W]."""
    check_uint8_images(images, "images")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    pools, logits = [], []
    for start in range(0, images.shape[0], batch_size):
        p, lg = inception(images[start : start + batch_size])
        pools.append(p.cpu())
        logits.append(lg.cpu())
    return torch.cat(pools), torch.cat(logits)


class FeatureMoments:
    """Mean and unbiased covariance of features seen in batches, in float64.

    Sums are taken around a shift (the first batch's mean) so that the covariance does not
    lose digits to large means; the result equals ``np.cov`` of all rows up to float64
    rounding, whatever the batch sizes.
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift: Tensor | None = None
        self._sum: Tensor | None = None  # [D]
        self._gram: Tensor | None = None  # [D, D]

    def update(self, features: Tensor) -> None:
        """Add features [B, D] (any float dtype, any device but MPS)."""
        if features.dim() != 2:
            raise ValueError(f"features must be [B, D], got shape {tuple(features.shape)}")
        x = features.detach().to(torch.float64)
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"features contain {bad} non-finite values (NaN or inf)")
        if x.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = x.mean(dim=0)
            self._sum = torch.zeros_like(self._shift)
            self._gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        elif x.shape[1] != self._shift.shape[0]:
            raise ValueError(
                f"features have dimension {x.shape[1]}, expected {self._shift.shape[0]}"
            )
        xc = x.to(self._shift.device) - self._shift  # [B, D]
        self._sum += xc.sum(dim=0)
        self._gram += xc.T @ xc
        self.n += x.shape[0]

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean [D], covariance [D, D]) as float64 numpy arrays; needs n >= 2."""
        if self.n < 2:
            raise ValueError(f"mean and covariance need at least 2 samples, got {self.n}")
        m = self._sum / self.n  # [D], mean of the shifted features
        cov = (self._gram - self.n * torch.outer(m, m)) / (self.n - 1)
        cov = (cov + cov.T) / 2  # exact symmetry, as np.cov
        return (self._shift + m).cpu().numpy(), cov.cpu().numpy()
