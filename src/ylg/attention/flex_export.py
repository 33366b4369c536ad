"""FlexAttention export of the grid patterns: ``mask_mod`` and ``flex_block_mask``.

For GPU users who call PyTorch's ``flex_attention`` themselves (a ViT, a DiT, an MMDiT with
text tokens in front) instead of :func:`ylg.attention.grid_attention`:

- :func:`mask_mod` is the mask of :func:`ylg.attention.grid_mask` as a pure function
  ``(b, h, q_idx, kv_idx) -> bool`` over raster-ordered tokens (global tokens first). It is
  vectorised: it accepts the 0-d index tensors that ``create_block_mask`` passes under
  ``vmap`` and broadcastable index tensors (``create_mask``, a dense materialiser), and
  equals ``grid_mask(...)[h, q_idx, kv_idx]`` elementwise. It builds no ``[Nq, Nk]`` tensor:
  it reads small per-token tables (curve positions, key cells).
- :func:`flex_block_mask` returns ``(block_mask, q_order, k_order)``. In raster order the YLG
  masks touch nearly every 128 x 128 tile, so FlexAttention would skip nothing; the block mask
  is over **reordered** tokens: global tokens first, then queries by the curve position of their
  mask row and keys by their own curve position (for RTL / LTR / fixed heads the summary keys,
  the first and last cell of each block, go last); ``neighborhood`` keeps raster order
  (:mod:`ylg.attention.flex_rules` says why). ``q[:, :, q_order]`` puts raster-ordered queries
  into that order, and ``out.index_select(2, torch.argsort(q_order))`` puts the output back.

These are the same ``mask_mod``, orders and block mask that ``grid_attention(...,
backend="flex")`` runs: both read them from the cached :class:`~ylg.attention.plan.AttentionPlan`
of the pattern (:func:`ylg.attention.plan.grid_plan`).

Usage (see docs/attention.md)::

    block_mask, q_order, k_order = flex_block_mask("ylg", (64, 64), heads=8, device="cuda")
    out = flex_attention(q[:, :, q_order], k[:, :, k_order], v[:, :, k_order],
                         block_mask=block_mask)
    out = out.index_select(2, torch.argsort(q_order))  # [B, heads, Nq, Dv], raster order
"""

from __future__ import annotations

import torch

from ylg.attention.checks import check_device
from ylg.attention.flex_rules import FlexMaskMod
from ylg.attention.grid_spec import DEFAULT_RADIUS, grid_spec
from ylg.attention.heads import Pattern, expand_specs
from ylg.attention.plan import device_key, grid_plan


def mask_mod(
    pattern: Pattern,
    grid,
    *,
    heads: int,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
    device: torch.device | str = "cpu",
) -> FlexMaskMod:
    """:func:`ylg.attention.grid_mask`'s mask as a FlexAttention ``mask_mod``.

    Returns ``fn(b, h, q_idx, kv_idx) -> BoolTensor`` (the broadcast shape of the indices) over
    raster-ordered tokens, ``Nq = extra_tokens + H * W`` queries and
    ``Nk = extra_tokens + h * w`` keys, equal to ``grid_mask(pattern, grid, heads=heads,
    ...)[h, q_idx, kv_idx]``; ``b`` is ignored. Indices past the end (a kernel's padded tail)
    are clamped, never read out of bounds. ``device``: where its small tables live (the
    device of the index tensors it will be called with).
    """
    spec = grid_spec(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
    )
    return grid_plan(spec, device_key(check_device(device))).mask_mod


def flex_orders(
    pattern: Pattern,
    grid,
    *,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    query_layout: str = "colocate",
    stride: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q_order [Nq], k_order [Nk])``: the raster index of the i-th reordered query / key
    (global tokens first, then the grid tokens along the curve; module docstring). The order
    does not depend on the number of heads: a named pattern is resolved for one head."""
    heads = 1 if isinstance(pattern, str) else len(expand_specs(pattern))
    spec = grid_spec(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        query_layout=query_layout,
        stride=stride,
    )
    q_order, k_order = grid_plan(spec).flex_orders
    return q_order.clone(), k_order.clone()


def flex_block_mask(
    pattern: Pattern,
    grid,
    *,
    heads: int,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    block_size: int | tuple[int, int] = 128,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
    device: torch.device | str = "cpu",
    compile: bool = False,
):
    """``(block_mask, q_order, k_order)`` for ``flex_attention`` on reordered tokens.

    ``block_mask``: a ``torch.nn.attention.flex_attention.BlockMask`` (``B=None``,
    ``H=heads``) over the tokens ``q[:, :, q_order]`` and ``k[:, :, k_order]``; its mask is
    ``grid_mask(...)[:, q_order][:, :, k_order]``. ``q_order`` ``[Nq]`` and ``k_order``
    ``[Nk]`` are LongTensors on ``device`` (see :func:`flex_orders`). ``compile`` is
    ``create_block_mask``'s ``_compile`` (on CUDA, for large grids: it avoids building the
    dense mask in memory). The block mask is the cached plan's (one per block size).
    """
    spec = grid_spec(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
    )
    plan = grid_plan(spec, device_key(check_device(device)))
    q_order, k_order = plan.flex_orders
    return plan.block_mask(block_size, compile), q_order.clone(), k_order.clone()


__all__ = ["flex_block_mask", "flex_orders", "mask_mod"]
