"""Two-step sparse attention patterns and their 2-D placement by ESA.

A *pattern* is a pair of boolean masks over ``n`` 1-D positions: ``mask[t, q, k]`` is True when,
at step ``t``, query ``q`` may attend to key ``k``. The steps run in parallel as separate heads;
stacking them gives the information flow of the paper (``ylg.ifg``).

Patterns (``s`` is the stride, ``isqrt(n)`` by default; a *block* is ``[b*s, (b+1)*s)``):

- ``fixed``   (Child et al. 2019, causal): step 0 its own block, ``k <= q``;
  step 1 the last cell of every block (``k % s == s-1``), ``k <= q``.
- ``strided`` (Child et al. 2019, causal): step 0 the previous ``s`` cells (``0 <= q-k < s``);
  step 1 every ``s``-th cell before it (``(q-k) % s == 0``, ``k <= q``).
- ``ltr``: step 0 its own block, ``k <= q``; step 1 every *summary* cell and itself. The
  summary cells are the last cells of the blocks: ``k % s == s-1`` and also ``k == n-1``.
  The extra ``k == n-1`` is ylg's fix for ``n % s != 0``: with the plain rule, the last,
  partial block has no cell with ``k % s == s-1``, so its tokens reach no summary cell and the
  pattern loses Full Information. The last cell of the sequence is the natural summary of that
  block (every cell of it reaches it at step 0). When ``n % s == 0`` (in particular
  ``n == s*s``) ``n-1`` is already a summary cell and the masks are exactly the original code's.
- ``rtl``: the mirror image: step 0 its own block, ``k >= q``; step 1 every block's first cell
  (``k % s == 0``) and itself. Every block, the partial one included, starts at a multiple of
  ``s``, so it has Full Information for every ``n``. The original's ``RightRepetitiveMask``
  lists the first cells of the complete blocks only (it shifts ``k % s == s-1`` back by
  ``s-1``), so for ``n % s != 0`` it lacks the partial block's first cell and Full
  Information; for ``n % s == 0`` the two are the same (docs/patterns.md).
- ``strided_fi`` (the pattern of "YLG - Strided"): the strided pattern made non-causal:
  step 0 the window ``|q-k| < s``; step 1 every key of the same residue, ``(q-k) % s == 0``.
  The window holds at least ``s`` consecutive cells, one of every residue, so every input
  reaches every output: Full Information, with about ``2 n s + n^2 / s`` allowed positions.

ESA (Enumerate, Shift, Apply): the 1-D pattern is defined over the positions of a curve through
the grid (:func:`enumerate_grid`), then applied to tokens kept in raster order: the token in
raster cell ``r`` plays position ``pos[r]`` of the 1-D pattern (:func:`grid_masks`).

Each pattern's steps are written once, as a vectorised *mask_mod* ``(q_pos, k_pos) -> bool``
(the attention-gym convention), so the dense masks, the block layouts of the fast attention
backend and any FlexAttention block mask all come from the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

PATTERNS = ("fixed", "strided", "ltr", "rtl", "strided_fi")
CURVES = ("raster", "esa", "hilbert")
QUERY_LAYOUTS = ("colocate", "tile", "flat")

MaskMod = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- validation


def _check_name(name: str) -> str:
    if name not in PATTERNS:
        raise ValueError(f"unknown pattern name={name!r}; valid names: {', '.join(PATTERNS)}")
    return name


def _check_n_stride(n: int, stride: int | None) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got n={n!r}")
    if stride is None:
        return math.isqrt(n)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= n:
        raise ValueError(f"stride must be an integer in [1, n={n}], got stride={stride!r}")
    return stride


def _check_grid(arg: str, grid) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in grid)
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in grid)
    except (TypeError, ValueError):
        ok = False
    if not ok or rows < 1 or cols < 1:
        raise ValueError(f"{arg} must be a pair of integers (rows, cols) >= 1, got {arg}={grid!r}")
    return rows, cols


# ----------------------------------------------------------------------------- 1-D rules


def mask_mod(name: str, step: int, n: int, stride: int | None = None) -> MaskMod:
    """The rule of one step as a broadcastable function of query and key positions.

    ``mask_mod(name, t, n, s)(q, k)`` equals ``two_step(name, n, s)[t][q, k]`` for integer
    tensors ``q`` and ``k`` of positions in ``[0, n)`` that broadcast against each other.
    """
    _check_name(name)
    s = _check_n_stride(n, stride)
    if step not in (0, 1):
        raise ValueError(f"step must be 0 or 1 (patterns have two steps), got step={step!r}")

    def same_block(q, k):
        return torch.div(q, s, rounding_mode="floor") == torch.div(k, s, rounding_mode="floor")

    rules: dict[tuple[str, int], MaskMod] = {
        ("fixed", 0): lambda q, k: same_block(q, k) & (k <= q),
        ("fixed", 1): lambda q, k: (k % s == s - 1) & (k <= q),
        ("strided", 0): lambda q, k: (q - k >= 0) & (q - k < s),
        ("strided", 1): lambda q, k: ((q - k) % s == 0) & (k <= q),
        ("ltr", 0): lambda q, k: same_block(q, k) & (k <= q),
        ("ltr", 1): lambda q, k: (k % s == s - 1) | (k == n - 1) | (k == q),
        ("rtl", 0): lambda q, k: same_block(q, k) & (k >= q),
        ("rtl", 1): lambda q, k: (k % s == 0) | (k == q),
        ("strided_fi", 0): lambda q, k: (q - k).abs() < s,
        ("strided_fi", 1): lambda q, k: (q - k) % s == 0,
    }
    return rules[(name, step)]


def two_step(name: str, n: int, stride: int | None = None) -> torch.Tensor:
    """The two step masks of a 1-D pattern: BoolTensor ``[2, n, n]``, ``mask[t, q, k]``."""
    s = _check_n_stride(n, stride)
    _check_name(name)
    pos = torch.arange(n)
    return torch.stack([mask_mod(name, t, n, s)(pos[:, None], pos[None, :]) for t in (0, 1)])


# ----------------------------------------------------------------------------- curves


def _gilbert(rows: int, cols: int) -> list[tuple[int, int]]:
    """Generalised Hilbert curve over any rows x cols rectangle, as (row, col) cells.

    Written by hand because no maintained PyTorch-friendly library offers it: this is
    Jakub Cervený's "gilbert" construction (BSD-2): split the longer side in two halves of
    even length where possible and recurse, so that consecutive cells are neighbours (one
    diagonal step is unavoidable on some odd x even rectangles). x runs along columns.
    """
    out: list[tuple[int, int]] = []

    def sgn(v: int) -> int:
        return (v > 0) - (v < 0)

    def walk(x: int, y: int, ax: int, ay: int, bx: int, by: int) -> None:
        w, h = abs(ax + ay), abs(bx + by)
        dax, day, dbx, dby = sgn(ax), sgn(ay), sgn(bx), sgn(by)
        if h == 1:  # a single row along the major axis
            for _ in range(w):
                out.append((y, x))
                x, y = x + dax, y + day
            return
        if w == 1:  # a single column along the minor axis
            for _ in range(h):
                out.append((y, x))
                x, y = x + dbx, y + dby
            return
        ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
        w2, h2 = abs(ax2 + ay2), abs(bx2 + by2)
        if 2 * w > 3 * h:  # long and thin: split the major side only
            if w2 % 2 and w > 2:
                ax2, ay2 = ax2 + dax, ay2 + day
            walk(x, y, ax2, ay2, bx, by)
            walk(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)
        else:  # up, across, down
            if h2 % 2 and h > 2:
                bx2, by2 = bx2 + dbx, by2 + dby
            walk(x, y, bx2, by2, ax2, ay2)
            walk(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
            walk(
                x + (ax - dax) + (bx2 - dbx),
                y + (ay - day) + (by2 - dby),
                -bx2,
                -by2,
                -(ax - ax2),
                -(ay - ay2),
            )

    if cols >= rows:
        walk(0, 0, cols, 0, 0, rows)
    else:
        walk(0, 0, 0, rows, cols, 0)
    return out


def enumerate_grid(rows: int, cols: int, curve: str = "esa") -> torch.Tensor:
    """Order in which a curve visits a ``rows x cols`` grid: LongTensor ``[rows*cols]``.

    ``order[p]`` is the raster index (``r * cols + c``) of the ``p``-th cell of the curve.

    - ``raster``: row by row.
    - ``esa``: by Manhattan distance from (0, 0), ties broken by the smaller row: the
      enumeration of the paper's Figure 3, which keeps cells near in 2-D near in 1-D.
    - ``hilbert``: a generalised Hilbert curve (any rectangle, not only powers of two).
    """
    rows, cols = _check_grid("grid", (rows, cols))
    if curve not in CURVES:
        raise ValueError(f"unknown curve={curve!r}; valid curves: {', '.join(CURVES)}")
    r = torch.arange(rows).repeat_interleave(cols)  # [N] row of each raster cell
    c = torch.arange(cols).repeat(rows)  # [N] column of each raster cell
    if curve == "raster":
        return torch.arange(rows * cols)
    if curve == "esa":
        key = (r + c) * rows + r  # distance first, then row; unique per cell
        return torch.argsort(key)
    cells = _gilbert(rows, cols)
    return torch.tensor([y * cols + x for y, x in cells], dtype=torch.long)


def positions(rows: int, cols: int, curve: str = "esa") -> torch.Tensor:
    """Inverse of :func:`enumerate_grid`: ``pos[r]`` is the curve position of raster cell r."""
    order = enumerate_grid(rows, cols, curve)
    pos = torch.empty_like(order)
    pos[order] = torch.arange(order.numel())
    return pos


# ----------------------------------------------------------------------------- grids


def query_rows(key_grid, query_grid=None, query_layout: str = "colocate") -> torch.Tensor:
    """Which key-grid cell's mask row each query uses: LongTensor ``[Nq]`` of raster indices.

    When the query grid is larger than the key grid (SAGAN pools keys 2x2: 32x32 queries,
    16x16 keys) each query must borrow the mask row of some key cell:

    - ``colocate``: the key cell under the query, ``(r * hk // hq, c * wk // wq)``. A query
      and the keys it attends to keep the 2-D neighbourhood of the pattern: 2x2 neighbouring
      queries share the row of the key cell they were pooled into.
    - ``tile``: the paper's text: every ``hk x wk`` block of the query grid reuses the
      key-grid mask, ``(r % hk, c % wk)``.
    - ``flat``: the original code: query raster index ``q`` uses row ``q mod Nk``. It treats
      the query grid as a flat sequence, so a query row of the 32x32 grid is split across two
      key rows of the 16x16 grid, and the mask no longer follows 2-D position.
    """
    hk, wk = _check_grid("key_grid", key_grid)
    hq, wq = _check_grid("query_grid", query_grid if query_grid is not None else key_grid)
    if hq % hk or wq % wk:
        raise ValueError(
            f"query_grid={(hq, wq)} must be an integer multiple of key_grid={(hk, wk)} per side"
        )
    if query_layout not in QUERY_LAYOUTS:
        raise ValueError(
            f"unknown query_layout={query_layout!r}; valid layouts: {', '.join(QUERY_LAYOUTS)}"
        )
    r = torch.arange(hq).repeat_interleave(wq)  # [Nq]
    c = torch.arange(wq).repeat(hq)  # [Nq]
    if query_layout == "colocate":
        return (r * hk // hq) * wk + (c * wk // wq)
    if query_layout == "tile":
        return (r % hk) * wk + (c % wk)
    return torch.arange(hq * wq) % (hk * wk)


def _grid_positions(key_grid, query_grid, curve, query_layout):
    """Curve positions of every query's mask row and of every key: ([Nq], [Nk])."""
    hk, wk = _check_grid("key_grid", key_grid)
    rows = query_rows(key_grid, query_grid, query_layout)
    pos = positions(hk, wk, curve)
    return pos[rows], pos


def grid_masks(
    name: str,
    key_grid,
    query_grid=None,
    curve: str = "esa",
    query_layout: str = "colocate",
    stride: int | None = None,
) -> torch.Tensor:
    """A pattern placed on a 2-D grid by ESA: BoolTensor ``[2, Nq, Nk]`` over raster tokens.

    The 1-D pattern over ``Nk = rows * cols`` positions is shifted to the curve's enumeration
    (``curve="esa"``, or ``raster`` for the "no ESA" ablation) and applied to raster-ordered
    tokens: ``mask[t, q, k] = two_step(name, Nk)[t, pos[row(q)], pos[k]]`` where ``row(q)`` is
    given by ``query_layout`` (see :func:`query_rows`).
    """
    hk, wk = _check_grid("key_grid", key_grid)
    s = _check_n_stride(hk * wk, stride)
    _check_name(name)
    qpos, kpos = _grid_positions(key_grid, query_grid, curve, query_layout)
    return torch.stack(
        [mask_mod(name, t, hk * wk, s)(qpos[:, None], kpos[None, :]) for t in (0, 1)]
    )


# ----------------------------------------------------------------------------- block layouts


@dataclass(frozen=True)
class BlockLayout:
    """One step of a pattern on a grid as groups of queries that share a small key set.

    A fast attention backend gathers the queries ``q_index[g]`` and keys ``k_index[g]`` of
    each group, runs a dense attention with the small mask ``mask[g]``, and scatters back.

    - ``q_index``: LongTensor ``[G, mq]``, raster query indices; ``-1`` pads. Every query
      appears exactly once.
    - ``k_index``: LongTensor ``[G, mk]``, raster key indices; ``-1`` pads; no key twice in a
      group (a repeated key would be counted twice by the softmax).
    - ``mask``: BoolTensor ``[G, mq, mk]``: the grid mask restricted to those indices, False on
      padding. Every allowed (query, key) pair of the step is in its query's group.
    """

    q_index: torch.Tensor
    k_index: torch.Tensor
    mask: torch.Tensor
    num_queries: int
    num_keys: int

    @property
    def cost(self) -> int:
        """Logits computed per head: ``G * mq * mk``."""
        return int(self.mask.numel())

    def dense(self) -> torch.Tensor:
        """The step's full mask, BoolTensor ``[Nq, Nk]`` (for checks and the reference)."""
        out = torch.zeros(self.num_queries + 1, self.num_keys + 1, dtype=torch.bool)
        g, i, j = self.mask.nonzero(as_tuple=True)
        out[self.q_index[g, i], self.k_index[g, j]] = True
        return out[:-1, :-1]

    def to(self, device) -> BlockLayout:
        return BlockLayout(
            self.q_index.to(device),
            self.k_index.to(device),
            self.mask.to(device),
            self.num_queries,
            self.num_keys,
        )


def _pad_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    width = max(int(r.numel()) for r in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : r.numel()] = r
    return out


def _candidate_positions(name: str, step: int, n: int, s: int) -> tuple[str, list[torch.Tensor]]:
    """How queries are grouped (by block or by residue) and each group's key positions."""
    nblocks = -(-n // s)
    blocks = [torch.arange(b * s, min((b + 1) * s, n)) for b in range(nblocks)]
    if (name, step) in {("strided", 1), ("strided_fi", 1)}:
        return "residue", [torch.arange(r, n, s) for r in range(s)]
    if name in ("strided", "strided_fi"):  # windows of width < s reach the neighbour blocks
        windows = [torch.arange(max(b - 1, 0) * s, min((b + 2) * s, n)) for b in range(nblocks)]
        return "block", windows
    if step == 0:  # fixed, ltr, rtl: block-diagonal
        return "block", blocks
    pos = torch.arange(n)
    summary = {
        "fixed": pos % s == s - 1,
        "ltr": (pos % s == s - 1) | (pos == n - 1),
        "rtl": pos % s == 0,
    }[name]
    groups = []
    for block in blocks:  # the summary cells, plus the block itself (for "and itself")
        outside = summary.clone()
        outside[block] = False
        groups.append(torch.cat([pos[outside], block]))
    return "block", groups


def grid_blocks(
    name: str,
    step: int,
    key_grid,
    query_grid=None,
    curve: str = "esa",
    query_layout: str = "colocate",
    stride: int | None = None,
) -> BlockLayout:
    """Step ``step`` of :func:`grid_masks` as a :class:`BlockLayout` for fast backends.

    Queries are grouped by the block (``pos // s``) or residue (``pos % s``) of their mask row's
    curve position; each group's key set is the union of what its queries may see. For ``ltr``,
    ``rtl`` and ``fixed`` step 0 that is one block (``mk = s``); for their step 1 the summary
    cells plus the block (``mk <= n/s + s``); for the strided patterns three blocks or one
    residue class. So ``G * mq * mk`` grows as ``N sqrt N``, not ``N^2``.
    """
    hk, wk = _check_grid("key_grid", key_grid)
    n = hk * wk
    s = _check_n_stride(n, stride)
    _check_name(name)
    rule = mask_mod(name, step, n, s)
    qpos, _ = _grid_positions(key_grid, query_grid, curve, query_layout)  # [Nq]
    order = enumerate_grid(hk, wk, curve)  # position -> raster key index
    grouping, cand = _candidate_positions(name, step, n, s)
    group_of_query = qpos // s if grouping == "block" else qpos % s  # [Nq]

    perm = torch.argsort(group_of_query, stable=True)
    counts = torch.bincount(group_of_query, minlength=len(cand)).tolist()
    q_index = _pad_rows(list(torch.split(perm, counts)))  # [G, mq]
    kpos = _pad_rows(cand)  # [G, mk] curve positions
    k_index = torch.where(kpos >= 0, order[kpos.clamp(min=0)], -1)  # [G, mk] raster indices

    qp = torch.where(q_index >= 0, qpos[q_index.clamp(min=0)], 0)  # [G, mq]
    mask = rule(qp[:, :, None], kpos.clamp(min=0)[:, None, :])  # [G, mq, mk]
    mask &= (q_index >= 0)[:, :, None] & (kpos >= 0)[:, None, :]
    return BlockLayout(q_index, k_index, mask, int(qpos.numel()), n)


def allowed_positions(masks: torch.Tensor) -> int:
    """Number of True entries over all steps of ``masks``."""
    return int(masks.sum())
