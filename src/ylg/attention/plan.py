"""The attention plan: one immutable, cached object that every backend reads.

A pattern and its options are checked and resolved once into a
:class:`~ylg.attention.grid_spec.GridSpec` (:func:`ylg.attention.grid_spec.grid_spec`);
:func:`grid_plan` turns a spec into an :class:`AttentionPlan`, built once per spec and device
and cached. A plan builds what it holds lazily, each part once:

- ``grid_layout``: the :class:`~ylg.attention.HeadLayout` of the grid tokens alone (1-D
  pattern steps from :func:`ylg.patterns.grid_blocks`, heads with one spec sharing one block
  structure; neighbourhood heads one :func:`ylg.attention.neighborhood.neighborhood_blocks`);
- ``layout``: the layout over all tokens. With global tokens each head group has two parts:
  the global query rows (one unmasked block over every key) and the grid rows' blocks with
  the global keys appended to every block, so a block's softmax runs over exactly its
  queries' allowed keys;
- ``mask``: the dense ``[heads, Nq, Nk]`` mask (``reference``, ``return_attention``, the
  repair of non-finite inputs);
- ``schedule``: the ``blocks`` backend's gather / scatter indices
  (:mod:`ylg.attention.block_schedule`);
- ``flex_orders``, ``q_inverse``, ``mask_mod`` and :meth:`AttentionPlan.block_mask`: the
  FlexAttention token orders, raster ``mask_mod`` and block mask (:mod:`ylg.attention.flex_rules`).

A layout made by hand or a plain mask tensor (:func:`ylg.attention.masked_attention`) gets a
plan without a spec, memoised on the layout (:func:`layout_plan`); a layout that carries a
spec (made by a plan) gets its spec's cached plan.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from ylg import patterns
from ylg.attention.block_schedule import BlockSchedule, schedule_blocks
from ylg.attention.flex_rules import (
    FlexMaskMod,
    dense_mask_mod,
    raster_mask_mod,
    reordered,
    token_orders,
)
from ylg.attention.grid_spec import GridSpec
from ylg.attention.heads import FULL
from ylg.attention.layouts import HeadGroup, HeadLayout
from ylg.attention.neighborhood import neighborhood_blocks


def device_key(device: torch.device | str) -> str:
    """The plan cache's name of ``device``: ``"cpu"`` for any CPU device, else ``str``."""
    device = torch.device(device)
    return "cpu" if device.type == "cpu" else str(device)


