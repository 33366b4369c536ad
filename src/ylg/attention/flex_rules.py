"""The FlexAttention side of a plan: the mask as a ``mask_mod``, and the token orders.

Built from a :class:`~ylg.attention.grid_spec.GridSpec` (or, for a plan without one, from its
dense mask) by :class:`ylg.attention.plan.AttentionPlan`, which caches them; the public
:mod:`ylg.attention.flex_export` and the ``flex`` backend read them from the plan.

- :func:`raster_mask_mod`: ``(b, h, q_idx, kv_idx) -> bool`` over raster-ordered tokens
  (global tokens first), vectorised (0-d index tensors under ``vmap``, or broadcastable index
  tensors), built from small per-token tables (curve positions, key cells), never from a
  ``[Nq, Nk]`` tensor; indices past the end (a kernel's padded tail) are clamped.
- :func:`token_orders`: ``(q_order, k_order)``, the raster index of the i-th reordered query /
  key. In raster order the YLG masks touch nearly every 128 x 128 tile, so FlexAttention would
  skip nothing; reordered, global tokens come first, then queries by the curve position of
  their mask row and keys by their own curve position, where RTL / LTR step 0 is
  block-diagonal and step 1 a few columns plus the diagonal. For RTL / LTR / fixed heads the
  summary keys (the first and last cell of every block) go last, so that step 1 reads one short
  run of keys, not one key in every tile. ``neighborhood`` keeps raster order (its windows are
  already a band there: a block of queries covering a few rows reads those rows plus
  ``radius`` rows on each side; a Hilbert order visits more blocks, measured on 16 x 16 with
  blocks of 16).
- :func:`reordered`: a raster ``mask_mod`` seen through the orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ylg import patterns
from ylg.attention.grid_spec import GridSpec
from ylg.attention.heads import FULL

FlexMaskMod = Callable[..., torch.Tensor]
# Heads whose step 1 reads the summary keys of every block: those keys go last.
SUMMARY_PATTERNS = frozenset({"ltr", "rtl", "fixed"})


def _grid_rule(spec: GridSpec, device: torch.device):
    """``rule(h, qg, kg)`` over grid indices (raster, no global tokens) of every head."""
    hk, wk = spec.key_grid
    n = hk * wk
    if spec.neighborhood:  # neighborhood.neighborhood_blocks: the key cell under the query
        rows = patterns.query_rows(spec.key_grid, spec.grid, "colocate").to(device)  # [H*W]
        q_row, q_col = rows // wk, rows % wk  # [H*W]
        radius = spec.radius

        def window(h, qg, kg):
            near_r = (q_row[qg] - torch.div(kg, wk, rounding_mode="floor")).abs() <= radius
            near_c = (q_col[qg] - kg % wk).abs() <= radius
            return near_r & near_c & (h >= 0)  # every head; h in the shape, as grid_mask's

        return window
    stride = math.isqrt(n) if spec.stride is None else spec.stride
    qpos, kpos = patterns._grid_positions(spec.key_grid, spec.grid, spec.curve, spec.query_layout)
    qpos, kpos = qpos.to(device), kpos.to(device)  # [H*W], [h*w]
    terms = []
    for head in sorted(set(spec.heads), key=str):
        member = torch.tensor([s == head for s in spec.heads], dtype=torch.bool, device=device)
        rule = None if head == FULL else patterns.mask_mod(head[0], head[1], n, stride)
        terms.append((member, rule))  # member: [heads], which heads use this spec

    def from_rules(h, qg, kg):
        allowed = None
        for member, rule in terms:
            term = member[h] if rule is None else member[h] & rule(qpos[qg], kpos[kg])
            allowed = term if allowed is None else allowed | term
        return allowed

    return from_rules


def raster_mask_mod(spec: GridSpec, device: torch.device) -> FlexMaskMod:
    """The mask of ``spec`` as ``fn(b, h, q_idx, kv_idx)`` over raster-ordered tokens, its
    tables on ``device``; ``b`` is ignored."""
    rule = _grid_rule(spec, device)
    e = spec.extra_tokens
    last_q = spec.grid[0] * spec.grid[1] - 1
    last_k = spec.key_grid[0] * spec.key_grid[1] - 1

    def grid_mask_mod(b, h, q_idx, kv_idx):
        qg = (q_idx - e).clamp(0, last_q)  # grid index of the query (global rows: any)
        kg = (kv_idx - e).clamp(0, last_k)
        allowed = rule(h, qg, kg)
        if e:
            allowed = allowed | (q_idx < e) | (kv_idx < e)  # global rows and columns
        return allowed

    return grid_mask_mod


def dense_mask_mod(mask: torch.Tensor) -> FlexMaskMod:
    """A dense ``[heads, Nq, Nk]`` mask as a ``mask_mod`` (plans without a grid spec)."""

    def from_dense(b, h, q_idx, kv_idx):
        return mask[h, q_idx, kv_idx]

    return from_dense


def token_orders(spec: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q_order [Nq], k_order [Nk])`` on the CPU: the raster index of the i-th reordered
    query / key (module docstring)."""
    hk, wk = spec.key_grid
    n = hk * wk
    e = spec.extra_tokens
    front = torch.arange(e)
    if spec.neighborhood:  # raster order: the windows are a band
        return torch.arange(e + spec.grid[0] * spec.grid[1]), torch.arange(e + n)
    qpos, _ = patterns._grid_positions(spec.key_grid, spec.grid, spec.curve, spec.query_layout)
    q_grid = torch.argsort(qpos, stable=True)  # [H*W]
    position = torch.arange(n)  # curve positions
    names = {head[0] for head in spec.heads if head != FULL}
    if names and names <= SUMMARY_PATTERNS:
        s = spec.stride or math.isqrt(n)
        summary = (position % s == 0) | (position % s == s - 1) | (position == n - 1)
        position = position[torch.argsort(summary.long() * n + position)]  # summaries last
    k_grid = patterns.enumerate_grid(hk, wk, spec.curve)[position]  # [h*w] raster indices
    return torch.cat([front, q_grid + e]), torch.cat([front, k_grid + e])


def reordered(raster: FlexMaskMod, q_order: torch.Tensor, k_order: torch.Tensor) -> FlexMaskMod:
    """``raster`` over the tokens ``q[:, :, q_order]``, ``k[:, :, k_order]``."""
    nq, nk = q_order.numel(), k_order.numel()

    def mask_mod(b, h, q_idx, kv_idx):
        return raster(b, h, q_order[q_idx.clamp(max=nq - 1)], k_order[kv_idx.clamp(max=nk - 1)])

    return mask_mod


__all__ = ["FlexMaskMod", "dense_mask_mod", "raster_mask_mod", "reordered", "token_orders"]
