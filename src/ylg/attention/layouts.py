"""Head layouts: which keys each attention head's queries may see, with the block structure.

A :class:`HeadLayout` is what :func:`ylg.attention.masked_attention` takes as ``masks`` when
the caller knows the sparsity structure. It groups the heads that share one mask, keeps the
block structure of each group (a :class:`ylg.patterns.BlockLayout`: gather, dense attention
over small blocks, scatter back) for the fast backend, and materialises the dense
``[heads, Nq, Nk]`` boolean masks only when asked (``masks``). A plain boolean tensor is
accepted too (:meth:`HeadLayout.from_masks`); it has no block structure.

A layout is data: what the heads may see. What the backends read is the
:class:`ylg.attention.plan.AttentionPlan` around it (its dense mask, the block backend's
gather indices, FlexAttention's token orders and block mask). The layouts of grid patterns
are built by the plan (:func:`ylg.attention.build_layout`, :func:`ylg.attention.grid.grid_layout`)
and carry their :class:`~ylg.attention.grid_spec.GridSpec`, so a layout passed back to
``masked_attention`` finds the same cached plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ylg import patterns
from ylg.attention.grid_spec import GridSpec


@dataclass(frozen=True, eq=False)
class HeadGroup:
    """Heads that share one mask; ``blocks`` is its block structure, ``None`` = every key.

    ``blocks`` may also be a tuple of block layouts of different shapes (*parts*) that
    together list every query once: global-token rows over all keys beside the grid rows'
    blocks (:func:`ylg.attention.grid_attention`), each part one bucket of the backend.
    """

    heads: tuple[int, ...]
    blocks: patterns.BlockLayout | tuple[patterns.BlockLayout, ...] | None

    @property
    def parts(self) -> tuple[patterns.BlockLayout, ...]:
        """The block layouts of the group (``()`` when its heads see every key)."""
        if self.blocks is None:
            return ()
        return self.blocks if isinstance(self.blocks, tuple) else (self.blocks,)

    def to(self, device) -> HeadGroup:
        if self.blocks is None:
            return self
        parts = tuple(b.to(device) for b in self.parts)
        return HeadGroup(self.heads, parts if isinstance(self.blocks, tuple) else parts[0])


class HeadLayout:
    """The masks of every head of an attention call, with their block structure when known.

    ``groups`` partitions the heads; each :class:`HeadGroup` has the block structure of its
    mask (or ``None``: the heads see every key). ``masks`` gives the dense ``[heads, Nq, Nk]``
    tensor, built on first use and cached. Layouts made from a plain tensor have
    ``groups = None``. ``spec``: the :class:`~ylg.attention.grid_spec.GridSpec` of the grid
    pattern it was built from (``None`` for hand-made layouts and plain tensors).
    """

    def __init__(
        self,
        num_heads: int,
        num_queries: int,
        num_keys: int,
        *,
        groups: tuple[HeadGroup, ...] | None = None,
        masks: torch.Tensor | None = None,
        query_grid: tuple[int, int] | None = None,
        key_grid: tuple[int, int] | None = None,
        spec: GridSpec | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if (groups is None) == (masks is None):
            raise ValueError("HeadLayout needs exactly one of groups= and masks=")
        self.num_heads = num_heads
        self.num_queries = num_queries
        self.num_keys = num_keys
        self.groups = groups
        self.query_grid = query_grid
        self.key_grid = key_grid
        self.spec = spec
        self._masks = masks
        # The plan of a layout without a spec, memoised by ylg.attention.plan.layout_plan.
        self._plan = None
        if device is None:
            device = masks.device if masks is not None else _groups_device(groups)
        self.device = torch.device(device)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_masks(cls, masks: torch.Tensor) -> HeadLayout:
        """Wrap a bool tensor ``[heads, Nq, Nk]``; raises ``ValueError`` on an all-False row."""
        if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or masks.dim() != 3:
            shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks)
            raise ValueError(f"masks must be a bool tensor [heads, Nq, Nk], got {shape}")
        layout = cls(*masks.shape, masks=masks)
        layout.validate()
        return layout

    # ------------------------------------------------------------------ properties
    @property
    def structured(self) -> bool:
        """True when the block structure of every head is known."""
        return self.groups is not None

    @property
    def full(self) -> bool:
        """True when every head sees every key (plain dense attention)."""
        return self.groups is not None and all(g.blocks is None for g in self.groups)

    @property
    def masks(self) -> torch.Tensor:
        """Dense boolean masks ``[heads, Nq, Nk]`` (built once from the blocks, then cached)."""
        if self._masks is None:
            dense = torch.zeros(
                self.num_heads,
                self.num_queries,
                self.num_keys,
                dtype=torch.bool,
                device=self.device,
            )  # [heads, Nq, Nk]
            for group in self.groups:
                m = True
                for b in group.parts:
                    part = b.to("cpu").dense().to(self.device)
                    m = part if m is True else m | part
                dense[list(group.heads)] = m
            self._masks = dense
        return self._masks

    def to(self, device: torch.device | str) -> HeadLayout:
        """A copy whose tensors live on ``device`` (``self`` when they already do)."""
        device = torch.device(device)
        if self.device == device or (device.type == self.device.type and device.index is None):
            return self
        groups = None
        if self.groups is not None:
            groups = tuple(g.to(device) for g in self.groups)
        masks = None if self._masks is None else self._masks.to(device)
        if groups is not None:
            out = HeadLayout(
                self.num_heads,
                self.num_queries,
                self.num_keys,
                groups=groups,
                query_grid=self.query_grid,
                key_grid=self.key_grid,
                spec=self.spec,
                device=device,
            )
            out._masks = masks
            return out
        return HeadLayout(
            self.num_heads,
            self.num_queries,
            self.num_keys,
            masks=masks,
            query_grid=self.query_grid,
            key_grid=self.key_grid,
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` when a query of some head may attend to no key at all."""
        if self.groups is None:
            seen = self._masks.any(dim=-1)  # [heads, Nq]
            bad = (~seen).nonzero()
            if len(bad):
                head, query = (int(i) for i in bad[0])
                self._raise_empty(head, query, len(bad))
            return
        for group in self.groups:
            if group.blocks is None:
                if self.num_keys == 0:
                    self._raise_empty(group.heads[0], 0, self.num_queries)
                continue
            covered = None
            for b in group.parts:
                valid = b.q_index >= 0  # [G, mq]
                seen = b.mask.any(dim=-1)  # [G, mq]
                bad = valid & ~seen
                if covered is None:
                    covered = torch.zeros(
                        self.num_queries, dtype=torch.long, device=b.q_index.device
                    )
                covered.index_add_(0, b.q_index[valid], torch.ones_like(b.q_index[valid]))
                if bad.any():
                    query = int(b.q_index[bad][0])
                    self._raise_empty(group.heads[0], query, int(bad.sum()))
            if not bool((covered == 1).all()):
                query = int((covered != 1).nonzero()[0])
                raise ValueError(
                    f"block layout of heads {group.heads} lists query {query} "
                    f"{int(covered[query])} times; every query must appear exactly once"
                )

    def _raise_empty(self, head: int, query: int, count: int) -> None:
        where = f"query {query}"
        if self.query_grid is not None:
            where += f" (row {query // self.query_grid[1]}, col {query % self.query_grid[1]})"
        raise ValueError(
            f"mask of head {head}: {where} may attend to no key ({count} such query rows in "
            f"all); every query needs at least one allowed key"
        )

    def __repr__(self) -> str:
        kind = "structured" if self.structured else "dense-mask"
        return (
            f"HeadLayout(heads={self.num_heads}, Nq={self.num_queries}, Nk={self.num_keys}, {kind})"
        )


def _groups_device(groups) -> torch.device:
    for group in groups:
        if group.blocks is not None:
            return group.parts[0].mask.device
    return torch.device("cpu")
