"""Generator outputs in [-1, 1] -> the uint8 images a saved PNG would hold.

``uint8 = floor((x + 1) * 127.5 + 0.5)`` clamped to 0..255, i.e. round half up of the
[0, 255] value: the rule of torchvision's ``save_image`` (``x * 255 + 0.5``, on [0, 1]) and of
StyleGAN/EDM's ``x * 127.5 + 128``. Metrics of generated images therefore equal the metrics of
the same images written to PNG and read back.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """Float images [N, 3, H, W] in [-1, 1] -> uint8 [N, 3, H, W]; out-of-range values clamp."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        what = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"images must be a floating-point tensor in [-1, 1], got {what}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have shape [N, 3, H, W], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"images contain {bad} non-finite values (NaN or inf)")
    # float32 keeps (x + 1) * 127.5 exact enough: ties at .5 only occur for exact inputs.
    return (x.float() * 127.5 + 128).floor().clamp_(0, 255).to(torch.uint8)
