"""A diffusers attention processor that runs an MMDiT's attention with YLG grid patterns.

:class:`YLGJointAttnProcessor` replaces diffusers' ``JointAttnProcessor2_0``, the processor of
the joint (MMDiT) attention of Stable Diffusion 3 / 3.5 (``SD3Transformer2DModel``, whose
``JointTransformerBlock`` calls it): the same projections (``to_q/k/v``, ``add_q/k/v_proj``,
the optional q/k norms, ``to_out``, ``to_add_out``), with the softmax through
:func:`ylg.attention.grid_attention` instead of ``F.scaled_dot_product_attention``.

Which calls it handles (SD3 has no separate cross-attention: text and image attend jointly):

- ``attn`` of every block (joint attention): the ``H * W`` image tokens of the latent patch
  grid attend with the YLG ``pattern`` among themselves; the ``T`` text (context) tokens are
  **global tokens**: they attend to every token, and every image token attends to them.
  diffusers concatenates ``[image, text]``; ``grid_attention`` wants global tokens first, so
  q / k / v are concatenated ``[text, image]`` and the output is split back. With
  ``pattern="dense"`` this is exactly the stock processor (softmax over the same key set).
- ``attn2`` of SD3.5's dual-attention blocks (image-only self-attention, no
  ``encoder_hidden_states``): the pattern on the image grid, no global tokens.

Not handled: an ``attention_mask`` (the stock processor ignores it; this one refuses one rather
than drop it silently), and other processors' models (Flux, PixArt, DiT use other attention
layouts: their cross-attention or single-stream blocks are left to the stock processors).

The grid: a processor sees token sequences, not the latent's shape. SD3 patchifies the latent
``[B, C, h, w]`` into ``(h / p) x (w / p)`` tokens in raster order (``p = patch_size``), so
pass ``grid=(h // p, w // p)`` at construction, or leave ``grid=None`` for square latents: the
grid is then ``(n, n)`` with ``n * n`` the number of image tokens (an error names the count
when it is not a square).

Usage::

    from diffusers import SD3Transformer2DModel
    from ylg.attention.diffusers_processor import YLGJointAttnProcessor

    model = SD3Transformer2DModel(...)
    model.set_attn_processor(YLGJointAttnProcessor(pattern="ylg"))

diffusers itself is not imported here: the processor only calls the projections of the
``Attention`` module it is given, so ``import ylg.attention`` works without diffusers.
"""

from __future__ import annotations

import math

import torch

from ylg import patterns
from ylg.attention.grid import grid_attention
from ylg.attention.grid_spec import DEFAULT_RADIUS, GRID_BACKENDS
from ylg.attention.heads import grid_head_specs


class YLGJointAttnProcessor:
    """diffusers ``JointAttnProcessor2_0`` with YLG attention on the image tokens' grid.

    Args:
        pattern: one of ``ylg.attention.GRID_PATTERNS`` (``ylg``, ``strided``, ``rtl``,
            ``ltr``, ``dense``, ``neighborhood``); heads get masks as in ``grid_mask``.
        grid: ``(H, W)`` of the image tokens (latent size / patch size), or ``None``: square,
            inferred from the token count.
        curve: ``esa``, ``raster`` or ``hilbert`` (placement of the 1-D patterns).
        backend: ``auto`` / ``None``, ``reference``, ``blocks`` or ``flex`` (see
            ``grid_attention``).
        radius: window radius of ``neighborhood``.
    """

    def __init__(
        self,
        pattern: str = "ylg",
        *,
        grid: tuple[int, int] | None = None,
        curve: str = "esa",
        backend: str | None = "auto",
        radius: int = DEFAULT_RADIUS,
    ) -> None:
        grid_head_specs(pattern, 1)  # validates the pattern, naming the bad value
        if curve not in patterns.CURVES:
            raise ValueError(
                f"curve={curve!r} is not known; use one of {', '.join(patterns.CURVES)}"
            )
        if backend is not None and backend not in GRID_BACKENDS:
            raise ValueError(
                f"backend={backend!r} is not known; use one of {', '.join(GRID_BACKENDS)}"
            )
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ValueError(f"radius must be an integer >= 0, got radius={radius!r}")
        if grid is not None:
            ok = (
                isinstance(grid, (tuple, list))
                and len(grid) == 2
                and all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in grid)
            )
            if not ok:
                raise ValueError(f"grid must be None or (rows, cols) integers >= 1, got {grid!r}")
            grid = (int(grid[0]), int(grid[1]))
        self.pattern = pattern
        self.grid = grid
        self.curve = curve
        self.backend = backend
        self.radius = radius

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pattern={self.pattern!r}, grid={self.grid}, "
            f"curve={self.curve!r}, backend={self.backend!r})"
        )

    def _grid(self, n: int) -> tuple[int, int]:
        if self.grid is not None:
            if self.grid[0] * self.grid[1] != n:
                raise ValueError(
                    f"grid={self.grid} has {self.grid[0] * self.grid[1]} cells but the attention "
                    f"got {n} image tokens; pass grid=(latent_h // patch, latent_w // patch)"
                )
            return self.grid
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(
                f"{n} image tokens are not a square grid; pass grid=(rows, cols) to "
                f"{type(self).__name__}"
            )
        return (side, side)

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if attention_mask is not None:
            raise ValueError(
                f"{type(self).__name__} does not take an attention_mask (the YLG pattern is "
                f"the mask); got one of shape {tuple(attention_mask.shape)}"
            )
        batch, n_img, _ = hidden_states.shape  # [B, H * W, C]
        grid = self._grid(n_img)

        def heads_view(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # [B, heads, N, d]

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = heads_view(query), heads_view(key), heads_view(value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        n_ctx = 0
        if encoder_hidden_states is not None:
            n_ctx = encoder_hidden_states.shape[1]
            ctx_q = heads_view(attn.add_q_proj(encoder_hidden_states))
            ctx_k = heads_view(attn.add_k_proj(encoder_hidden_states))
            ctx_v = heads_view(attn.add_v_proj(encoder_hidden_states))
            if attn.norm_added_q is not None:
                ctx_q = attn.norm_added_q(ctx_q)
            if attn.norm_added_k is not None:
                ctx_k = attn.norm_added_k(ctx_k)
            # global tokens first (grid_attention's convention; diffusers puts them last)
            query = torch.cat([ctx_q, query], dim=2)  # [B, heads, T + H * W, d]
            key = torch.cat([ctx_k, key], dim=2)
            value = torch.cat([ctx_v, value], dim=2)

        out = grid_attention(
            query,
            key,
            value,
            grid=grid,
            pattern=self.pattern,
            curve=self.curve,
            extra_tokens=n_ctx,
            backend=self.backend,
            radius=self.radius,
        )  # [B, heads, T + H * W, d]
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        ctx_out, out = out[:, :n_ctx], out[:, n_ctx:]  # [B, T, C], [B, H * W, C]

        out = attn.to_out[0](out)  # output projection
        out = attn.to_out[1](out)  # dropout
        if encoder_hidden_states is None:
            return out
        if not attn.context_pre_only:
            ctx_out = attn.to_add_out(ctx_out)
        return out, ctx_out
