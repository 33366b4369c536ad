"""YLG attention on any token grid: ``grid_mask`` and ``grid_attention``.

The functional core behind :class:`ylg.attention.YLGSelfAttention`,
:class:`ylg.attention.YLGAttention2d` and the diffusers processor (and any model whose tokens
lie on a 2-D grid: ViT patches, DiT latents, an MMDiT's image tokens with its text tokens in
front).

Tokens: the first ``extra_tokens`` positions are **global tokens** (a class token, registers,
text tokens); the rest are the grid's cells in raster order. So ``Nq = extra_tokens + H * W``
and ``Nk = extra_tokens + h * w``, where ``(H, W) = grid`` and ``(h, w) = key_grid`` (``None``:
the query grid; a smaller key grid = pooled keys, each query borrowing the mask row of the key
cell under it, as :class:`ylg.attention.YLGAttention2d` does: ``query_layout="colocate"``).
Global tokens attend to every key and every query attends to them; the grid part of the mask
is the pattern's.

Patterns and the head-assignment rule (head ``i`` of ``heads``):

- ``ylg``: heads in pairs, pair ``p = i // 2`` uses step ``i % 2``; the first
  ``ceil(P / 2)`` of the ``P = ceil(heads / 2)`` pairs are RTL, the rest LTR. For 8 heads that
  is RTL 0, RTL 1, RTL 0, RTL 1, LTR 0, LTR 1, LTR 0, LTR 1: exactly the ``ylg`` layout of
  :class:`~ylg.attention.YLGAttention2d`. With 2 heads: RTL 0, RTL 1; with 4: RTL 0, RTL 1,
  LTR 0, LTR 1; an odd count's last head has step 0 only (so one head alone is RTL step 0, a
  local pattern without full information).
- ``strided`` (the full-information strided pattern, ``strided_fi``), ``rtl``, ``ltr``: head
  ``i`` uses step ``i % 2``.
- ``dense``: every head sees every key.
- ``neighborhood``: every head sees the ``(2r+1) x (2r+1)`` window of key cells centred on the
  key cell under its query (``r = radius``), clipped at the borders (the NATTEN-style
  baseline; NATTEN shifts border windows instead of clipping them).

``pattern`` may also be an explicit per-head list in ``YLGAttention2d``'s layout syntax
(:mod:`ylg.attention.heads`); ``YLGAttention2d`` passes its heads that way.

The 1-D patterns are placed on the grid by ``curve`` (``esa``, ``raster``, ``hilbert``) with
stride ``stride`` (default ``isqrt(h * w)``): see ``ylg.patterns.grid_masks``.

Backends of :func:`grid_attention`:

- ``reference``: the dense masked softmax over :func:`grid_mask`'s mask (the oracle).
- ``blocks``: the block-sparse backend of :mod:`ylg.attention.backends.blocks` on a
  :class:`~ylg.attention.HeadLayout` of the pattern, every case (any grid, heads, pooling,
  global tokens, head dim, float32 / bfloat16 / float64, with autograd). Global tokens are
  exact, not approximated: the global query rows are one more bucket (one unmasked block over
  all keys), and the global keys are appended to the key set of every block of the grid rows,
  so each block's softmax runs over exactly its queries' allowed keys (``mk`` grows by
  ``extra_tokens``). One call, no slicing of q and no concatenation of outputs.
- ``flex``: PyTorch FlexAttention with :func:`ylg.attention.flex_block_mask`'s block mask over
  reordered tokens (compiled on CUDA; on CPU eager and forward only, as PyTorch's FlexAttention
  has no CPU backward); ``return_attention`` is served by ``blocks``. Never chosen by ``auto``.
- ``auto`` / ``None``: ``reference`` when ``B * heads * Nq * Nk <= 2**20``, else ``blocks``
  (:func:`ylg.attention.choose_backend`).
"""

from __future__ import annotations

import functools

import torch

from ylg import patterns
from ylg.attention import flex_export
from ylg.attention.backends import flex as flex_backend
from ylg.attention.functional import SMALL, isolate_non_finite, masked_attention
from ylg.attention.grid_config import (
    DEFAULT_RADIUS,
    GRID_BACKENDS,
    GRID_PATTERNS,
    NEIGHBORHOOD,
    Pattern,
    check_device,
    check_grids,
    check_int,
    check_options,
    check_qkv,
    grid_head_specs,
    validate,
)
from ylg.attention.layouts import HeadGroup, HeadLayout, build_layout
from ylg.attention.neighborhood import neighborhood_blocks, neighborhood_tile

# ----------------------------------------------------------------------------- layouts


