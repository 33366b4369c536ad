"""The block-sparse backend's schedule: which (head, token) rows each bucket gathers.

From the block structure of a :class:`~ylg.attention.HeadLayout` (every head group's
:class:`ylg.patterns.BlockLayout` parts), :func:`schedule_blocks` puts the parts whose blocks
have the same shape ``(G, mq, mk)`` into one :class:`Bucket` (in the ``ylg`` layout: the four
step-0 heads, and the four step-1 heads), flattened over the ``(head, token)`` axis so that
one ``index_select`` gathers a bucket's queries, keys and values; ``inverse`` puts every
``(head, query)`` output back in place. Padding query rows get one dummy allowed key in the
SDPA mask (no all-masked row, no NaN); the exact mask is kept beside it for probabilities.
:mod:`ylg.attention.backends.blocks` runs the schedule; the plan builds it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ylg.attention.layouts import HeadLayout


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
    buckets, offset = [], 0
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
        rows = bucket.q_gather[bucket.q_valid]
        position[rows] = offset + torch.nonzero(bucket.q_valid).squeeze(1)
        offset += bucket.q_valid.numel()
        buckets.append(bucket)
    return BlockSchedule(tuple(buckets), position)


__all__ = ["BlockSchedule", "Bucket", "schedule_blocks"]
