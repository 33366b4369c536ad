"""The FlexAttention backend: PyTorch's ``flex_attention`` with a block mask (for CUDA).

FlexAttention skips 128 x 128 tiles whose mask is all False. In raster order the YLG masks
touch almost every tile, so the tokens are first put in the order of the pattern's curve
(the plan's ``flex_orders``, :mod:`ylg.attention.flex_rules`), where RTL / LTR step 0 is
block-diagonal and step 1 a few columns plus the diagonal; the outputs are put back in raster
order afterwards. The block mask is the plan's
(:meth:`ylg.attention.plan.AttentionPlan.block_mask`): each head's pattern rule
(:func:`ylg.patterns.mask_mod`) evaluated on those positions, so no dense ``[Nq, Nk]`` mask
is built; plans without a grid spec (plain bool tensors, hand-made
layouts) keep raster order and index their dense mask instead.

Notes:

- On CUDA ``flex_attention`` is compiled with ``torch.compile`` (once per shape); head
  dimensions are zero-padded to at least 16 (zeros do not change ``q k^T``) and ``v``'s padding
  is dropped from the output.
- On CPU it runs eagerly, forward only: PyTorch's eager FlexAttention does not run the
  backward pass there. ``auto`` never picks it on CPU; it exists on CPU for testing.
- ``return_attention=True`` is served by the ``blocks`` backend
  (:func:`ylg.attention.functional.run_plan`; FlexAttention does not return the
  probabilities).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ylg.attention.plan import AttentionPlan


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


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: AttentionPlan,
    *,
    scale: float,
    return_attention: bool = False,
) -> tuple[torch.Tensor, None]:
    """``flex_attention`` over the tokens ``q[:, :, q_order]``, ``k[:, :, k_order]`` with the
    plan's block mask, the output put back in raster order. No probabilities:
    ``return_attention=True`` is refused (the caller runs ``blocks`` for them)."""
    from torch.nn.attention.flex_attention import flex_attention

    if return_attention:
        raise ValueError("the flex backend returns no attention probabilities; use blocks")
    q_order, k_order = plan.flex_orders
    q_inverse, block_mask = plan.q_inverse, plan.block_mask()

    d, dv = q.shape[-1], v.shape[-1]
    dp, dvp = max(16, d), max(16, dv)
    qr = F.pad(q.index_select(2, q_order), (0, dp - d))  # [B, h, Nq, dp], curve order
    kr = F.pad(k.index_select(2, k_order), (0, dp - d))  # [B, h, Nk, dp]
    vr = F.pad(v.index_select(2, k_order), (0, dvp - dv))  # [B, h, Nk, dvp]
    fn = _compiled() if q.device.type == "cuda" else flex_attention
    out = fn(qr, kr, vr, block_mask=block_mask, scale=scale)  # [B, h, Nq, dvp]
    return out[..., :dv].index_select(2, q_inverse), None  # [B, h, Nq, Dv], raster order