def grid_layout(
    pattern: Pattern,
    grid,
    *,
    heads: int = 8,
    key_grid=None,
    curve: str = "esa",
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
    device: torch.device | str = "cpu",
) -> HeadLayout:
    """The :class:`~ylg.attention.HeadLayout` of the grid tokens alone (no global tokens), on
    ``device``; built once per configuration and cached (do not modify it).

    1-D patterns go through :func:`ylg.attention.build_layout`; neighbourhood heads share one
    :func:`neighborhood_blocks`.
    """
    args = validate(pattern, grid, heads, key_grid, curve, 0, radius, query_layout)
    pattern, grid, key_grid, heads, _, radius = args
    device = check_device(device)
    where = "cpu" if device.type == "cpu" else str(device)
    return _plan(
        pattern, grid, heads, key_grid, curve, 0, radius, query_layout, stride, where
    ).grid_layout


def _new_layout(pattern, grid, heads, key_grid, curve, radius, query_layout, stride) -> HeadLayout:
    """Build :func:`grid_layout`'s layout (uncached)."""
    check_options(pattern, curve)
    grid, key_grid = check_grids(grid, key_grid)
    radius = check_int("radius", radius, 0)
    specs = grid_head_specs(pattern, heads)
    if pattern != NEIGHBORHOOD:
        return build_layout(
            list(specs),
            heads,
            grid,
            key_grid,
            curve=curve,
            query_layout=query_layout,
            stride=stride,
        )
    blocks = neighborhood_blocks(grid, key_grid, radius)
    out = HeadLayout(
        heads,
        grid[0] * grid[1],
        key_grid[0] * key_grid[1],
        groups=(HeadGroup(tuple(range(heads)), blocks),),
        query_grid=grid,
        key_grid=key_grid,
    )
    out.validate()
    return out


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


class _GridPlan:
    """Everything one grid configuration needs, built once (per device) and cached.

    ``rows``: a structured layout of all queries ``[E + H*W]`` over all keys ``[E + h*w]``
    (each head group in two parts: the global rows over every key, and the grid rows' blocks
    with the global keys in every block); ``full``: a layout over all queries and keys when
    every head is dense. ``mask()``: the dense ``[heads, Nq, Nk]`` mask of :func:`grid_mask`.
    """

    def __init__(self, layout: HeadLayout, extra: int) -> None:
        self.grid_layout = layout
        self.extra = extra
        self.heads = layout.num_heads
        self.num_queries = extra + layout.num_queries
        self.num_keys = extra + layout.num_keys
        self.full = None
        if layout.full:
            group = HeadGroup(tuple(range(self.heads)), None)
            self.full = HeadLayout(self.heads, self.num_queries, self.num_keys, groups=(group,))
        if extra == 0:
            self.rows = layout
        else:  # global query rows and grid rows as two parts of each head group
            top = _global_rows(extra, self.num_queries, self.num_keys)
            groups = tuple(
                HeadGroup(g.heads, (top, _with_global_keys(g.blocks, extra)))
                for g in layout.groups
                if g.blocks is not None
            ) + tuple(HeadGroup(g.heads, None) for g in layout.groups if g.blocks is None)
            self.rows = HeadLayout(self.heads, self.num_queries, self.num_keys, groups=groups)
        self._dense: HeadLayout | None = None

    def to(self, device: str) -> _GridPlan:
        out = _GridPlan.__new__(_GridPlan)
        out.__dict__.update(self.__dict__)
        out.grid_layout = self.grid_layout.to(device)
        out.rows = self.rows.to(device)
        out.full = None if self.full is None else self.full.to(device)
        out._dense = None
        return out

    def mask(self) -> torch.Tensor:
        grid = self.grid_layout.masks  # [heads, H*W, h*w]
        if self.extra == 0:
            return grid
        out = torch.ones(
            self.heads, self.num_queries, self.num_keys, dtype=torch.bool, device=grid.device
        )
        out[:, self.extra :, self.extra :] = grid
        return out

    def dense(self) -> HeadLayout:
        """A plain-mask layout of :meth:`mask` (for the reference backend)."""
        if self._dense is None:
            self._dense = self.full or HeadLayout(
                self.heads, self.num_queries, self.num_keys, masks=self.mask()
            )
        return self._dense


@functools.lru_cache(maxsize=32)
def _plan(pattern, grid, heads, key_grid, curve, extra, radius, query_layout, stride, device):
    """The cached :class:`_GridPlan` of a configuration on ``device`` (built on the CPU)."""
    if device != "cpu":
        args = (pattern, grid, heads, key_grid, curve, extra, radius, query_layout, stride)
        return _plan(*args, "cpu").to(device)
    layout = _new_layout(pattern, grid, heads, key_grid, curve, radius, query_layout, stride)
    return _GridPlan(layout, extra)


