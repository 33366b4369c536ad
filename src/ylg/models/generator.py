"""The YLG-SAGAN generator, for 32, 64, 128 and 256 pixels from one definition.

``z [B, z_dim] ~ N(0, I)`` -> SN-linear -> ``[B, base * width, 4, 4]`` -> residual up-blocks
(each doubles the resolution, :class:`~ylg.models.layers.GBlock`, conditioned on the label
through conditional batch norm) with the attention layer after the block that reaches the
attention resolution -> BN -> ReLU -> SN conv3x3 -> tanh -> ``[B, 3, R, R]`` in ``[-1, 1]``.

The per-resolution shapes are in :data:`GENERATOR_ARCHS` (channels in units of ``width``,
the paper's ``gf``):

===== ===== ========================== =========
R     4x4   block outputs (8 px ... R)  attention
===== ===== ========================== =========
32    4     4, 4, 4                    16 x 16
64    16    16, 8, 4, 2                32 x 32
128   16    16, 8, 4, 2, 1             32 x 32
256   16    16, 8, 8, 4, 2, 1          64 x 64
===== ===== ========================== =========

128 is the paper's model (tensorflow-gan's SAGAN: 1024, 512, 256, 128, 64 channels at
``width=64``, attention after the 256-channel block at 32 x 32). 64 is the same without its
last block, 32 the constant-width CIFAR generator of SN-GAN / BigGAN, and 256 follows BigGAN's
256 x 256 widths; at 32 / 64 / 256 the attention sits where SAGAN-style CIFAR models and
BigGAN put it. ``attention_resolution`` moves it to any other block output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ylg.models.layers import BN_EPS, GBlock, check_labels, sn_conv2d, sn_linear
from ylg.models.variants import build_attention, resolve_attention

__all__ = ["GENERATOR_ARCHS", "Generator", "GeneratorArch", "RESOLUTIONS"]

RESOLUTIONS = (32, 64, 128, 256)


@dataclass(frozen=True)
class GeneratorArch:
    """Channel multipliers (of ``width``) of the 4x4 input and of each up-block's output, and
    the resolution after which the attention layer sits."""

    base: int
    blocks: tuple[int, ...]
    attention: int


GENERATOR_ARCHS: dict[int, GeneratorArch] = {
    32: GeneratorArch(base=4, blocks=(4, 4, 4), attention=16),
    64: GeneratorArch(base=16, blocks=(16, 8, 4, 2), attention=32),
    128: GeneratorArch(base=16, blocks=(16, 8, 4, 2, 1), attention=32),
    256: GeneratorArch(base=16, blocks=(16, 8, 8, 4, 2, 1), attention=64),
}


def _check_common(resolution: int, num_classes: int, width: int) -> None:
    if resolution not in RESOLUTIONS:
        raise ValueError(
            f"resolution={resolution!r} is not supported; use one of "
            f"{', '.join(map(str, RESOLUTIONS))}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(
            f"num_classes must be an int >= 0 (0 = unconditional), got {num_classes!r}"
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")


class Generator(nn.Module):
    """YLG-SAGAN generator: ``forward(z [B, z_dim], y [B] | None) -> [B, 3, R, R]`` in [-1, 1].

    Args:
        resolution: output side R, one of 32, 64, 128, 256.
        num_classes: number of classes for conditional batch norm; 0 = unconditional (``y``
            is then ignored).
        attention: a variant name of :data:`ylg.models.variants.VARIANTS` (``"ylg"``,
            ``"sagan"``, ``"none"``, ...), ``None`` for no attention, or a dict of
            :class:`~ylg.attention.YLGAttention2d` kwargs.
        width: the channel unit ``gf`` (64 in the paper).
        z_dim: latent size (128 in the paper).
        attention_resolution: put the attention after the block reaching this resolution
            instead of the default of :data:`GENERATOR_ARCHS`.
        attention_backend: override the attention backend (``"auto"``, ``"reference"``, ...).

    Attributes:
        attention: the :class:`~ylg.attention.YLGAttention2d` layer, or ``None``.
        attention_variant: the variant name (``"custom"`` for a dict).
        attention_resolution: the side of the feature map the attention layer sees.
    """

    def __init__(
        self,
        resolution: int,
        num_classes: int,
        attention: str | dict | None = "ylg",
        width: int = 64,
        z_dim: int = 128,
        *,
        attention_resolution: int | None = None,
        attention_backend: str | None = None,
    ) -> None:
        super().__init__()
        _check_common(resolution, num_classes, width)
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(f"z_dim must be a positive int, got {z_dim!r}")
        arch = GENERATOR_ARCHS[resolution]
        block_res = [8 * 2**i for i in range(len(arch.blocks))]  # output side of each block
        if attention_resolution is None:
            attention_resolution = arch.attention
        if attention_resolution not in block_res:
            raise ValueError(
                f"attention_resolution={attention_resolution!r} is not a block output of the "
                f"{resolution}px generator; use one of {', '.join(map(str, block_res))}"
            )
        self.resolution = resolution
        self.num_classes = num_classes
        self.width = width
        self.z_dim = z_dim
        self.attention_variant, kwargs = resolve_attention(attention)
        self.attention_resolution = attention_resolution
        self._attention_after = block_res.index(attention_resolution)

        channels = [arch.base * width] + [m * width for m in arch.blocks]
        self.base_channels = channels[0]
        self.linear = sn_linear(z_dim, channels[0] * 4 * 4)
        self.blocks = nn.ModuleList(
            GBlock(cin, cout, num_classes) for cin, cout in zip(channels[:-1], channels[1:])
        )
        where = (
            f"the generator at {attention_resolution}x{attention_resolution} "
            f"({channels[self._attention_after + 1]} channels = "
            f"{arch.blocks[self._attention_after]} * width={width})"
        )
        self.attention = build_attention(
            kwargs, channels[self._attention_after + 1], attention_backend, where
        )
        self.out_bn = nn.BatchNorm2d(channels[-1], eps=BN_EPS)
        self.out_conv = sn_conv2d(channels[-1], 3, 3)

    def forward(
        self, z: torch.Tensor, y: torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``z [B, z_dim]``, ``y`` int64 ``[B]`` (conditional) -> images ``[B, 3, R, R]``;
        with ``return_attention`` also the attention probabilities ``[B, heads, Nq, Nk]``."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [B, {self.z_dim}], got {tuple(z.shape)}")
        if return_attention and self.attention is None:
            raise ValueError(
                "return_attention=True needs an attention layer; this generator has "
                f"attention={self.attention_variant!r}"
            )
        y = check_labels(y, self.num_classes, z.shape[0])
        h = self.linear(z).view(z.shape[0], self.base_channels, 4, 4)  # [B, C0, 4, 4]
        probs = None
        for i, block in enumerate(self.blocks):
            h = block(h, y)  # [B, Ci, 8 * 2**i, 8 * 2**i]
            if i == self._attention_after and self.attention is not None:
                if return_attention:
                    h, probs = self.attention(h, return_attention=True)
                else:
                    h = self.attention(h)
        images = torch.tanh(self.out_conv(F.relu(self.out_bn(h))))  # [B, 3, R, R]
        return (images, probs) if return_attention else images

    def extra_repr(self) -> str:
        return (
            f"resolution={self.resolution}, num_classes={self.num_classes}, width={self.width}, "
            f"z_dim={self.z_dim}, attention={self.attention_variant!r} at "
            f"{self.attention_resolution}x{self.attention_resolution}"
        )
