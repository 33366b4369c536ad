"""What the trainer saves besides the weights: the RNG state, so a resumed run continues the
same random streams. The file format, finding and reading a checkpoint are
:mod:`ylg.runtime.checkpoint`; writing is :func:`ylg.runtime.files.atomic_torch_save`;
rebuilding the models for inference is :func:`ylg.models.loading.load_for_inference`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ylg.runtime.checkpoint import plain_numpy_state, plain_python_state

__all__ = ["rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    """Every global RNG's state as tensors and plain types (a checkpoint must load with
    ``torch.load(weights_only=True)``: no numpy objects, nothing pickled)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": plain_numpy_state(np.random.get_state()),
        "python": plain_python_state(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