@functools.lru_cache(maxsize=32)
def _flex_plan(pattern, grid, heads, key_grid, curve, extra, radius, query_layout, stride, device):
    """``(q_order, k_order, q_inverse, block_mask)`` of a configuration for ``flex``."""
    block_mask, q_order, k_order = flex_export.flex_block_mask(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
        device=device,
    )
    return q_order, k_order, torch.argsort(q_order), block_mask


# ----------------------------------------------------------------------------- public API


def grid_mask(
    pattern: Pattern,
    grid,
    *,
    heads: int = 8,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
) -> torch.Tensor:
    """BoolTensor ``[heads, Nq, Nk]``: may query ``i`` of head ``h`` attend to key ``j``?

    ``Nq = extra_tokens + H * W``, ``Nk = extra_tokens + h * w`` (``grid = (H, W)``,
    ``key_grid = (h, w)``, default the query grid); the first ``extra_tokens`` rows and columns
    are all True (global tokens), the rest is ``pattern`` over raster-ordered grid tokens, its
    masks assigned to heads as the module docstring says. ``radius`` is the neighbourhood's
    (window ``2 * radius + 1``); ``curve``, ``query_layout`` and ``stride`` place the 1-D
    patterns (``ylg.patterns.grid_masks``). Every row has at least one True entry.
    """
    args = validate(pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout)
    pattern, grid, key_grid, heads, extra_tokens, radius = args
    plan = _plan(
        pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout, stride, "cpu"
    )
    return plan.mask().clone()


def grid_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    grid,
    pattern: Pattern = "ylg",
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    scale: float | None = None,
    backend: str | None = None,
    return_attention: bool = False,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Masked softmax attention with :func:`grid_mask`'s mask, on SDPA-layout tensors.

    q ``[B, heads, Nq, D]``, k ``[B, heads, Nk, D]``, v ``[B, heads, Nk, Dv]`` with
    ``Nq = extra_tokens + H * W`` and ``Nk = extra_tokens + h * w`` (global tokens first, then
    raster order). Returns ``[B, heads, Nq, Dv]`` and, with ``return_attention``, the
    probabilities ``[B, heads, Nq, Nk]`` (zero outside the mask). ``scale=None`` is
    ``1 / sqrt(D)``. ``backend``: ``reference``, ``blocks``, ``flex`` or ``auto`` / ``None``
    (see the module docstring); every backend computes exactly the dense masked softmax,
    forward and backward (``flex``: forward only on CPU). ``pattern``: a name of
    ``GRID_PATTERNS`` or an explicit per-head list (:mod:`ylg.attention.grid_config`).
    """
    if backend is None:
        backend = "auto"
    if backend not in GRID_BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {', '.join(GRID_BACKENDS)}")
    check_qkv(q, k, v)
    heads = q.shape[1]
    args = validate(pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout)
    pattern, grid, key_grid, heads, extra_tokens, radius = args
    nq = extra_tokens + grid[0] * grid[1]
    nk = extra_tokens + key_grid[0] * key_grid[1]
    if q.shape[2] != nq or k.shape[2] != nk:
        raise ValueError(
            f"grid={grid}, key_grid={key_grid} and extra_tokens={extra_tokens} need Nq={nq} "
            f"queries and Nk={nk} keys, got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    device = str(q.device) if q.device.type != "cpu" else "cpu"
    plan = _plan(
        pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout, stride, device
    )
    if backend == "auto":
        backend = "reference" if q.shape[0] * heads * nq * nk <= SMALL else "blocks"
    if backend == "reference":
        return masked_attention(
            q, k, v, plan.dense(), "reference", scale=scale, return_attention=return_attention
        )
    layout = plan.full or plan.rows
    if backend == "flex" and not return_attention:  # probabilities come from ``blocks``
        args = (pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout, stride)
        flex_args = _flex_plan(*args, device)

        def run(q, k, v):
            return flex_backend.run(q, k, v, *flex_args, scale=scale), None

        return isolate_non_finite(q, k, v, layout, run)[0]
    return masked_attention(
        q, k, v, layout, "blocks", scale=scale, return_attention=return_attention
    )


__all__ = [
    "GRID_PATTERNS",
    "grid_attention",
    "grid_head_specs",
    "grid_layout",
    "grid_mask",
    "neighborhood_blocks",
    "neighborhood_tile",
]
