"""The FlexAttention backend: PyTorch's ``flex_attention`` with a block mask (for CUDA).

FlexAttention skips 128 x 128 tiles whose mask is all False. In raster order the YLG masks
touch almost every tile, so the tokens are first put in the order of the layout's curve
(queries by the curve position of their mask row, keys by their own curve position), where
RTL / LTR step 0 is block-diagonal and step 1 a few columns plus the diagonal (for those
patterns the summary keys, the first and last cell of every block, are moved to the end so
that step 1 reads one short run of keys, not one key in every tile); the outputs
are put back in raster order afterwards. The mask of each head is its pattern rule
(:func:`ylg.patterns.mask_mod`) evaluated on those positions, so no dense ``[Nq, Nk]`` mask is
built; layouts without a pattern (plain bool tensors) index their dense mask instead.

Notes:

- On CUDA ``flex_attention`` is compiled with ``torch.compile`` (once per shape); head
  dimensions are zero-padded to at least 16 (zeros do not change ``q k^T``) and ``v``'s padding
  is dropped from the output.
- On CPU it runs eagerly, forward only: PyTorch's eager FlexAttention does not run the
  backward pass there. ``auto`` never picks it on CPU; it exists on CPU for testing.
- ``return_attention=True`` is delegated to the ``blocks`` backend (FlexAttention does not
  return the probabilities).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ylg import patterns
from ylg.attention.heads import FULL
from ylg.attention.layouts import HeadLayout


def available(device: torch.device) -> bool:
    """Whether FlexAttention can run (with autograd) on ``device``."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:  # pragma: no cover - torch < 2.5
        return False
    return device.type == "cuda"


@functools.cache
def _compiled():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _orders(layout: HeadLayout):
    """(query order [Nq], key order [Nk], query positions [Nq], key positions [Nk]), where
    ``order[i]`` is the raster index of the i-th token and the positions are curve positions
    of each *reordered* token's mask row / key."""
    device = layout.device
    info = layout.pattern
    if info is None:
        q_order = torch.arange(layout.num_queries, device=device)
        k_order = torch.arange(layout.num_keys, device=device)
        return q_order, k_order, None, None
    key_grid, query_grid = layout.key_grid, layout.query_grid
    row_pos = patterns.positions(*key_grid, curve=info.curve)  # [Nk]
    rows = patterns.query_rows(key_grid, query_grid, info.query_layout)  # [Nq]
    qpos = row_pos[rows]  # [Nq] curve position of each raster query's mask row
    q_order = torch.argsort(qpos, stable=True)
    n = layout.num_keys
    position = torch.arange(n)  # curve positions
    names = {spec[0] for spec in info.specs if spec != FULL}
    if names and names <= {"ltr", "rtl", "fixed"}:
        # Summary keys (first / last cell of each block) last, the rest in curve order: step 0
        # stays near the diagonal and step 1 reads one short run of keys plus the diagonal,
        # instead of one key in every 128-key tile.
        stride = info.stride or math.isqrt(n)
        offset = position % stride
        summary = (offset == 0) | (offset == stride - 1) | (position == n - 1)
        kpos = position[torch.argsort(summary.long() * n + position)]  # [Nk]
    else:
        kpos = position
    curve_order = patterns.enumerate_grid(*key_grid, curve=info.curve)  # position -> raster
    return (
        q_order.to(device),
        curve_order[kpos].to(device),  # raster index of the i-th key
        qpos[q_order].to(device),  # [Nq] non-decreasing
        kpos.to(device),  # curve position of the i-th key
    )


def _mask_mod(layout: HeadLayout, qpos, kpos, q_order, k_order):
    """A FlexAttention ``mask_mod(b, h, q, k)`` over reordered tokens."""
    info = layout.pattern
    if info is None:
        dense = layout.masks  # [h, Nq, Nk], raster order = the identity order here

        def from_dense(b, h, q, k):
            return dense[h, q, k]

        return from_dense
    n = layout.num_keys
    rules = []
    for spec in sorted(set(info.specs), key=str):
        heads = torch.tensor(
            [h == spec for h in info.specs], dtype=torch.bool, device=layout.device
        )  # [heads]
        rule = None if spec == FULL else patterns.mask_mod(spec[0], spec[1], n, info.stride)
        rules.append((heads, rule))

    def from_rules(b, h, q, k):
        allowed = None
        for heads, rule in rules:
            term = heads[h] if rule is None else heads[h] & rule(qpos[q], kpos[k])
            allowed = term if allowed is None else allowed | term
        return allowed

    return from_rules


def _prepare(layout: HeadLayout):
    cached = layout.cache.get("flex")
    if cached is not None:
        return cached
    from torch.nn.attention.flex_attention import create_block_mask

    q_order, k_order, qpos, kpos = _orders(layout)
    mask_mod = _mask_mod(layout, qpos, kpos, q_order, k_order)
    block_mask = create_block_mask(
        mask_mod,
        B=None,
        H=layout.num_heads,
        Q_LEN=layout.num_queries,
        KV_LEN=layout.num_keys,
        device=layout.device,
    )
    q_inverse = torch.empty_like(q_order)
    q_inverse[q_order] = torch.arange(q_order.numel(), device=q_order.device)
    result = (q_order, k_order, q_inverse, block_mask)
    layout.cache["flex"] = result
    return result


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: HeadLayout,
    *,
    scale: float,
    return_attention: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """FlexAttention with the layout's block mask; see the module docstring."""
    if return_attention:
        from ylg.attention.backends import blocks

        return blocks.attention(q, k, v, layout, scale=scale, return_attention=True)
    return run(q, k, v, *_prepare(layout), scale=scale), None


def run(q, k, v, q_order, k_order, q_inverse, block_mask, *, scale: float) -> torch.Tensor:
    """``flex_attention`` over the tokens ``q[:, :, q_order]``, ``k[:, :, k_order]`` with
    ``block_mask``, the output put back in raster order (``q_inverse = argsort(q_order)``)."""
    from torch.nn.attention.flex_attention import flex_attention

    d, dv = q.shape[-1], v.shape[-1]
    dp, dvp = max(16, d), max(16, dv)
    qr = F.pad(q.index_select(2, q_order), (0, dp - d))  # [B, h, Nq, dp], curve order
    kr = F.pad(k.index_select(2, k_order), (0, dp - d))  # [B, h, Nk, dp]
    vr = F.pad(v.index_select(2, k_order), (0, dvp - dv))  # [B, h, Nk, dvp]
    fn = _compiled() if q.device.type == "cuda" else flex_attention
    out = fn(qr, kr, vr, block_mask=block_mask, scale=scale)  # [B, h, Nq, dvp]
    return out[..., :dv].index_select(2, q_inverse)  # [B, h, Nq, Dv], raster order
