"""The CPU kernel of the block-sparse backend: every bucket of a block schedule in one
autograd function, with its backward written out.

Why by hand: with autograd over the gathers, the backward of the 64x64 ``ylg`` call spent
nearly half its time on full-size ``[B, heads * N, D]`` buffers (a profile is in
``benchmarks/README.md``): a zero fill and an ``index_add_`` for each gather of q, k and v
in each bucket, sums of the buckets' gradients, and a scatter for the output's gather. Here
every bucket writes its rows (outputs; dq, dk and dv rows) into one concatenation per
tensor, straight from its matmul, and the results are gathered from it:

- outputs and dq: every ``(head, query)`` row is a valid row of exactly one bucket, so one
  ``index_select`` with the schedule's ``inverse`` puts them in place;
- dk and dv (:class:`~ylg.attention.block_schedule.KeyGather`): one ``index_select`` gives
  each ``(head, key)`` row one of its rows; the keys that buckets gathered several times
  get the sum of theirs. Rows over all keys (global tokens) add theirs afterwards with
  ``baddbmm_``. Where the schedule has no ``KeyGather`` (a key gathered by no masked bucket,
  too many multiplicities), dk and dv are zero-filled and scatter-added (``index_add_``).

Gathers rather than scatters because on the CPU ``index_add_`` did not get faster with a
second thread and ``index_copy_`` barely, where ``index_select`` scales (profile in
benchmarks/README.md). ``GATHER_ROWS = False`` gives the scatter version (outputs and dq by
``index_copy_``, dk and dv by ``index_add_``) for A/B timing.

The block maths is the usual attention backward: with ``P = softmax(scale q k^T + bias)``
and ``o = P v``, ``dv = P^T do``, ``dS = P * (dP - rowsum(dP * P))`` with ``dP = do v^T``
(softmax's own backward op, which sums in fp32 for bf16), ``dq = scale dS k`` and
``dk = scale dS^T q``. Padding query rows (``q_index == -1``) read a dummy key; their
output gradient is zeroed so they add nothing to dk and dv, and their rows are never
gathered. No double backward (``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ylg.attention.block_schedule import BlockSchedule, Bucket

# False: scatter each bucket's rows into place instead (what the kernel did before the
# gathers; kept for A/B timing in benchmarks/blocks_interleaved.py)
GATHER_ROWS = True
# False: logits at their width in bf16 too (see _width; kept for A/B timing)
PAD_WIDTH = True


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


def _width(bk: Bucket, dtype: torch.dtype) -> int:
    """The width of a masked bucket's logits: ``mk``, or in bf16 / fp16 the next multiple of
    32 where that adds at most ``mk / 8`` columns (127 -> 128). PyTorch's reduced-precision
    CPU softmax handles a row's last ``mk % 32`` elements slowly: over ``[256, 64, 127]`` in
    bf16 it took 6.6 ms against 2.6 ms at width 128 (1 thread; benchmarks/README.md). The
    extra columns hold -inf logits, so their probabilities are exactly 0."""
    if not (PAD_WIDTH and dtype in (torch.bfloat16, torch.float16)) or bk.mask is None:
        return bk.mk
    width = -(-bk.mk // 32) * 32
    return width if 8 * (width - bk.mk) <= bk.mk else bk.mk


def _probabilities(qg, kg, bk: Bucket, batch: int, scale: float) -> torch.Tensor:
    """``softmax(scale q k^T + bias)`` of one bucket, ``[B * hG, mq, w]`` with ``w`` from
    :func:`_width` (the first ``mk`` columns are the keys')."""
    if bk.mask is None:
        logits = torch.bmm(qg, kg.transpose(1, 2)).mul_(scale)
        return torch.softmax(logits, dim=-1)
    bias = bk.bias(qg.dtype)  # [hG, mq, mk]
    if batch > 1:
        bias = bias.expand(batch, *bias.shape).reshape(-1, bk.mq, bk.mk)
    width = _width(bk, qg.dtype)
    if width == bk.mk:
        return torch.softmax(torch.baddbmm(bias, qg, kg.transpose(1, 2), alpha=scale), dim=-1)
    logits = qg.new_empty(qg.shape[0], bk.mq, width)
    torch.baddbmm(bias, qg, kg.transpose(1, 2), alpha=scale, out=logits[..., : bk.mk])
    logits[..., bk.mk :] = float("-inf")
    return torch.softmax(logits, dim=-1)


def _put_rows(dst, src, bk: Bucket) -> None:
    """Copy a bucket's valid rows (``src [B, hG * mq, D]``) to their ``(head, query)`` rows
    of ``dst [B, h * Nq, D]`` (the scatter version)."""
    if bk.q_slots is not None:
        src = _select_rows(src, bk.q_slots)
    dst.index_copy_(1, bk.q_rows, src)


def _bmm_into(cat, offset: int, left, right, batch: int) -> None:
    """``left @ right`` (``[B * G, m, n] @ [B * G, n, D]``) as rows ``offset..`` of
    ``cat [B, total, D]`` (straight from the matmul when B = 1)."""
    rows = left.shape[0] // batch * left.shape[1]
    dst = cat[:, offset : offset + rows]
    if batch == 1:
        torch.bmm(left, right, out=dst[0].view(left.shape[0], left.shape[1], -1))
    else:
        dst.copy_(torch.bmm(left, right).view(batch, rows, -1))


def _offsets(buckets) -> list[int]:
    """Where each bucket's query rows (padding included) start in the concatenation that the
    schedule's ``inverse`` indexes."""
    out, total = [], 0
    for bk in buckets:
        out.append(total)
        total += bk.q_valid.numel()
    return out


class _Rows:
    """Where a bucket's rows of one output tensor go: into a concatenation that is gathered
    at the end, or (scatter version) straight into place."""

    def __init__(self, like, batch: int, width: int, schedule: BlockSchedule, gather: bool):
        self.batch, self.schedule, self.gather = batch, schedule, gather
        total = sum(bk.q_valid.numel() for bk in schedule.buckets)
        rows = schedule.inverse.numel()
        self.buf = like.new_empty(batch, total if gather else rows, width)
        self.offsets = _offsets(schedule.buckets)

    def put(self, i: int, left, right) -> None:
        """Rows of bucket ``i``: ``left @ right``."""
        bk = self.schedule.buckets[i]
        if self.gather:
            _bmm_into(self.buf, self.offsets[i], left, right, self.batch)
        else:
            _put_rows(self.buf, torch.bmm(left, right).view(self.batch, -1, self.buf.shape[2]), bk)

    def result(self) -> torch.Tensor:
        return _select_rows(self.buf, self.schedule.inverse) if self.gather else self.buf


class _KeyRows:
    """dk or dv: the buckets' per-key rows into a concatenation gathered by the schedule's
    :class:`~ylg.attention.block_schedule.KeyGather`, or scatter-added into zeros; rows over
    all keys are added last, in place."""

    def __init__(self, like, batch: int, rows: int, width: int, schedule: BlockSchedule):
        self.batch, self.keys, self.rows = batch, schedule.keys if GATHER_ROWS else None, rows
        total = self.keys.total if self.keys is not None else rows
        self.buf = (like.new_empty if self.keys is not None else like.new_zeros)(
            batch, total, width
        )
        self.later = []

    def add(self, bk: Bucket, i: int, left, right) -> None:
        """Add ``left @ right`` (bucket ``i``'s per-key gradients, ``[B * hG, mk, D]``)."""
        if bk.all_keys:
            self.later.append((bk, left, right))
        elif self.keys is not None:
            _bmm_into(self.buf, self.keys.offsets[i], left, right, self.batch)
        else:
            src = torch.bmm(left, right).view(self.batch, -1, self.buf.shape[2])
            _add_rows(self.buf, bk.k_gather, src)

    def result(self) -> torch.Tensor:
        out = self.buf
        if self.keys is not None:
            out = _select_rows(self.buf, self.keys.source)
            for ob, cb in zip(out, self.buf):
                for slots, rows in self.keys.sums:  # keys gathered m times: their rows summed
                    summed = torch.index_select(cb, 0, slots.view(-1)).view(*slots.shape, -1)
                    ob.index_copy_(0, rows, summed.sum(1))
        for bk, left, right in self.later:
            out.view(self.batch * bk.groups, bk.mk, -1).baddbmm_(left, right)
        return out


class _BlockAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, schedule: BlockSchedule, scale: float):
        b, h, nq, d = q.shape
        nk, dv = k.shape[2], v.shape[3]
        qf, kf, vf = q.reshape(b, h * nq, d), k.reshape(b, h * nk, d), v.reshape(b, h * nk, dv)
        out = _Rows(q, b, dv, schedule, GATHER_ROWS)
        saved = []
        for i, bk in enumerate(schedule.buckets):
            qg = _select_rows(qf, bk.q_gather).view(b * bk.groups, bk.mq, d)
            kg, vg = _gather_keys(kf, vf, k, v, bk)
            probs = _probabilities(qg, kg, bk, b, scale)  # [B*hG, mq, w], w >= mk
            out.put(i, probs[..., : bk.mk], vg)  # [B*hG, mq, Dv] rows
            saved += [qg, kg, vg, probs]
        ctx.save_for_backward(*saved)
        ctx.schedule, ctx.scale, ctx.shapes = schedule, scale, (q.shape, k.shape, v.shape)
        return out.result().view(b, h, nq, dv)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (b, h, nq, d), (_, _, nk, _), (_, _, _, dv) = ctx.shapes
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        go_f = grad_out.reshape(b, h * nq, dv)
        saved, schedule = ctx.saved_tensors, ctx.schedule
        dq = _Rows(grad_out, b, d, schedule, GATHER_ROWS) if need_q else None
        dk = _KeyRows(grad_out, b, h * nk, d, schedule) if need_k else None
        dv_ = _KeyRows(grad_out, b, h * nk, dv, schedule) if need_v else None
        for i, bk in enumerate(schedule.buckets):
            qg, kg, vg, probs = saved[4 * i : 4 * i + 4]
            go = _select_rows(go_f, bk.q_gather).view(b * bk.groups, bk.mq, dv)
            if bk.q_slots is not None:  # padding rows: no gradient flows from them
                go.view(b, bk.groups, bk.mq, dv).mul_(bk.q_valid.view(bk.groups, bk.mq, 1))
            if need_v:
                dv_.add(bk, i, probs[..., : bk.mk].transpose(1, 2), go)
            if not (need_q or need_k):
                continue
            # softmax's backward, P * (dP - rowsum(dP * P)), by the op autograd uses (its
            # row sums accumulate in fp32 for bf16 inputs)
            dp = go.new_empty(probs.shape)
            dp[..., bk.mk :] = 0  # padding columns (see _width)
            torch.bmm(go, vg.transpose(1, 2), out=dp[..., : bk.mk])
            ds = torch.ops.aten._softmax_backward_data(dp, probs, -1, probs.dtype).mul_(ctx.scale)
            ds = ds[..., : bk.mk]
            del dp  # each bucket's [hG, mq, mk] temporaries go before the next one's come
            if need_q:
                dq.put(i, ds, kg)
            if need_k:
                dk.add(bk, i, ds.transpose(1, 2), qg)
            del ds, go
        shape = lambda t, n: None if t is None else t.result().view(b, h, n, -1)  # noqa: E731
        return shape(dq, nq), shape(dk, nk), shape(dv_, nk), None, None


__all__ = ["block_attention", "supports"]
