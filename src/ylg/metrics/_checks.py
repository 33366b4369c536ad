"""Input checks shared by the metric functions."""

from __future__ import annotations

import numpy as np
import torch


def as_features(x: object, name: str, *, min_rows: int = 2) -> np.ndarray:
    """A finite float64 array [N, D] with N >= ``min_rows``, from a tensor or array."""
    if torch.is_tensor(x):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of features [N, D], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {arr.shape[0]}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} non-finite values (NaN or inf)")
    return arr
