"""``YLGAttention2d``: SAGAN's non-local block with YLG's 2-D local sparse heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ylg.attention.backends import BACKENDS
from ylg.attention.functional import masked_attention
from ylg.attention.layouts import PATTERN_NAMES, HeadLayout, build_layout, head_specs
from ylg.patterns import CURVES, QUERY_LAYOUTS


def _sn_conv1x1(cin: int, cout: int) -> nn.Module:
    """Bias-free 1x1 conv, Glorot-uniform initialised (as SAGAN's snconv2d), spectrally normed."""
    conv = nn.Conv2d(cin, cout, kernel_size=1, bias=False)
    nn.init.xavier_uniform_(conv.weight)
    return spectral_norm(conv)


class YLGAttention2d(nn.Module):
    """Self-attention over a feature map ``[B, C, H, W]`` -> ``[B, C, H, W]``.

    theta (queries) and phi (keys) are 1x1 convs to C/8 channels, g (values) to C/2, all
    spectrally normalised and bias-free; phi and g are 2x2 max-pooled when ``pool`` (query
    grid H x W, key grid H/2 x W/2). Channels are split into ``heads``; each head attends with
    its own mask (``layout``), without 1/sqrt(d) scaling unless ``scaled``. The heads' outputs
    go through a 1x1 SN conv C/2 -> C, and the block returns ``x + gamma * o`` with the learned
    scalar ``gamma`` starting at 0 (the identity at initialisation).

    Args:
        channels: C, divisible by ``8 * heads``.
        heads: number of heads; ``ylg`` and ``strided`` need 8.
        layout: ``dense``, ``ylg``, ``strided``, a list of pattern names / ``(name, step)``
            pairs, or a bool tensor ``[heads, Nq, Nk]`` (see :mod:`ylg.attention.layouts`).
        curve: how the 2-D grid is enumerated for the 1-D patterns: ``esa``, ``raster`` (the
            "YLG - No ESA" ablation) or ``hilbert``.
        query_layout: how the query grid is matched to the smaller key grid when pooling:
            ``colocate`` (2-D locality), ``tile`` or ``flat`` (the original code).
        pool: max-pool keys and values 2x2.
        backend: ``auto``, ``reference``, ``blocks`` or ``flex``; may be reassigned later.
        scaled: multiply logits by 1/sqrt(head dim) (off in SAGAN).
        stride: the patterns' stride; default isqrt(number of keys).

    The masks are built once per input size and device and cached in a plain dict, so they
    follow the module across devices and are not part of the state dict.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        layout: str | Sequence | torch.Tensor = "ylg",
        curve: str = "esa",
        query_layout: str = "colocate",
        pool: bool = True,
        backend: str = "auto",
        *,
        scaled: bool = False,
        stride: int | None = None,
    ) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got heads={heads}")
        if channels < 1 or channels % (8 * heads):
            raise ValueError(
                f"channels={channels} must be a positive multiple of 8 * heads = {8 * heads} "
                f"(heads={heads})"
            )
        if curve not in CURVES:
            raise ValueError(f"curve={curve!r} is not known; use one of {', '.join(CURVES)}")
        if query_layout not in QUERY_LAYOUTS:
            raise ValueError(
                f"query_layout={query_layout!r} is not known; use one of {', '.join(QUERY_LAYOUTS)}"
            )
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be >= 1 or None, got stride={stride}")
        self._specs = head_specs(layout, heads)  # validates names and head count
        if self._specs is None:
            HeadLayout.from_masks(layout)  # an explicit mask: refuse empty rows right away
        self.channels = channels
        self.heads = heads
        self.layout = layout
        self.curve = curve
        self.query_layout = query_layout
        self.pool = pool
        self.scaled = scaled
        self.stride = stride
        self.backend = backend

        self.theta = _sn_conv1x1(channels, channels // 8)
        self.phi = _sn_conv1x1(channels, channels // 8)
        self.g = _sn_conv1x1(channels, channels // 2)
        self.o = _sn_conv1x1(channels // 2, channels)
        self.gamma = nn.Parameter(torch.zeros(()))
        self._layouts: dict = {}  # (H, W, device) -> HeadLayout; deliberately not buffers

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"backend={value!r} is not known; use one of {', '.join(BACKENDS)}")
        self._backend = value

    def __getstate__(self):
        # Cached layouts are rebuilt on demand; dropping them keeps copies and pickles small
        # (and FlexAttention block masks hold closures that do not pickle).
        state = self.__dict__.copy()
        state["_layouts"] = {}
        return state

    def head_layout(self, height: int, width: int, device=None) -> HeadLayout:
        """The (cached) :class:`HeadLayout` used for an input of ``height`` x ``width``."""
        device = torch.device("cpu") if device is None else torch.device(device)
        key = (height, width, str(device))
        if key not in self._layouts:
            cpu_key = (height, width, "cpu")
            if cpu_key not in self._layouts:
                query_grid = (height, width)
                key_grid = (height // 2, width // 2) if self.pool else query_grid
                self._layouts[cpu_key] = build_layout(
                    self.layout if self._specs is None else list(self._specs),
                    self.heads,
                    query_grid,
                    key_grid,
                    curve=self.curve,
                    query_layout=self.query_layout,
                    stride=self.stride,
                )
            self._layouts[key] = self._layouts[cpu_key].to(device)
        return self._layouts[key]

    def masks(self, height: int, width: int) -> torch.Tensor:
        """Dense boolean masks ``[heads, Nq, Nk]`` for an input of ``height`` x ``width``."""
        return self.head_layout(height, width).masks

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, C, H, W]`` -> ``x + gamma * o`` ``[B, C, H, W]``; with
        ``return_attention`` also the probabilities ``[B, heads, Nq, Nk]``."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"input must be [B, {self.channels}, H, W], got shape {tuple(x.shape)}"
            )
        b, c, hgt, wid = x.shape
        if self.pool and (hgt % 2 or wid % 2):
            raise ValueError(
                f"input height and width must be even with pool=True, got H={hgt}, W={wid}"
            )
        layout = self.head_layout(hgt, wid, x.device)
        h = self.heads
        theta = self.theta(x)  # [B, C/8, H, W]
        phi = self.phi(x)  # [B, C/8, H, W]
        g = self.g(x)  # [B, C/2, H, W]
        if self.pool:
            phi = F.max_pool2d(phi, 2)  # [B, C/8, H/2, W/2]
            g = F.max_pool2d(g, 2)  # [B, C/2, H/2, W/2]
        # Channels split into heads; tokens in raster order of their grid.
        q = theta.reshape(b, h, c // 8 // h, -1).transpose(-2, -1)  # [B, h, Nq, d]
        k = phi.reshape(b, h, c // 8 // h, -1).transpose(-2, -1)  # [B, h, Nk, d]
        v = g.reshape(b, h, c // 2 // h, -1).transpose(-2, -1)  # [B, h, Nk, dv]
        scale = q.shape[-1] ** -0.5 if self.scaled else 1.0
        result = masked_attention(
            q, k, v, layout, self.backend, scale=scale, return_attention=return_attention
        )
        out, probs = result if return_attention else (result, None)
        out = out.transpose(-2, -1).reshape(b, c // 2, hgt, wid)  # [B, C/2, H, W]
        y = x + self.gamma * self.o(out)
        return (y, probs) if return_attention else y

    def extra_repr(self) -> str:
        layout = (
            f"tensor{list(self.layout.shape)}"
            if isinstance(self.layout, torch.Tensor)
            else repr(self.layout)
        )
        return (
            f"channels={self.channels}, heads={self.heads}, layout={layout}, "
            f"curve={self.curve!r}, query_layout={self.query_layout!r}, pool={self.pool}, "
            f"backend={self.backend!r}, scaled={self.scaled}"
        )


__all__ = ["YLGAttention2d", "PATTERN_NAMES"]
