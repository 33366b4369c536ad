"""TensorFlow 1.x bilinear resize, the rule the FID Inception graph applies to its input.

``tf.image.resize_bilinear(..., align_corners=False)`` in TF1 maps output pixel ``d`` to the
source coordinate ``s = d * in / out``: no half-pixel offset (unlike PyTorch's
``align_corners=False``) and no antialiasing when downsampling. The value is the linear
interpolation between source pixels ``floor(s)`` and ``min(floor(s) + 1, in - 1)``, first along
the width, then along the height. The scale is rounded to float32 and the interpolation is
written as ``a + (b - a) * t``, the arithmetic torch-fidelity reproduces, so the FID numbers
match the published ones.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _axis_weights(
    in_size: int, out_size: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices ``lo``, ``hi`` [out_size] and fractions ``t`` [out_size] for one axis."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    src = torch.arange(out_size, dtype=torch.float32, device=device) * scale  # [out]
    lo = src.long()  # src >= 0, so truncation is floor
    hi = (lo + 1).clamp_max(in_size - 1)
    t = src - lo.float()
    return lo, hi, t


def resize_bilinear_tf1(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize float images ``x`` [N, C, H, W] to ``size`` = (out_h, out_w) like TF1.

    Computed in float32 (the input is cast), as the reference graph does.
    """
    if not torch.is_tensor(x) or x.dim() != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x must be a 4-D tensor [N, C, H, W], got {shape}")
    out_h, out_w = (int(s) for s in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be two positive integers, got {tuple(size)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"x must have a non-empty image, got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    lo_x, hi_x, tx = _axis_weights(x.shape[3], out_w, x.device)
    lo_y, hi_y, ty = _axis_weights(x.shape[2], out_h, x.device)

    rows_lo = x.index_select(2, lo_y)  # [N, C, out_h, W]
    rows_hi = x.index_select(2, hi_y)  # [N, C, out_h, W]
    tx = tx.view(1, 1, 1, out_w)
    # Interpolate along the width in both source rows, then along the height.
    a = rows_lo.index_select(3, lo_x)  # [N, C, out_h, out_w]
    top = a + (rows_lo.index_select(3, hi_x) - a) * tx
    b = rows_hi.index_select(3, lo_x)
    bottom = b + (rows_hi.index_select(3, hi_x) - b) * tx
    return top + (bottom - top) * ty.view(1, 1, out_h, 1)
