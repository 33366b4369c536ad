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

One road: every function here checks and resolves its arguments once into a
:class:`~ylg.attention.grid_spec.GridSpec` and fetches that spec's cached
:class:`~ylg.attention.plan.AttentionPlan` (:func:`ylg.attention.plan.grid_plan`); the
backends read the plan.

The 1-D patterns are placed on the grid by ``curve`` (``esa``, ``raster``, ``hilbert``) with
stride ``stride`` (default ``isqrt(h * w)``): see ``ylg.patterns.grid_masks``.

Backends of :func:`grid_attention`:

- ``reference``: the dense masked softmax over :func:`grid_mask`'s mask (the oracle).
- ``blocks``: the block-sparse backend of :mod:`ylg.attention.backends.blocks` on the
  plan's :class:`~ylg.attention.HeadLayout` of the pattern, every case (any grid, heads, pooling,
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

from collections.abc import Sequence

import torch

from ylg.attention.checks import check_device, check_qkv
from ylg.attention.functional import check_shapes, choose_backend, run_plan
from ylg.attention.grid_spec import DEFAULT_RADIUS, GRID_BACKENDS, GridSpec, grid_spec
from ylg.attention.heads import GRID_PATTERNS, Pattern, grid_head_specs, head_specs
from ylg.attention.layouts import HeadLayout
from ylg.attention.neighborhood import neighborhood_blocks, neighborhood_tile
from ylg.attention.plan import device_key, grid_plan

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
    ``device``: the cached plan's (do not modify it).

    1-D pattern steps come from :func:`ylg.patterns.grid_blocks`; neighbourhood heads share
    one :func:`ylg.attention.neighborhood.neighborhood_blocks`.
    """
    spec = grid_spec(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
    )
    return grid_plan(spec, device_key(check_device(device))).grid_layout


def build_layout(
    layout: str | Sequence | torch.Tensor,
    heads: int,
    query_grid: tuple[int, int],
    key_grid: tuple[int, int],
    *,
    curve: str = "esa",
    query_layout: str = "colocate",
    stride: int | None = None,
) -> HeadLayout:
    """The :class:`HeadLayout` of a :class:`~ylg.attention.YLGAttention2d` ``layout`` (a named
    layout, a list or a bool tensor, :mod:`ylg.attention.heads`) for a query grid and a key
    grid (rows, cols): the cached plan's, on the CPU (do not modify it).

    Pattern steps come from :func:`ylg.patterns.grid_blocks` (and so equal
    :func:`ylg.patterns.grid_masks` step by step); heads that use the same step share one
    block structure. Raises ``ValueError`` when a query may attend to no key.
    """
    nq = query_grid[0] * query_grid[1]
    nk = key_grid[0] * key_grid[1]
    specs = head_specs(layout, heads)
    if specs is None:
        if tuple(layout.shape[1:]) != (nq, nk):
            raise ValueError(
                f"layout tensor has shape {tuple(layout.shape)} but the query grid {query_grid} "
                f"and key grid {key_grid} need [{heads}, {nq}, {nk}]"
            )
        out = HeadLayout(heads, nq, nk, masks=layout, query_grid=query_grid, key_grid=key_grid)
        out.validate()
        return out
    grids = (tuple(query_grid), tuple(key_grid))
    spec = GridSpec(specs, *grids, curve=curve, query_layout=query_layout, stride=stride)
    return grid_plan(spec).grid_layout


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
    spec = grid_spec(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
    )
    return grid_plan(spec).mask.clone()


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
    ``GRID_PATTERNS`` or an explicit per-head list (:mod:`ylg.attention.heads`).
    """
    if backend is None:
        backend = "auto"
    if backend not in GRID_BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {', '.join(GRID_BACKENDS)}")
    check_qkv(q, k, v)
    spec = grid_spec(
        pattern,
        grid,
        heads=q.shape[1],
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
    )
    if q.shape[2] != spec.num_queries or k.shape[2] != spec.num_keys:
        raise ValueError(
            f"grid={spec.grid}, key_grid={spec.key_grid} and extra_tokens={spec.extra_tokens} "
            f"need Nq={spec.num_queries} queries and Nk={spec.num_keys} keys, got q "
            f"{tuple(q.shape)} and k {tuple(k.shape)}"
        )
    plan = grid_plan(spec, device_key(q.device))
    check_shapes(q, k, v, plan)
    if backend == "auto":
        backend = choose_backend(q, plan, return_attention)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return run_plan(q, k, v, plan, backend, scale=scale, return_attention=return_attention)


__all__ = [
    "DEFAULT_RADIUS",
    "GRID_BACKENDS",
    "GRID_PATTERNS",
    "build_layout",
    "grid_attention",
    "grid_head_specs",
    "grid_layout",
    "grid_mask",
    "neighborhood_blocks",
    "neighborhood_tile",
]
