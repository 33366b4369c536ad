"""The exact block-sparse backend: gather, dense attention over small blocks, scatter back.

It runs the plan's :attr:`~ylg.attention.plan.AttentionPlan.schedule`
(:mod:`ylg.attention.block_schedule`, built once per plan). Every pattern step of a
:class:`~ylg.attention.HeadLayout` comes with a
:class:`ylg.patterns.BlockLayout`: groups of queries (``q_index [G, mq]``) that share a small
set of keys (``k_index [G, mk]``), with the exact mask between them (``mask [G, mq, mk]``).
For the YLG, strided and no-ESA layouts ``G * mq * mk`` grows as ``N sqrt N``. This backend

1. puts the steps whose blocks have the same shape ``(G, mq, mk)`` into one *bucket* (in the
   ``ylg`` layout: the four step-0 heads, and the four step-1 heads);
2. gathers each bucket's queries, keys and values with one ``index_select`` over the flattened
   ``(head, token)`` axis: ``[B, h' * G, mq, D]`` and ``[B, h' * G, mk, D]``;
3. runs one masked attention per bucket with the small mask ``[h' * G, mq, mk]``: on CUDA
   ``F.scaled_dot_product_attention`` with the boolean mask, on the CPU one ``baddbmm``
   with the mask as an additive bias, a softmax and a ``bmm`` (:func:`_biased_attention`;
   without ``return_attention`` the CPU runs all buckets in :mod:`block_kernel`, one autograd
   function with its backward written out);
4. concatenates the buckets' outputs and gathers every ``(head, query)`` back into place.

Padding queries (``q_index == -1``) get one dummy allowed key so that the softmax has no
all-masked row (no NaN), and their outputs are never gathered back. Heads that see every key
form a bucket of one block without a mask; a layout without block structure (a plain bool
tensor) is a single masked SDPA call, exact but O(N^2).

With ``return_attention=True`` the block softmax is computed explicitly and its probabilities
are scattered into a dense ``[B, heads, Nq, Nk]`` tensor (exactly zero outside the mask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ylg.attention.backends import block_kernel
from ylg.attention.block_schedule import Bucket
from ylg.attention.plan import AttentionPlan

# Unmasked blocks of at most this many queries (global-token rows) run as explicit matmuls:
# CPU SDPA's flash backward over 1 query x 4097 keys (8 heads) took ~9 ms in a profile of
# the 64 x 64 grid, about a tenth of the whole call.
FEW_QUERIES = 16

#: On the CPU, run the buckets through :mod:`block_kernel` (its backward written out) where it
#: applies; False: autograd over the gathers, the path CUDA takes (for A/B benchmarks).
CPU_KERNEL = True


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: AttentionPlan,
    *,
    scale: float,
    return_attention: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Exact masked attention, q ``[B, h, Nq, D]``, k ``[B, h, Nk, D]``, v ``[B, h, Nk, Dv]``
    -> ``[B, h, Nq, Dv]`` (and the dense probabilities when asked)."""
    if not plan.structured:
        return _masked_sdpa(q, k, v, plan.mask, scale, return_attention)
    p = plan.schedule
    if (
        CPU_KERNEL
        and q.device.type == "cpu"
        and not return_attention
        and block_kernel.supports(p, FEW_QUERIES)
    ):
        return block_kernel.block_attention(q, k, v, p, scale), None
    b, h, nq, d = q.shape
    nk, dv = k.shape[2], v.shape[3]
    qf = q.reshape(b, h * nq, d)  # [B, h*Nq, D]
    kf = k.reshape(b, h * nk, d)  # [B, h*Nk, D]
    vf = v.reshape(b, h * nk, dv)  # [B, h*Nk, Dv]
    outs, dense = [], None
    if return_attention:
        dense = q.new_zeros(b, h * nq * nk)  # [B, h*Nq*Nk]
    for bk in p.buckets:
        qg = qf.index_select(1, bk.q_gather).view(b, bk.groups, bk.mq, d)  # [B, hG, mq, D]
        if bk.all_keys:
            kg, vg = k, v  # [B, h, Nk, D], [B, h, Nk, Dv]
        else:
            kg = kf.index_select(1, bk.k_gather).view(b, bk.groups, bk.mk, d)  # [B, hG, mk, D]
            vg = vf.index_select(1, bk.k_gather).view(b, bk.groups, bk.mk, dv)  # [B, hG, mk, Dv]
        if bk.mask is not None and q.device.type == "cpu" and not return_attention:
            o = _biased_attention(qg, kg, vg, bk, scale)
        elif return_attention or (bk.mask is None and bk.mq <= FEW_QUERIES):
            logits = torch.matmul(qg, kg.transpose(-2, -1)) * scale  # [B, hG, mq, mk]
            if bk.mask is not None:
                logits = logits.masked_fill(~bk.mask, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            o = torch.matmul(probs, vg)  # [B, hG, mq, Dv]
            if return_attention:
                dense = _scatter_probs(dense, probs, bk, nq, nk)
        else:
            o = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=bk.mask, scale=scale)
        outs.append(o.reshape(b, bk.groups * bk.mq, dv))
    out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]  # [B, sum hG*mq, Dv]
    out = out.index_select(1, p.inverse).view(b, h, nq, dv)  # [B, h, Nq, Dv]
    return out, (dense.view(b, h, nq, nk) if return_attention else None)


