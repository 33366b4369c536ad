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
  mask row and keys by their own curve position (for RTL / LTR heads the summary keys, the
  first and last cell of each block, go last, as in :mod:`ylg.attention.backends.flex`);
  ``neighborhood`` keeps raster order (its windows are already a band there: a block of
  queries covering a few rows reads those rows plus ``radius`` rows on each side; a Hilbert
  order visits more blocks, measured on 16 x 16 with blocks of 16). ``q[:, :, q_order]``
  puts raster-ordered queries into that order, and
  ``out.index_select(2, torch.argsort(q_order))`` puts the output back.

Usage (see docs/attention.md)::

    block_mask, q_order, k_order = flex_block_mask("ylg", (64, 64), heads=8, device="cuda")
    out = flex_attention(q[:, :, q_order], k[:, :, k_order], v[:, :, k_order],
                         block_mask=block_mask)
    out = out.index_select(2, torch.argsort(q_order))  # [B, heads, Nq, Dv], raster order
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ylg import patterns
from ylg.attention.grid_config import (
    DEFAULT_RADIUS,
    NEIGHBORHOOD,
    Pattern,
    check_device,
    grid_head_specs,
    pattern_specs,
    validate,
)
from ylg.attention.heads import FULL

FlexMaskMod = Callable[..., torch.Tensor]


def _grid_rule(pattern, grid, key_grid, heads, curve, radius, query_layout, stride, device):
    """``rule(h, qg, kg)`` over grid indices (raster, no global tokens) of every head."""
    hk, wk = key_grid
    n = hk * wk
    specs = grid_head_specs(pattern, heads)
    if pattern == NEIGHBORHOOD:  # grid.neighborhood_blocks: the key cell under the query
        rows = patterns.query_rows(key_grid, grid, "colocate").to(device)  # [H*W]
        q_row, q_col = rows // wk, rows % wk  # [H*W]

        def window(h, qg, kg):
            near_r = (q_row[qg] - torch.div(kg, wk, rounding_mode="floor")).abs() <= radius
            near_c = (q_col[qg] - kg % wk).abs() <= radius
            return near_r & near_c & (h >= 0)  # every head; h in the shape, as grid_mask's

        return window
    qpos, kpos = patterns._grid_positions(key_grid, grid, curve, query_layout)  # [H*W], [h*w]
    qpos, kpos = qpos.to(device), kpos.to(device)
    terms = []
    for spec in sorted(set(specs), key=str):
        member = torch.tensor([s == spec for s in specs], dtype=torch.bool, device=device)
        rule = None if spec == FULL else patterns.mask_mod(spec[0], spec[1], n, stride)
        terms.append((member, rule))  # member: [heads], which heads use this spec

    def from_rules(h, qg, kg):
        allowed = None
        for member, rule in terms:
            term = member[h] if rule is None else member[h] & rule(qpos[qg], kpos[kg])
            allowed = term if allowed is None else allowed | term
        return allowed

    return from_rules


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
    args = validate(pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout)
    pattern, grid, key_grid, heads, e, radius = args
    device = check_device(device)
    if stride is None:
        stride = math.isqrt(key_grid[0] * key_grid[1])
    rule = _grid_rule(pattern, grid, key_grid, heads, curve, radius, query_layout, stride, device)
    last_q, last_k = grid[0] * grid[1] - 1, key_grid[0] * key_grid[1] - 1

    def grid_mask_mod(b, h, q_idx, kv_idx):
        qg = (q_idx - e).clamp(0, last_q)  # grid index of the query (global rows: any)
        kg = (kv_idx - e).clamp(0, last_k)
        allowed = rule(h, qg, kg)
        if e:
            allowed = allowed | (q_idx < e) | (kv_idx < e)  # global rows and columns
        return allowed

    return grid_mask_mod


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
    (global tokens first, then the grid tokens along the curve; module docstring)."""
    specs = pattern_specs(pattern)  # an explicit list, else None
    heads = 1 if specs is None else len(specs)
    args = validate(
        pattern, grid, heads, key_grid, curve, extra_tokens, DEFAULT_RADIUS, query_layout
    )
    pattern, grid, key_grid, _, e, _ = args
    hk, wk = key_grid
    n = hk * wk
    front = torch.arange(e)
    if pattern == NEIGHBORHOOD:  # raster order: the windows are a band
        return torch.arange(e + grid[0] * grid[1]), torch.arange(e + n)
    qpos, _ = patterns._grid_positions(key_grid, grid, curve, query_layout)  # [H*W]
    q_grid = torch.argsort(qpos, stable=True)  # [H*W]
    position = torch.arange(n)  # curve positions
    names = {spec[0] for spec in (specs or grid_head_specs(pattern, 2)) if spec != FULL}
    if names and names <= {"ltr", "rtl"}:
        s = stride or math.isqrt(n)
        summary = (position % s == 0) | (position % s == s - 1) | (position == n - 1)
        position = position[torch.argsort(summary.long() * n + position)]  # summaries last
    k_grid = patterns.enumerate_grid(hk, wk, curve)[position]  # [h*w] raster indices
    return torch.cat([front, q_grid + e]), torch.cat([front, k_grid + e])


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
    dense mask in memory).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    raster = mask_mod(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
        device=device,
    )
    q_order, k_order = flex_orders(
        pattern,
        grid,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        query_layout=query_layout,
        stride=stride,
    )
    q_order, k_order = q_order.to(device), k_order.to(device)
    nq, nk = q_order.numel(), k_order.numel()

    def reordered(b, h, q_idx, kv_idx):
        return raster(b, h, q_order[q_idx.clamp(max=nq - 1)], k_order[kv_idx.clamp(max=nk - 1)])

    block_mask = create_block_mask(
        reordered,
        B=None,
        H=heads,
        Q_LEN=nq,
        KV_LEN=nk,
        device=device,
        BLOCK_SIZE=block_size,
        _compile=compile,
    )
    return block_mask, q_order, k_order


__all__ = ["flex_block_mask", "flex_orders", "mask_mod"]
