"""PyTorch's spectral norm, with its power iteration and sigma kept in fp32 under autocast.

``torch.nn.utils.parametrizations.spectral_norm`` computes ``sigma = u^T W v`` with
``torch.mv``, which CUDA autocast runs in bf16: a sigma with 8 bits of mantissa would rescale
every weight by up to ~0.4% noise per step. Here the parametrization runs with autocast
disabled, so the normalised weight is computed from fp32 parameters in fp32 on every device,
and only the layer that uses it (conv, linear) casts it. Outside autocast this is PyTorch's
spectral norm exactly: same class (a subclass), same state_dict keys, same numbers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

__all__ = ["FP32SpectralNorm", "spectral_norm"]


class FP32SpectralNorm(_SpectralNorm):
    """:class:`torch.nn.utils.parametrizations._SpectralNorm`, run outside autocast."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            return super().forward(weight)


def spectral_norm(
    module: nn.Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12
) -> nn.Module:
    """``torch.nn.utils.parametrizations.spectral_norm(module)`` with
    :class:`FP32SpectralNorm` (``dim`` 0: conv, linear and embedding layers)."""
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"module {module} has no parameter or buffer named {name!r}")
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        raise ValueError("spectral_norm here is for conv, linear and embedding layers")
    parametrize.register_parametrization(
        module, name, FP32SpectralNorm(weight, n_power_iterations, 0, eps)
    )
    return module
