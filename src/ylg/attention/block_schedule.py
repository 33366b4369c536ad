"""The block-sparse backend's schedule: which (head, token) rows each bucket gathers.

From the block structure of a :class:`~ylg.attention.HeadLayout` (every head group's
:class:`ylg.patterns.BlockLayout` parts), :func:`schedule_blocks` puts the parts whose blocks
have the same shape ``(G, mq, mk)`` into one :class:`Bucket` (in the ``ylg`` layout: the four
step-0 heads, and the four step-1 heads), flattened over the ``(head, token)`` axis so that
one ``index_select`` gathers a bucket's queries, keys and values; ``inverse`` puts every
``(head, query)`` output back in place. Padding query rows get one dummy allowed key in the
SDPA mask (no all-masked row, no NaN); the exact mask is kept beside it for probabilities.
:class:`KeyGather` says how the CPU kernel assembles the key and value gradients by gathers
where it can.
:mod:`ylg.attention.backends.blocks` runs the schedule; the plan builds it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ylg.attention.layouts import HeadLayout


@dataclass(frozen=True)
class KeyGather:
    """How the CPU kernel assembles dk and dv by gathers instead of scatter-adds.

    Every masked bucket writes its per-row key gradients (``[hG * mk, D]``: one row per key it
    gathered, padding keys included) into one concatenation, at ``offsets[i]`` for bucket
    ``i`` (None for buckets over all keys, which add theirs in place afterwards). Then the
    ``(head, key)`` row ``r`` of dk is the concatenation's row ``source[r]``; for each
    multiplicity ``m`` of the keys gathered more than once, ``(slots [n, m], rows [n])``:
    the ``m`` rows of each such key, summed, replace that row. Padding keys' rows (exact
    zeros) are never read. Why: ``index_add_`` on the CPU ran on one thread at any thread
    count, and ``index_copy_`` barely faster, where ``index_select`` scales (profile in
    benchmarks/README.md)."""

    offsets: tuple[int | None, ...]
    total: int  # rows of the concatenation
    source: torch.Tensor  # [heads * Nk]
    sums: tuple[tuple[torch.Tensor, torch.Tensor], ...]


# More distinct multiplicities than this (each costs a gather, a sum and a copy) keep the
# scatter-add path.
MAX_MULTIPLICITIES = 8


def key_gather(k_gathers: list, valids: list, num_rows: int) -> KeyGather | None:
    """The :class:`KeyGather` of the masked buckets' ``k_gather`` rows (``None`` entries: a
    bucket over all keys), ``valids`` marking the real (not padding) keys; None where some of
    the ``num_rows`` rows is gathered by no bucket or there are too many multiplicities."""
    offsets, slots, dests, total = [], [], [], 0
    for k_gather, valid in zip(k_gathers, valids):
        if k_gather is None:
            offsets.append(None)
            continue
        offsets.append(total)
        slots.append(total + torch.nonzero(valid).squeeze(1))
        dests.append(k_gather[valid])
        total += k_gather.numel()
    if not dests:
        return None
    slots, dests = torch.cat(slots), torch.cat(dests)
    mult = torch.bincount(dests, minlength=num_rows)
    many = torch.unique(mult[mult > 1])
    if bool((mult == 0).any()) or many.numel() > MAX_MULTIPLICITIES:
        return None
    order = torch.argsort(dests, stable=True)  # the slots of each row together, rows ascending
    source = torch.empty(num_rows, dtype=torch.long, device=dests.device)
    source[dests] = slots  # one of each row's slots (the sums below replace repeated rows)
    sums = []
    starts = torch.cumsum(mult, 0) - mult  # where each row's slots start in `order`
    for m in many.tolist():
        rows = torch.nonzero(mult == m).squeeze(1)
        at = starts[rows][:, None] + torch.arange(m, device=rows.device)  # [n, m] in `order`
        sums.append((slots[order[at]], rows))
    return KeyGather(tuple(offsets), total, source, tuple(sums))


@dataclass(frozen=True)
class Bucket:
    """Heads whose blocks share one shape, flattened over (head, group)."""

    q_gather: torch.Tensor  # [hG * mq] indices into the (head, query) axis
    k_gather: torch.Tensor  # [hG * mk] indices into the (head, key) axis
    mask: torch.Tensor | None  # [hG, mq, mk] for SDPA (padding rows fixed); None = all keys
    true_mask: torch.Tensor | None  # [hG, mq, mk], the exact mask (False on padding)
    q_valid: torch.Tensor  # [hG * mq] bool, False on padding queries
    groups: int  # hG
    mq: int
    mk: int
    all_keys: bool = False  # group i reads every key of head i, in order (no gather needed)
    _biases: dict = field(default_factory=dict, compare=False, repr=False)
    q_rows: torch.Tensor = field(init=False, repr=False)  # q_gather of the valid rows
    q_slots: torch.Tensor | None = field(init=False, repr=False)  # their places; None: all

    def __post_init__(self):
        padded = not bool(self.q_valid.all())
        slots = torch.nonzero(self.q_valid).squeeze(1) if padded else None
        object.__setattr__(self, "q_slots", slots)
        object.__setattr__(self, "q_rows", self.q_gather[self.q_valid] if padded else self.q_gather)

    def bias(self, dtype: torch.dtype) -> torch.Tensor:
        """``mask`` as an additive bias ``[hG, mq, mk]`` of ``dtype`` (0 where allowed, -inf
        elsewhere), built once per dtype: what the explicit CPU path adds to the logits."""
        if dtype not in self._biases:
            zeros = torch.zeros(self.mask.shape, dtype=dtype, device=self.mask.device)
            self._biases[dtype] = zeros.masked_fill(~self.mask, float("-inf"))
        return self._biases[dtype]


@dataclass(frozen=True)
class BlockSchedule:
    """The gather / scatter of a structured layout: its buckets, and where each output goes."""

    buckets: tuple[Bucket, ...]
    inverse: torch.Tensor  # [heads * Nq]: where each (head, query) sits in the concatenation
    keys: KeyGather | None = None  # dk and dv by gathers; None: scatter-adds


def schedule_blocks(layout: HeadLayout) -> BlockSchedule:
    """The gather / scatter indices of a structured layout (built once per plan:
    :attr:`ylg.attention.plan.AttentionPlan.schedule`)."""
    nq, nk = layout.num_queries, layout.num_keys
    device = layout.device
    shapes: dict[tuple, list] = {}
    for group in layout.groups:
        for b in group.parts or (None,):
            shape = ("full",) if b is None else tuple(b.mask.shape)
            for head in group.heads:
                shapes.setdefault(shape, []).append((head, b))
    buckets, key_valid, offset = [], [], 0
    position = torch.empty(layout.num_heads * nq, dtype=torch.long, device=device)
    for shape, members in shapes.items():
        if shape != ("full",) and shape[2] == nk:
            members.sort(key=lambda m: m[0])  # by head: see all_keys below
        if shape == ("full",):
            heads = torch.tensor([h for h, _ in members], device=device)
            q_gather = (heads[:, None] * nq + torch.arange(nq, device=device)).reshape(-1)
            k_gather = (heads[:, None] * nk + torch.arange(nk, device=device)).reshape(-1)
            valid = torch.ones(len(members) * nq, dtype=torch.bool, device=device)
            bucket = Bucket(q_gather, k_gather, None, None, valid, len(members), nq, nk)
            key_valid.append(None)
        else:
            q_idx, k_idx, masks = [], [], []
            for head, b in members:
                q_idx.append(torch.where(b.q_index >= 0, head * nq + b.q_index, -1))
                k_idx.append(head * nk + b.k_index.clamp(min=0))
                masks.append(b.mask)
            q_idx = torch.cat(q_idx)  # [hG, mq]
            true_mask = torch.cat(masks)  # [hG, mq, mk]
            # Padding query rows are all False: allow their first key so SDPA stays finite.
            empty = ~true_mask.any(dim=-1)  # [hG, mq]
            mask = true_mask.clone()
            mask[..., 0] |= empty
            valid = (q_idx >= 0).reshape(-1)
            dims = tuple(true_mask.shape)  # (hG, mq, mk)
            if bool(true_mask.all()):  # e.g. global-token rows: unmasked (fused) SDPA
                mask = true_mask = None
            k_gather = torch.cat(k_idx).reshape(-1)
            # Parts over all keys (global-token rows), one group per head in head order: read
            # k and v as they are instead of gathering (and scattering back) a copy of them.
            all_keys = (
                dims[0] == layout.num_heads
                and dims[2] == nk
                and bool(torch.equal(k_gather, torch.arange(k_gather.numel(), device=device)))
            )
            bucket = Bucket(
                q_idx.clamp(min=0).reshape(-1), k_gather, mask, true_mask, valid, *dims, all_keys
            )
            key_valid.append(None if all_keys else torch.cat([b.k_index for _, b in members]) >= 0)
        rows = bucket.q_gather[bucket.q_valid]
        position[rows] = offset + torch.nonzero(bucket.q_valid).squeeze(1)
        offset += bucket.q_valid.numel()
        buckets.append(bucket)
    k_gathers = [None if v is None else b.k_gather for b, v in zip(buckets, key_valid)]
    valids = [None if v is None else v.reshape(-1) for v in key_valid]
    keys = key_gather(k_gathers, valids, layout.num_heads * nk)
    return BlockSchedule(tuple(buckets), position, keys)


__all__ = ["BlockSchedule", "Bucket", "KeyGather", "key_gather", "schedule_blocks"]
