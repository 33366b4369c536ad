"""The reference backend: dense logits, masked softmax. Obviously correct, O(N^2) memory.

Every other backend is tested against this one. Half-precision inputs are computed in float32
and the output cast back; float32 and float64 stay as they are. It reads the plan's dense mask
(:attr:`ylg.attention.plan.AttentionPlan.mask`), none when every head sees every key.
"""

from __future__ import annotations

import torch

from ylg.attention.plan import AttentionPlan


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: AttentionPlan,
    *,
    scale: float,
    return_attention: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``softmax(q k^T * scale, masked) v`` with q ``[B, h, Nq, D]``, k ``[B, h, Nk, D]``,
    v ``[B, h, Nk, Dv]``; returns the output ``[B, h, Nq, Dv]`` and, when asked, the
    probabilities ``[B, h, Nq, Nk]`` (exactly zero outside the mask)."""
    dtype = q.dtype
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = q.to(compute), k.to(compute), v.to(compute)
    logits = torch.matmul(q, k.transpose(-2, -1)) * scale  # [B, h, Nq, Nk]
    if not plan.full:
        mask = plan.mask.to(logits.device)  # [h, Nq, Nk]
        logits = logits.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # [B, h, Nq, Nk]; exp(-inf) = 0 exactly
    out = torch.matmul(probs, v)  # [B, h, Nq, Dv]
    return out.to(dtype), (probs.to(dtype) if return_attention else None)
