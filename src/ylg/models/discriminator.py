"""The YLG-SAGAN projection discriminator, for 32, 64, 128 and 256 pixels.

``x [B, 3, R, R]`` -> optimized first block -> pre-activation residual blocks (most halve the
resolution, :class:`~ylg.models.layers.DBlock`) with the attention layer after the block that
reaches the attention resolution -> ReLU -> sum over space -> ``h [B, C]`` -> logit
``SN-linear(h) + <SN-embedding(y), h>`` (the projection term only when conditional).

The network is split where the inversion of the YLG paper needs it:

- :meth:`Discriminator.features`: ``D0``, everything before the attention layer;
- the attention layer (:attr:`Discriminator.attention`), which can return its probabilities;
- :meth:`Discriminator.head`: everything after it, to the logit.

``forward(x, y) == head(attention(features(x)), y)``.

Per-resolution shapes (:data:`DISCRIMINATOR_ARCHS`; channels in units of ``width``, the
paper's ``df``; ``/`` marks a block without downsampling):

===== =============================================== =========
R     block outputs (first = optimized block)          attention
===== =============================================== =========
32    4 (16), 4 (8), 4 /, 4 /                         16 x 16
64    2 (32), 4 (16), 8 (8), 16 (4), 16 /             32 x 32
128   1 (64), 2 (32), 4 (16), 8 (8), 16 (4), 16 /     32 x 32
256   1, 2 (64), 4, 8, 8, 16 (4), 16 /                64 x 64
===== =============================================== =========

128 is the paper's discriminator (attention after the 128-channel block at 32 x 32 for
``width=64``). 64 is the same without the first 64 x 64 block, so that the attention again
sees ``2 * width`` channels at 32 x 32; 32 is SN-GAN / BigGAN's constant-width CIFAR
discriminator and 256 follows BigGAN's widths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ylg.models.generator import _check_common
from ylg.models.layers import DBlock, DBlockOptimized, check_labels, sn_embedding, sn_linear
from ylg.models.variants import build_attention, resolve_attention

__all__ = ["DISCRIMINATOR_ARCHS", "Discriminator", "DiscriminatorArch"]


@dataclass(frozen=True)
class DiscriminatorArch:
    """``(channel multiplier, downsample)`` of each block (the first is the optimized block,
    which always downsamples) and the resolution after which the attention layer sits."""

    blocks: tuple[tuple[int, bool], ...]
    attention: int


DISCRIMINATOR_ARCHS: dict[int, DiscriminatorArch] = {
    32: DiscriminatorArch(blocks=((4, True), (4, True), (4, False), (4, False)), attention=16),
    64: DiscriminatorArch(
        blocks=((2, True), (4, True), (8, True), (16, True), (16, False)), attention=32
    ),
    128: DiscriminatorArch(
        blocks=((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
        attention=32,
    ),
    256: DiscriminatorArch(
        blocks=((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False)),
        attention=64,
    ),
}


class Discriminator(nn.Module):
    """YLG-SAGAN projection discriminator: ``forward(x [B, 3, R, R], y [B] | None) -> [B]``.

    Args:
        resolution: input side R, one of 32, 64, 128, 256.
        num_classes: classes of the projection term; 0 = unconditional (``y`` ignored).
        attention: a variant name (:data:`ylg.models.variants.VARIANTS`), ``None``, or a dict
            of :class:`~ylg.attention.YLGAttention2d` kwargs.
        width: the channel unit ``df`` (64 in the paper).
        attention_resolution: put the attention after the first block reaching this
            resolution instead of the default of :data:`DISCRIMINATOR_ARCHS`.
        attention_backend: override the attention backend.

    Attributes:
        attention: the attention layer, or ``None``.
        attention_variant, attention_resolution: as for :class:`~ylg.models.Generator`.
        feature_channels: channels of :meth:`features`' output (the attention's input).
        embedding_dim: size of the pooled feature ``h`` (and of the class embeddings).
    """

    def __init__(
        self,
        resolution: int,
        num_classes: int,
        attention: str | dict | None = "ylg",
        width: int = 64,
        *,
        attention_resolution: int | None = None,
        attention_backend: str | None = None,
    ) -> None:
        super().__init__()
        _check_common(resolution, num_classes, width)
        arch = DISCRIMINATOR_ARCHS[resolution]
        block_res, side = [], resolution
        for _, down in arch.blocks:
            side //= 2 if down else 1
            block_res.append(side)
        if attention_resolution is None:
            attention_resolution = arch.attention
        if attention_resolution not in block_res:
            raise ValueError(
                f"attention_resolution={attention_resolution!r} is not a block output of the "
                f"{resolution}px discriminator; use one of "
                f"{', '.join(map(str, sorted(set(block_res), reverse=True)))}"
            )
        self.resolution = resolution
        self.num_classes = num_classes
        self.width = width
        self.attention_variant, kwargs = resolve_attention(attention)
        self.attention_resolution = attention_resolution
        split = block_res.index(attention_resolution) + 1  # blocks before the attention

        channels = [3] + [m * width for m, _ in arch.blocks]
        blocks = [DBlockOptimized(3, channels[1])]
        blocks += [
            DBlock(channels[i], channels[i + 1], downsample=down)
            for i, (_, down) in enumerate(arch.blocks[1:], start=1)
        ]
        self.pre = nn.ModuleList(blocks[:split])  # D0
        self.post = nn.ModuleList(blocks[split:])
        self.feature_channels = channels[split]
        self.embedding_dim = channels[-1]
        where = (
            f"the discriminator at {attention_resolution}x{attention_resolution} "
            f"({channels[split]} channels = {arch.blocks[split - 1][0]} * width={width})"
        )
        self.attention = build_attention(kwargs, channels[split], attention_backend, where)
        self.linear = sn_linear(self.embedding_dim, 1)
        self.embed = sn_embedding(num_classes, self.embedding_dim) if num_classes else None

    def _check_images(self, x: torch.Tensor) -> None:
        r = self.resolution
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, r, r):
            raise ValueError(f"x must have shape [B, 3, {r}, {r}], got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``D0(x)``: ``[B, 3, R, R]`` -> ``[B, feature_channels, s, s]``, the input of the
        attention layer (``s = attention_resolution``; the same cut without attention)."""
        self._check_images(x)
        h = x
        for block in self.pre:
            h = block(h)
        return h

    def pooled(self, h: torch.Tensor) -> torch.Tensor:
        """The blocks after the attention, ReLU and spatial sum: ``[B, C, s, s]`` -> ``[B, E]``."""
        for block in self.post:
            h = block(h)
        return F.relu(h).sum(dim=(2, 3))  # [B, E]

    def head(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B]`` from the attention layer's output ``h [B, C, s, s]``."""
        return self._logits(h, check_labels(y, self.num_classes, h.shape[0]))

    def _logits(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        pooled = self.pooled(h)  # [B, E]
        logits = self.linear(pooled).squeeze(1)  # [B]
        if self.embed is not None:
            logits = logits + (self.embed(y) * pooled).sum(dim=1)  # projection term
        return logits

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x [B, 3, R, R]``, ``y`` int64 ``[B]`` (conditional) -> logits ``[B]``; with
        ``return_attention`` also the attention probabilities ``[B, heads, Nq, Nk]``."""
        if return_attention and self.attention is None:
            raise ValueError(
                "return_attention=True needs an attention layer; this discriminator has "
                f"attention={self.attention_variant!r}"
            )
        y = check_labels(y, self.num_classes, x.shape[0])  # fail before the forward pass
        h = self.features(x)
        probs = None
        if self.attention is not None:
            if return_attention:
                h, probs = self.attention(h, return_attention=True)
            else:
                h = self.attention(h)
        logits = self._logits(h, y)
        return (logits, probs) if return_attention else logits

    def class_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Projection scores ``<embed(c), h(x)>`` of every class c: ``[B, num_classes]``.

        ``forward(x, y) == linear(h) + class_scores(x)[y]``. Raises ``ValueError`` for an
        unconditional discriminator.
        """
        if self.embed is None:
            raise ValueError("class_scores needs a conditional discriminator (num_classes > 0)")
        h = self.features(x)
        if self.attention is not None:
            h = self.attention(h)
        return self.pooled(h) @ self.embed.weight.T  # [B, num_classes]

    def extra_repr(self) -> str:
        return (
            f"resolution={self.resolution}, num_classes={self.num_classes}, width={self.width}, "
            f"attention={self.attention_variant!r} at "
            f"{self.attention_resolution}x{self.attention_resolution}"
        )
