"""Training precision: ``fp32``, ``bf16`` (autocast) or ``auto``, on the CPU and on CUDA.

What runs in bf16 under ``bf16``: the forwards and backwards of G's and D's convolutions,
linear layers and attention matmuls (``torch.autocast(device, dtype=torch.bfloat16)``).
What stays fp32: the parameters and their gradients, Adam's state, the EMA generator, the
losses (the logits are cast to fp32 before the hinge), LeCam's averages, spectral norm's
power iteration and sigma (:mod:`ylg.runtime.spectral_norm`), the Inception network of the
evaluations, and sampling for snapshots and ``ylg generate``.

``auto`` picks bf16 where it was measured to pay: on CUDA when the GPU supports bf16, and on
a CPU with native bf16 matmuls (AMX-BF16 or AVX512-BF16; ``benchmarks/train_step.py``:
2.2x faster steps at width 32 on a Xeon with AMX). Elsewhere (a CPU that would emulate
bf16) it picks fp32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ylg.runtime.machine import cpu_has_native_bf16

__all__ = ["PRECISIONS", "autocast_factory", "resolve_precision"]

PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast_factory(precision: str, device: torch.device | str) -> Callable | None:
    """A zero-argument context-manager factory for bf16 autocast on ``device``, or None for
    fp32 (``precision`` already resolved)."""
    if precision == "fp32":
        return None
    if precision != "bf16":
        raise ValueError(f"precision={precision!r} must be resolved to fp32 or bf16")
    return functools.partial(torch.autocast, torch.device(device).type, dtype=torch.bfloat16)
