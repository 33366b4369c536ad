"""The attention modules.

- ``YLGAttention2d``: SAGAN's non-local block with YLG's 2-D local sparse heads (feature maps);
- ``YLGSelfAttention``: a ViT-style attention block on token sequences ``[B, N, C]`` whose
  tokens lie on a grid (after ``extra_tokens`` global tokens), through
  :func:`ylg.attention.grid_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ylg.attention.backends import BACKENDS
from ylg.attention.functional import masked_attention
from ylg.attention.grid import grid_attention, grid_layout, grid_mask
from ylg.attention.grid_spec import DEFAULT_RADIUS, GRID_BACKENDS
from ylg.attention.heads import GRID_PATTERNS, PATTERN_NAMES, head_specs
from ylg.attention.layouts import HeadLayout
from ylg.patterns import CURVES, QUERY_LAYOUTS
from ylg.runtime.spectral_norm import spectral_norm


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
            pairs, or a bool tensor ``[heads, Nq, Nk]`` (see :mod:`ylg.attention.heads`).
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
        # Named / list layouts: the grid core's cached plans (ylg.attention.plan). An
        # explicit mask tensor: (H, W, device) -> HeadLayout here, deliberately not buffers.
        self._layouts: dict = {}

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
        # (and their plans' FlexAttention block masks hold closures that do not pickle).
        state = self.__dict__.copy()
        state["_layouts"] = {}
        return state

    def _grid_options(self, height: int, width: int) -> dict:
        """The :func:`ylg.attention.grid_attention` keywords of an input of that size."""
        return dict(
            grid=(height, width),
            key_grid=(height // 2, width // 2) if self.pool else None,
            pattern=self._specs,
            curve=self.curve,
            query_layout=self.query_layout,
            stride=self.stride,
        )

    def head_layout(self, height: int, width: int, device=None) -> HeadLayout:
        """The :class:`HeadLayout` used for an input of ``height`` x ``width`` (cached: the
        grid plan's for a named or list layout)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        if self._specs is not None:
            return grid_layout(heads=self.heads, device=device, **self._grid_options(height, width))
        key = (height, width, str(device))
        if key not in self._layouts:  # an explicit mask tensor: no grid structure
            self._layouts[key] = HeadLayout.from_masks(self.layout).to(device)
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
        if self._specs is None:  # an explicit mask tensor
            result = masked_attention(
                q, k, v, self.head_layout(hgt, wid, x.device), self.backend, scale=scale,
                return_attention=return_attention,
            )  # fmt: skip
        else:
            result = grid_attention(
                q, k, v, **self._grid_options(hgt, wid), scale=scale, backend=self.backend,
                return_attention=return_attention,
            )  # fmt: skip
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


class YLGSelfAttention(nn.Module):
    """Multi-head self-attention over tokens ``[B, N, C]`` -> ``[B, N, C]``, YLG-masked.

    The constructor and behaviour of timm's ViT ``Attention`` (one ``qkv`` linear, heads of
    dim ``C / num_heads``, logits scaled by ``1/sqrt(head dim)``, an output ``proj``; the same
    parameter names, so a timm block's weights load), with the softmax restricted to
    :func:`ylg.attention.grid_mask`'s mask: ``N = extra_tokens + H * W``, the first
    ``extra_tokens`` tokens global (class token, registers, text tokens), the rest the
    ``grid = (H, W)`` in raster order.

    Args:
        dim: C, divisible by ``num_heads``.
        num_heads: heads (any number >= 1; see :mod:`ylg.attention.grid` for how the pattern's
            masks are assigned to heads).
        grid: (H, W) of the token grid.
        pattern: ``ylg``, ``strided``, ``rtl``, ``ltr``, ``dense`` or ``neighborhood``.
        extra_tokens: global tokens in front of the grid tokens.
        qkv_bias, proj_bias: biases of the two linears.
        qk_norm: LayerNorm over each head's queries and keys (timm's ``qk_norm``).
        proj_drop: dropout after the output projection.
        curve: ``esa`` (default), ``raster`` or ``hilbert``: how 1-D patterns meet the grid.
        radius: the ``neighborhood`` pattern's window radius (window ``2r+1``).
        backend: ``auto`` (default), ``reference``, ``blocks`` or ``flex`` (CUDA; forward only
            on CPU); may be reassigned later.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        *,
        pattern: str = "ylg",
        extra_tokens: int = 0,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        proj_bias: bool = True,
        proj_drop: float = 0.0,
        curve: str = "esa",
        radius: int = DEFAULT_RADIUS,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        for name, value, low in [("dim", dim, 1), ("num_heads", num_heads, 1)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        if pattern not in GRID_PATTERNS:
            raise ValueError(
                f"pattern={pattern!r} is not known; use one of {', '.join(GRID_PATTERNS)}"
            )
        if curve not in CURVES:
            raise ValueError(f"curve={curve!r} is not known; use one of {', '.join(CURVES)}")
        self.grid = tuple(grid) if isinstance(grid, (tuple, list)) else grid
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.pattern = pattern
        self.extra_tokens = extra_tokens
        self.curve = curve
        self.radius = radius
        self.backend = backend
        self.mask()  # validates grid, extra_tokens and radius, naming the bad value
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in GRID_BACKENDS:
            raise ValueError(
                f"backend={value!r} is not known; use one of {', '.join(GRID_BACKENDS)}"
            )
        self._backend = value

    @property
    def num_tokens(self) -> int:
        """N: ``extra_tokens + H * W``."""
        return self.extra_tokens + self.grid[0] * self.grid[1]

    def mask(self) -> torch.Tensor:
        """The heads' masks, bool ``[num_heads, N, N]`` (see :func:`ylg.attention.grid_mask`)."""
        return grid_mask(
            self.pattern,
            self.grid,
            heads=self.num_heads,
            curve=self.curve,
            extra_tokens=self.extra_tokens,
            radius=self.radius,
        )

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, N, C]`` -> ``[B, N, C]``; with ``return_attention`` also the
        probabilities ``[B, num_heads, N, N]``.

        ``attn_mask`` and ``is_causal`` are timm's ``Attention`` arguments, so a timm
        ``Block`` (``self.attn(x, attn_mask=attn_mask)``) can call this module unchanged.
        ``attn_mask`` (bool, True = may attend, or float, added to the logits; broadcastable
        to ``[B, num_heads, N, N]``) is combined with the grid mask: a query attends where
        both allow. That path builds the dense ``[heads, N, N]`` mask (O(N^2) memory, the
        reference's cost); a query left with no key is an error. ``is_causal=True`` is
        refused: the grid patterns are 2-D and not causal (pass ``pattern="ltr"`` and
        ``curve="raster"`` for a left-to-right two-step pattern)."""
        if is_causal:
            raise ValueError(
                "is_causal=True is not supported by YLGSelfAttention: its grid patterns are 2-D "
                "and not causal; pass is_causal=False (or pattern='ltr', curve='raster')"
            )
        if x.dim() != 3 or x.shape[1] != self.num_tokens or x.shape[2] != self.dim:
            raise ValueError(
                f"input must be [B, N={self.num_tokens}, C={self.dim}] (extra_tokens="
                f"{self.extra_tokens} + grid {self.grid[0]}x{self.grid[1]}), got shape "
                f"{tuple(x.shape)}"
            )
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)  # [B, N, 3, h, d]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, h, N, d]
        q, k = self.q_norm(q), self.k_norm(k)
        if attn_mask is not None:
            return self._masked_forward(q, k, v, attn_mask, return_attention)
        result = grid_attention(
            q,
            k,
            v,
            grid=self.grid,
            pattern=self.pattern,
            curve=self.curve,
            extra_tokens=self.extra_tokens,
            radius=self.radius,
            backend=self.backend,
            return_attention=return_attention,
        )
        out, probs = result if return_attention else (result, None)
        return self._project(out, probs, return_attention)

    def _project(self, out, probs, return_attention):
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.dim)  # [B, N, C]
        out = self.proj_drop(self.proj(out))
        return (out, probs) if return_attention else out

    def _masked_forward(self, q, k, v, attn_mask, return_attention):
        """Dense masked softmax with the grid mask and timm's ``attn_mask`` together."""
        if not isinstance(attn_mask, torch.Tensor):
            raise ValueError(f"attn_mask must be a tensor, got {type(attn_mask).__name__}")
        n = self.num_tokens
        grid = self.mask().to(q.device)  # [h, N, N]
        logits = torch.matmul(q, k.transpose(-2, -1)) * self.head_dim**-0.5  # [B, h, N, N]
        try:
            if attn_mask.dtype == torch.bool:
                allowed = grid & attn_mask
                bias = None
            else:
                allowed, bias = grid.expand_as(logits), attn_mask.to(logits.dtype)
            logits = torch.broadcast_tensors(logits, allowed)[0]
            if bias is not None:
                logits = logits + bias
        except RuntimeError:
            raise ValueError(
                f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to "
                f"[B, heads, N, N] = {[q.shape[0], self.num_heads, n, n]}"
            ) from None
        if not bool(allowed.any(-1).all()):
            raise ValueError("attn_mask and the grid mask together leave a query with no key")
        probs = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
        out = torch.matmul(probs.to(v.dtype), v)  # [B, h, N, d]
        return self._project(out, probs, return_attention)

    def extra_repr(self) -> str:
        radius = f", radius={self.radius}" if self.pattern == "neighborhood" else ""
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, grid={self.grid}, "
            f"pattern={self.pattern!r}{radius}, extra_tokens={self.extra_tokens}, "
            f"curve={self.curve!r}, backend={self.backend!r}"
        )


__all__ = ["YLGAttention2d", "YLGSelfAttention", "PATTERN_NAMES"]
