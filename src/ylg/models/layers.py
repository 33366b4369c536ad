"""Building blocks of the YLG-SAGAN generator and discriminator.

Faithful to the layers of tensorflow-gan's SAGAN example (the code the YLG paper modified):

- spectrally normalised conv / linear / embedding (one power iteration per training forward,
  ``torch.nn.utils.parametrizations.spectral_norm``), Glorot-uniform weights, zero biases;
- conditional batch norm: batch statistics without affine parameters, then a per-class gain
  and bias looked up in tables (gain initialised to 1, bias to 0), eps 1e-3; with
  ``num_classes=0`` it is a plain BatchNorm2d with learned affine parameters;
- the generator's residual up-block, the discriminator's pre-activation residual down-block
  and its "optimized" first block (no activation before the first conv, as the input is an
  image).

Where a 1x1 shortcut conv meets a resampling that is also linear and per-channel (nearest
upsampling, 2x2 average pooling), the two commute exactly, so the conv runs on the smaller
tensor: conv-then-upsample in the generator, pool-then-conv in the discriminator. The result
is the same function as the original's order at a quarter of the shortcut's cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ylg.runtime.spectral_norm import spectral_norm

__all__ = [
    "BN_EPS",
    "ConditionalBatchNorm2d",
    "check_labels",
    "DBlock",
    "DBlockOptimized",
    "GBlock",
    "sn_conv2d",
    "sn_embedding",
    "sn_linear",
]

BN_EPS = 1e-3  # tensorflow-gan's batch norm epsilon


def _glorot_sn(module: nn.Module) -> nn.Module:
    """Glorot-uniform weight, zero bias, then spectral norm over the weight."""
    nn.init.xavier_uniform_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


def sn_conv2d(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """Spectrally normalised ``kernel_size`` x ``kernel_size`` conv, stride 1, 'same' padding."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return _glorot_sn(conv)


def sn_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """Spectrally normalised linear layer."""
    return _glorot_sn(nn.Linear(in_features, out_features, bias=bias))


def sn_embedding(num_embeddings: int, embedding_dim: int) -> nn.Embedding:
    """Spectrally normalised embedding table ``[num_embeddings, embedding_dim]``."""
    return _glorot_sn(nn.Embedding(num_embeddings, embedding_dim))


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are looked up per class; plain BN when unconditional.

    ``forward(x [B, C, H, W], y LongTensor [B] | None) -> [B, C, H, W]``. With
    ``num_classes > 0``: ``gamma[y] * (x - mean) / sqrt(var + eps) + beta[y]`` with the tables
    ``gamma`` (init 1) and ``beta`` (init 0) of shape ``[num_classes, C]``. With
    ``num_classes == 0`` ``y`` is ignored and one learned ``weight`` / ``bias`` is used.
    """

    def __init__(
        self, channels: int, num_classes: int, eps: float = BN_EPS, momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=num_classes == 0)
        if num_classes > 0:
            self.gamma = nn.Embedding(num_classes, channels)
            self.beta = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gamma.weight)
            nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bn(x)
        if self.num_classes == 0:
            return out
        gamma = self.gamma(y)[:, :, None, None]  # [B, C, 1, 1]
        beta = self.beta(y)[:, :, None, None]  # [B, C, 1, 1]
        return out * gamma + beta

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_classes={self.num_classes}"


class GBlock(nn.Module):
    """Generator residual up-block: ``[B, Cin, H, W] -> [B, Cout, 2H, 2W]``.

    main: CBN -> ReLU -> nearest x2 -> SN conv3x3 -> CBN -> ReLU -> SN conv3x3;
    shortcut: nearest x2 -> SN conv1x1 (computed as conv1x1 -> x2, the same function).
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_channels, num_classes)
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.bn2 = ConditionalBatchNorm2d(out_channels, num_classes)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        self.shortcut = sn_conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.bn1(x, y))
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # [B, Cin, 2H, 2W]
        h = self.conv1(h)  # [B, Cout, 2H, 2W]
        h = self.conv2(F.relu(self.bn2(h, y)))
        skip = F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest")
        return h + skip


class DBlock(nn.Module):
    """Discriminator pre-activation residual block: ``[B, Cin, H, W] -> [B, Cout, H/2, W/2]``
    (or ``H, W`` without ``downsample``).

    main: ReLU -> SN conv3x3 -> ReLU -> SN conv3x3 -> avg-pool 2x2;
    shortcut (when downsampling or changing channels): SN conv1x1 -> avg-pool 2x2 (computed
    as pool -> conv1x1, the same function), else the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        learned = downsample or in_channels != out_channels
        self.shortcut = sn_conv2d(in_channels, out_channels, 1) if learned else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv2(F.relu(h))
        skip = x
        if self.downsample:
            h = F.avg_pool2d(h, 2)  # [B, Cout, H/2, W/2]
            skip = F.avg_pool2d(skip, 2)
        if self.shortcut is not None:
            skip = self.shortcut(skip)
        return h + skip

    def extra_repr(self) -> str:
        return f"downsample={self.downsample}"


class DBlockOptimized(nn.Module):
    """The discriminator's first block, on images: ``[B, Cin, H, W] -> [B, Cout, H/2, W/2]``.

    main: SN conv3x3 -> ReLU -> SN conv3x3 -> avg-pool 2x2 (no activation on the input);
    shortcut: avg-pool 2x2 -> SN conv1x1.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        self.shortcut = sn_conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)  # [B, Cout, H/2, W/2]
        return h + self.shortcut(F.avg_pool2d(x, 2))


def check_labels(y: torch.Tensor | None, num_classes: int, batch: int) -> torch.Tensor | None:
    """Validate class labels for a model with ``num_classes`` classes and batch ``batch``.

    Conditional models (``num_classes > 0``) need an integer tensor ``[batch]`` with values in
    ``[0, num_classes)``; unconditional models ignore ``y`` (returns ``None``). The range check
    reads the values, so it runs only for CPU labels outside ``torch.compile``: on an
    accelerator it would stall every training step on a device sync, and an out-of-range label
    there still fails (the class embedding's device-side index check); datasets check their
    labels before training.
    """
    if num_classes == 0:
        return None
    if y is None:
        raise ValueError(
            f"y (class labels [B]) is required: the model is conditional with "
            f"num_classes={num_classes}"
        )
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"y must be an int64 tensor [B] of class labels, got "
            f"{type(y).__name__ if not isinstance(y, torch.Tensor) else y.dtype}"
        )
    if y.shape != (batch,):
        raise ValueError(
            f"y must have shape [{batch}] (one label per sample), got {tuple(y.shape)}"
        )
    if y.device.type == "cpu" and not torch.compiler.is_compiling() and batch:
        low, high = torch.stack([y.min(), y.max()]).tolist()
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"label {bad} is out of range: labels must be in [0, {num_classes}) "
                f"(num_classes={num_classes})"
            )
    return y.long()
