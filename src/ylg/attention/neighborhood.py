"""The ``neighborhood`` pattern's block structure: a window around the key cell under each query.

Every head of ``pattern="neighborhood"`` sees the ``(2r+1) x (2r+1)`` window of key cells
centred on the key cell under its query (``r = radius``), clipped at the borders (the
NATTEN-style baseline of :mod:`ylg.attention.grid`). :func:`neighborhood_blocks` groups the
queries by tiles so that the ``blocks`` backend reads only the keys near each tile.
"""

from __future__ import annotations

import torch

from ylg import patterns


def neighborhood_tile(radius: int) -> int:
    """The default tile side of :func:`neighborhood_blocks`: the smallest power of two
    ``>= 2 * radius + 1`` (8 for NATTEN's 7 x 7). Measured on the CPU (``benchmarks/README.md``,
    "Neighbourhood tiles"; radius 3, fwd+bwd): tiles of 8 beat tiles of 7 (the window side)
    by 1.8x at 16 x 16, 1.2x at 32 x 32 and 1.25x at 64 x 64, and beat 4 and 16 everywhere
    but 16 x 16 (where 16 ties); 8 divides power-of-two grids, so no tile is padded."""
    return 1 << (2 * radius).bit_length()


def _key_spans(cells: int, tile: int, radius: int) -> torch.Tensor:
    """``[tiles, L]``: the key cells along one axis read by each tile of ``tile`` query cells:
    ``L = min(tile + 2 * radius, cells)`` consecutive cells, shifted inside the axis at the
    borders (so every key read is a real cell; the window mask still clips exactly)."""
    length = min(tile + 2 * radius, cells)
    tiles = -(-cells // tile)
    start = (torch.arange(tiles) * tile - radius).clamp(0, cells - length)  # [tiles]
    return start[:, None] + torch.arange(length)[None, :]  # [tiles, L]


def neighborhood_blocks(
    grid: tuple[int, int], key_grid: tuple[int, int], radius: int, tile: int | None = None
) -> patterns.BlockLayout:
    """The neighbourhood window as a :class:`ylg.patterns.BlockLayout`.

    Queries are grouped by ``tile x tile`` tiles of the key cells under them (default
    :func:`neighborhood_tile`); a group's keys are the tile grown by ``radius`` on every side,
    shifted inside the grid at its borders and cut to the grid's size (:func:`_key_spans`), and
    the mask is the window rule ``|row_k - row_q'| <= r and |col_k - col_q'| <= r`` with
    ``(row_q', col_q')`` the key cell under the query.
    """
    hk, wk = key_grid
    t = neighborhood_tile(radius) if tile is None else tile
    rows = patterns.query_rows(key_grid, grid, "colocate")  # [Nq] key cell under each query
    qr, qc = rows // wk, rows % wk  # [Nq]
    tiles_c = -(-wk // t)
    tile_of_query = (qr // t) * tiles_c + qc // t  # [Nq]
    groups = -(-hk // t) * tiles_c
    perm = torch.argsort(tile_of_query, stable=True)
    counts = torch.bincount(tile_of_query, minlength=groups)
    mq = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts  # [G]
    slot = torch.arange(mq)  # [mq]
    q_index = torch.where(
        slot[None, :] < counts[:, None],
        perm[(starts[:, None] + slot[None, :]).clamp(max=perm.numel() - 1)],
        -1,
    )  # [G, mq]

    span_r, span_c = _key_spans(hk, t, radius), _key_spans(wk, t, radius)  # [Tr, Lr], [Tc, Lc]
    tr = torch.arange(groups) // tiles_c  # [G]
    tc = torch.arange(groups) % tiles_c  # [G]
    kr = span_r[tr][:, :, None].expand(-1, -1, span_c.shape[1])  # [G, Lr, Lc]
    kc = span_c[tc][:, None, :].expand(-1, span_r.shape[1], -1)  # [G, Lr, Lc]
    kr, kc = kr.reshape(groups, -1), kc.reshape(groups, -1)  # [G, mk]
    k_index = kr * wk + kc  # [G, mk], every one a real cell

    q_safe = q_index.clamp(min=0)
    mask = ((qr[q_safe][:, :, None] - kr[:, None, :]).abs() <= radius) & (
        (qc[q_safe][:, :, None] - kc[:, None, :]).abs() <= radius
    )  # [G, mq, mk]
    mask &= (q_index >= 0)[:, :, None]
    return patterns.BlockLayout(q_index, k_index, mask, int(rows.numel()), hk * wk)


__all__ = ["neighborhood_blocks", "neighborhood_tile"]
