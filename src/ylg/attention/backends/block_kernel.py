"""The CPU kernel of the block-sparse backend: every bucket of a block schedule in one
autograd function, with its backward written out.

Why by hand: with autograd over the gathers, the backward of the 64x64 ``ylg`` call spent
nearly half its time on full-size ``[B, heads * N, D]`` buffers (a profile is in
``benchmarks/README.md``): a zero fill and an ``index_add_`` for each gather of q, k and v
in each bucket, sums of the buckets' gradients, and a scatter for the output's gather. Here

- the forward writes each bucket's output rows straight into place (``index_copy_``);
- the backward writes dq straight into place too: every ``(head, query)`` row is a valid
  row of exactly one bucket, so dq needs no zero fill, no scatter-add and no sum;
- dk and dv are one zero-filled buffer each, into which every bucket scatter-adds its
  block gradients; rows over all keys (global tokens) add theirs in place with ``baddbmm_``.

The block maths is the usual attention backward: with ``P = softmax(scale q k^T + bias)``
and ``o = P v``, ``dv = P^T do``, ``dS = P * (dP - rowsum(dP * P))`` with ``dP = do v^T``
(softmax's own backward op, which sums in fp32 for bf16), ``dq = scale dS k`` and
``dk = scale dS^T q``. Padding query rows (``q_index == -1``) read a dummy key; their
output gradient is zeroed so they add nothing to dk and dv. No double backward
(``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ylg.attention.block_schedule import BlockSchedule, Bucket


def block_attention(q, k, v, schedule: BlockSchedule, scale: float) -> torch.Tensor:
    """Exact block-sparse attention, q ``[B, h, Nq, D]``, k ``[B, h, Nk, D]``,
    v ``[B, h, Nk, Dv]`` -> ``[B, h, Nq, Dv]``, for schedules whose buckets are all masked
    or all-keys (see :func:`supports`).

    Under CPU autocast, q, k and v are cast to its dtype first and the kernel runs in that
    dtype, as autocast would run the matmuls (the output has that dtype too)."""
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        q, k, v = (t.to(dtype) for t in (q, k, v))
        with torch.autocast("cpu", enabled=False):
            return _BlockAttention.apply(q, k, v, schedule, scale)
    return _BlockAttention.apply(q, k, v, schedule, scale)


def supports(schedule: BlockSchedule, few_queries: int) -> bool:
    """Whether every bucket is small enough to hold its probabilities: masked blocks, or
    unmasked ones of at most ``few_queries`` query rows (a dense head's full ``[Nq, Nk]``
    softmax is left to SDPA's memory-efficient kernel)."""
    return all(bk.mask is not None or bk.mq <= few_queries for bk in schedule.buckets)


# Row gathers and scatters go through the 2-D ``[N, D]`` view of each batch element: on the
# CPU, ``index_select`` and ``index_add_`` along dim 0 of ``[N, D]`` were 2.3x and 2.1-2.6x
# faster in bf16 (2.6x for ``index_add_`` in fp32) than the same call along dim 1 of
# ``[1, N, D]`` (32,768 rows of 64, 1 thread).


def _select_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x.index_select(1, index)`` for ``x [B, N, D]``, one dim-0 call per batch element."""
    out = x.new_empty(x.shape[0], index.numel(), x.shape[2])
    for xb, ob in zip(x, out):
        torch.index_select(xb, 0, index, out=ob)
    return out


def _add_rows(dst: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.index_add_(1, index, src)`` for ``dst [B, N, D]``, one dim-0 call per element."""
    for db, sb in zip(dst, src):
        db.index_add_(0, index, sb)


def _gather_keys(kf, vf, k, v, bk: Bucket):
    """The bucket's keys and values as ``[B * hG, mk, D]`` and ``[B * hG, mk, Dv]``."""
    b, d, dv = kf.shape[0], kf.shape[2], vf.shape[2]
    if bk.all_keys:  # one group per head, in head order: k and v as they are
        return k.reshape(b * bk.groups, bk.mk, d), v.reshape(b * bk.groups, bk.mk, dv)
    kg = _select_rows(kf, bk.k_gather).view(b * bk.groups, bk.mk, d)
    vg = _select_rows(vf, bk.k_gather).view(b * bk.groups, bk.mk, dv)
    return kg, vg


def _probabilities(qg, kg, bk: Bucket, batch: int, scale: float) -> torch.Tensor:
    """``softmax(scale q k^T + bias)`` of one bucket, ``[B * hG, mq, mk]``."""
    if bk.mask is None:
        logits = torch.bmm(qg, kg.transpose(1, 2)).mul_(scale)
    else:
        bias = bk.bias(qg.dtype)  # [hG, mq, mk]
        if batch > 1:
            bias = bias.expand(batch, *bias.shape).reshape(-1, bk.mq, bk.mk)
        logits = torch.baddbmm(bias, qg, kg.transpose(1, 2), alpha=scale)
    return torch.softmax(logits, dim=-1)


def _put_rows(dst, src, bk: Bucket) -> None:
    """Copy a bucket's valid rows (``src [B, hG * mq, D]``) to their ``(head, query)`` rows
    of ``dst [B, h * Nq, D]``."""
    if bk.q_slots is not None:
        src = _select_rows(src, bk.q_slots)
    dst.index_copy_(1, bk.q_rows, src)


class _BlockAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, schedule: BlockSchedule, scale: float):
        b, h, nq, d = q.shape
        nk, dv = k.shape[2], v.shape[3]
        qf, kf, vf = q.reshape(b, h * nq, d), k.reshape(b, h * nk, d), v.reshape(b, h * nk, dv)
        out = q.new_empty(b, h * nq, dv)
        saved = []
        for bk in schedule.buckets:
            qg = _select_rows(qf, bk.q_gather).view(b * bk.groups, bk.mq, d)
            kg, vg = _gather_keys(kf, vf, k, v, bk)
            probs = _probabilities(qg, kg, bk, b, scale)
            o = torch.bmm(probs, vg)  # [B*hG, mq, Dv]
            _put_rows(out, o.view(b, -1, dv), bk)
            saved += [qg, kg, vg, probs]
        ctx.save_for_backward(*saved)
        ctx.schedule, ctx.scale, ctx.shapes = schedule, scale, (q.shape, k.shape, v.shape)
        return out.view(b, h, nq, dv)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (b, h, nq, d), (_, _, nk, _), (_, _, _, dv) = ctx.shapes
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        go_f = grad_out.reshape(b, h * nq, dv)
        saved = ctx.saved_tensors
        dq = grad_out.new_empty(b, h * nq, d) if need_q else None
        dk = grad_out.new_zeros(b, h * nk, d) if need_k else None
        dv_ = grad_out.new_zeros(b, h * nk, dv) if need_v else None
        for i, bk in enumerate(ctx.schedule.buckets):
            qg, kg, vg, probs = saved[4 * i : 4 * i + 4]
            go = _select_rows(go_f, bk.q_gather).view(b * bk.groups, bk.mq, dv)
            if bk.q_slots is not None:  # padding rows: no gradient flows from them
                go.view(b, bk.groups, bk.mq, dv).mul_(bk.q_valid.view(bk.groups, bk.mq, 1))
            if need_v:
                _add_keys(dv_, probs.transpose(1, 2), go, bk, b)
            if not (need_q or need_k):
                continue
            # softmax's backward, P * (dP - rowsum(dP * P)), by the op autograd uses (its
            # row sums accumulate in fp32 for bf16 inputs)
            dp = torch.bmm(go, vg.transpose(1, 2))
            ds = torch.ops.aten._softmax_backward_data(dp, probs, -1, probs.dtype).mul_(ctx.scale)
            del dp, go  # each bucket's [hG, mq, mk] temporaries go before the next one's come
            if need_q:
                _put_rows(dq, torch.bmm(ds, kg).view(b, -1, d), bk)
            if need_k:
                _add_keys(dk, ds.transpose(1, 2), qg, bk, b)
            del ds
        shape = lambda t, n: None if t is None else t.view(b, h, n, t.shape[-1])  # noqa: E731
        return shape(dq, nq), shape(dk, nk), shape(dv_, nk), None, None


def _add_keys(dst, left, right, bk: Bucket, batch: int) -> None:
    """Add ``left @ right`` (a bucket's per-key gradients, ``[B * hG, mk, D]``) to the
    ``(head, key)`` rows of ``dst [B, h * Nk, D]`` they came from."""
    if bk.all_keys:
        dst.view(batch * bk.groups, bk.mk, -1).baddbmm_(left, right)
    else:
        _add_rows(dst, bk.k_gather, torch.bmm(left, right).view(batch, -1, dst.shape[2]))


__all__ = ["block_attention", "supports"]