def _biased_attention(qg, kg, vg, bk: Bucket, scale: float) -> torch.Tensor:
    """Masked block attention as ``softmax(scale * q k^T + bias) v`` with batched matmuls
    in the inputs' dtype: ``[B, hG, mq, D]`` -> ``[B, hG, mq, Dv]``.

    Used on the CPU, where SDPA with a boolean mask takes its math path, which upcasts bf16 to
    fp32 and masks with extra passes: at the 64x64 ``ylg`` buckets (256 blocks of 64 x 64 and
    64 x 127) this fused ``baddbmm`` was 2.5-2.9x faster in bf16 and ~1.25x in fp32, fwd+bwd
    (one process, 1 thread)."""
    b, g, mq, d = qg.shape
    mk, dv = kg.shape[2], vg.shape[3]
    bias = bk.bias(qg.dtype)  # [hG, mq, mk]
    if b > 1:
        bias = bias.expand(b, g, mq, mk).reshape(b * g, mq, mk)
    logits = torch.baddbmm(
        bias, qg.reshape(b * g, mq, d), kg.reshape(b * g, mk, d).transpose(1, 2), alpha=scale
    )  # [B*hG, mq, mk]
    probs = torch.softmax(logits, dim=-1)
    return torch.bmm(probs, vg.reshape(b * g, mk, dv)).view(b, g, mq, dv)


def _scatter_probs(dense, probs, bk: Bucket, nq: int, nk: int):
    """Write a bucket's block probabilities into the dense ``[B, h*Nq*Nk]`` tensor."""
    b = probs.shape[0]
    rows = bk.q_gather.view(bk.groups, bk.mq, 1)  # [hG, mq, 1] = head*Nq + q
    cols = bk.k_gather.view(bk.groups, 1, bk.mk)  # [hG, 1, mk] = head*Nk + k
    heads = rows // nq
    linear = rows * nk + (cols - heads * nk)  # [hG, mq, mk] = (head*Nq + q)*Nk + k
    keep = (
        bk.true_mask
        if bk.true_mask is not None
        else bk.q_valid.view(bk.groups, bk.mq, 1).expand(-1, -1, bk.mk)
    )
    index = linear[keep]  # [P]
    return dense.scatter(1, index.expand(b, -1), probs[:, keep])


def _masked_sdpa(q, k, v, masks, scale, return_attention):
    """Layouts without block structure: one dense masked call (exact, O(N^2))."""
    if return_attention:
        logits = torch.matmul(q, k.transpose(-2, -1)) * scale  # [B, h, Nq, Nk]
        probs = torch.softmax(logits.masked_fill(~masks, float("-inf")), dim=-1)
        return torch.matmul(probs, v), probs
    return F.scaled_dot_product_attention(q, k, v, attn_mask=masks, scale=scale), None