@dataclass(frozen=True, eq=False)
class AttentionPlan:
    """Everything the backends read for one attention configuration on one device.

    Build it with :func:`grid_plan` (a grid spec) or :func:`layout_plan` (any
    :class:`~ylg.attention.HeadLayout`); do not modify what it returns. The module docstring
    lists its parts, each built on first use.
    """

    spec: GridSpec | None
    device: torch.device
    given_layout: HeadLayout | None = field(default=None, repr=False)  # a plan without spec
    cpu_plan: AttentionPlan | None = field(default=None, repr=False)  # a device plan's source
    _block_masks: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ sizes
    @property
    def num_heads(self) -> int:
        return self.spec.num_heads if self.spec is not None else self.given_layout.num_heads

    @property
    def num_queries(self) -> int:
        return self.spec.num_queries if self.spec is not None else self.given_layout.num_queries

    @property
    def num_keys(self) -> int:
        return self.spec.num_keys if self.spec is not None else self.given_layout.num_keys

    # ------------------------------------------------------------------ layouts
    @functools.cached_property
    def grid_layout(self) -> HeadLayout:
        """The layout of the grid tokens alone (no global tokens)."""
        if self.given_layout is not None:
            return self.given_layout
        if self.cpu_plan is not None:
            return self.cpu_plan.grid_layout.to(self.device)
        return _grid_layout(self.spec.grid_only())

    @functools.cached_property
    def layout(self) -> HeadLayout:
        """The layout over all ``Nq`` queries and ``Nk`` keys (global tokens included)."""
        if self.given_layout is not None or self.spec.extra_tokens == 0:
            return self.grid_layout
        if self.cpu_plan is not None:
            return self.cpu_plan.layout.to(self.device)
        return _with_global_tokens(self.grid_layout, self.spec)

    @property
    def structured(self) -> bool:
        """True when the block structure of every head is known."""
        return self.layout.structured

    @property
    def full(self) -> bool:
        """True when every head sees every key (plain dense attention)."""
        return self.layout.full

    # ------------------------------------------------------------------ for the backends
    @functools.cached_property
    def mask(self) -> torch.Tensor:
        """Dense boolean mask ``[heads, Nq, Nk]`` (global rows and columns all True)."""
        grid = self.grid_layout.masks  # [heads, H*W, h*w]
        extra = 0 if self.spec is None else self.spec.extra_tokens
        if extra == 0:
            return grid
        out = torch.ones(
            self.num_heads, self.num_queries, self.num_keys, dtype=torch.bool, device=grid.device
        )  # [heads, Nq, Nk]
        out[:, extra:, extra:] = grid
        return out

    @functools.cached_property
    def schedule(self) -> BlockSchedule:
        """The ``blocks`` backend's gather / scatter indices (structured layouts only)."""
        return schedule_blocks(self.layout)

    @functools.cached_property
    def flex_orders(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q_order [Nq], k_order [Nk])`` on the plan's device: the raster index of the i-th
        reordered query / key (:func:`ylg.attention.flex_rules.token_orders`; the identity
        without a spec)."""
        if self.spec is None:
            return (
                torch.arange(self.num_queries, device=self.device),
                torch.arange(self.num_keys, device=self.device),
            )
        q_order, k_order = token_orders(self.spec)
        return q_order.to(self.device), k_order.to(self.device)

    @functools.cached_property
    def q_inverse(self) -> torch.Tensor:
        """``argsort(q_order)``: puts reordered outputs back in raster order."""
        return torch.argsort(self.flex_orders[0])

    @functools.cached_property
    def mask_mod(self) -> FlexMaskMod:
        """The mask as a FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` over raster-ordered
        tokens (tables on the plan's device)."""
        if self.spec is None:
            return dense_mask_mod(self.mask)
        return raster_mask_mod(self.spec, self.device)

    def block_mask(self, block_size: int | tuple[int, int] = 128, compile: bool = False):
        """FlexAttention's ``BlockMask`` over the reordered tokens (``B=None``, ``H=heads``),
        built once per ``(block_size, compile)``. ``compile`` is ``create_block_mask``'s
        ``_compile``."""
        key = (tuple(block_size) if isinstance(block_size, (tuple, list)) else block_size, compile)
        if key not in self._block_masks:
            from torch.nn.attention.flex_attention import create_block_mask

            q_order, k_order = self.flex_orders
            self._block_masks[key] = create_block_mask(
                reordered(self.mask_mod, q_order, k_order),
                B=None,
                H=self.num_heads,
                Q_LEN=self.num_queries,
                KV_LEN=self.num_keys,
                device=self.device,
                BLOCK_SIZE=block_size,
                _compile=compile,
            )
        return self._block_masks[key]

    def __getstate__(self):  # closures (mask_mod, block masks) do not pickle; rebuilt on use
        state = dict(self.__dict__)
        state["_block_masks"] = {}
        state.pop("mask_mod", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


# ----------------------------------------------------------------------------- the caches


def grid_plan(spec: GridSpec, device: str = "cpu") -> AttentionPlan:
    """The cached :class:`AttentionPlan` of ``spec`` on ``device`` (a :func:`device_key`);
    a plan on another device copies the CPU plan's layouts."""
    return _cached_plan(spec, device)


@functools.lru_cache(maxsize=32)
def _cached_plan(spec: GridSpec, device: str) -> AttentionPlan:
    if device != "cpu":
        return AttentionPlan(spec, torch.device(device), cpu_plan=_cached_plan(spec, "cpu"))
    return AttentionPlan(spec, torch.device("cpu"))


def layout_plan(layout: HeadLayout) -> AttentionPlan:
    """The plan that reads ``layout``: its spec's cached plan when it carries one, else a plan
    around it, made once and memoised on the layout."""
    if layout.spec is not None:
        return grid_plan(layout.spec, device_key(layout.device))
    if layout._plan is None:
        layout._plan = AttentionPlan(None, layout.device, given_layout=layout)
    return layout._plan


# ----------------------------------------------------------------------------- building


def _grid_layout(spec: GridSpec) -> HeadLayout:
    """The layout of the grid tokens of ``spec`` (no global tokens), validated."""
    nq = spec.grid[0] * spec.grid[1]
    nk = spec.key_grid[0] * spec.key_grid[1]
    if spec.neighborhood:
        blocks = neighborhood_blocks(spec.grid, spec.key_grid, spec.radius)
        groups = (HeadGroup(tuple(range(spec.num_heads)), blocks),)
    else:
        by_spec: dict = {}
        for h, head in enumerate(spec.heads):
            by_spec.setdefault(head, []).append(h)
        groups = tuple(
            HeadGroup(tuple(hs), None if head == FULL else _pattern_blocks(spec, head))
            for head, hs in by_spec.items()
        )
    out = HeadLayout(
        spec.num_heads,
        nq,
        nk,
        groups=groups,
        query_grid=spec.grid,
        key_grid=spec.key_grid,
        spec=spec,
    )
    out.validate()
    return out


def _pattern_blocks(spec: GridSpec, head) -> patterns.BlockLayout:
    name, step = head
    return patterns.grid_blocks(
        name,
        step,
        spec.key_grid,
        spec.grid,
        curve=spec.curve,
        query_layout=spec.query_layout,
        stride=spec.stride,
    )


def _with_global_tokens(grid: HeadLayout, spec: GridSpec) -> HeadLayout:
    """``grid`` over all queries and keys: each head group's global query rows and grid rows
    as two parts (heads that see every key stay one group without blocks)."""
    extra, nq, nk = spec.extra_tokens, spec.num_queries, spec.num_keys
    top = _global_rows(extra, nq, nk)
    groups = tuple(
        HeadGroup(g.heads, (top, _with_global_keys(g.blocks, extra)))
        for g in grid.groups
        if g.blocks is not None
    ) + tuple(HeadGroup(g.heads, None) for g in grid.groups if g.blocks is None)
    return HeadLayout(spec.num_heads, nq, nk, groups=groups, spec=spec)


def _with_global_keys(blocks: patterns.BlockLayout, extra: int) -> patterns.BlockLayout:
    """``blocks`` over all ``extra + Nq`` queries and ``extra + Nk`` keys (grid indices shifted
    by ``extra``), with the ``extra`` global keys in every group.

    (Padding each group's keys to a multiple of 8 was tried and dropped: in an interleaved A/B
    at 64 x 64 it was 4-7% slower than the unpadded 65 / 128 keys.)
    """
    g, mq = blocks.q_index.shape
    front = torch.arange(extra).expand(g, extra)  # [G, E]
    k_index = torch.cat([front, torch.where(blocks.k_index >= 0, blocks.k_index + extra, -1)], 1)
    valid = (blocks.q_index >= 0)[:, :, None].expand(g, mq, extra)  # [G, mq, E]
    mask = torch.cat([valid, blocks.mask], dim=-1)  # [G, mq, E + mk]
    q_index = torch.where(blocks.q_index >= 0, blocks.q_index + extra, -1)
    return patterns.BlockLayout(
        q_index, k_index, mask, blocks.num_queries + extra, blocks.num_keys + extra
    )


def _global_rows(extra: int, num_queries: int, num_keys: int) -> patterns.BlockLayout:
    """The global tokens' query rows: one group of ``extra`` queries over every key."""
    return patterns.BlockLayout(
        torch.arange(extra)[None],
        torch.arange(num_keys)[None],
        torch.ones(1, extra, num_keys, dtype=torch.bool),
        num_queries,
        num_keys,
    )


__all__ = ["AttentionPlan", "device_key", "grid_plan", "layout_plan"]
