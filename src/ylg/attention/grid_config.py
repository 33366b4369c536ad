"""What a grid attention call is configured by: its pattern, heads, grids and global tokens.

The checks and the head-assignment rule shared by :mod:`ylg.attention.grid` (masks, layouts,
the attention call) and :mod:`ylg.attention.flex_export` (FlexAttention masks). A ``pattern``
is a name of :data:`GRID_PATTERNS` or an explicit per-head list in the layout syntax of
:mod:`ylg.attention.layouts` (``"dense"``, a 1-D pattern name giving its two steps as two
heads, or ``(name, step)``); :class:`ylg.attention.YLGAttention2d` passes its heads that way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ylg import patterns
from ylg.attention.layouts import FULL, HeadSpec, expand_specs, head_specs

GRID_PATTERNS = ("ylg", "strided", "rtl", "ltr", "dense", "neighborhood")
GRID_BACKENDS = ("auto", "reference", "blocks", "flex")
NEIGHBORHOOD = "neighborhood"  # the head spec of a neighbourhood head
DEFAULT_RADIUS = 3  # a 7 x 7 window, NATTEN's usual kernel size

# A pattern name, or (after normalize_pattern) the tuple of every head's spec.
Pattern = str | Sequence[HeadSpec]


def check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    return value


def check_grid(name: str, grid) -> tuple[int, int]:
    try:
        rows, cols = grid
    except (TypeError, ValueError):
        rows = cols = None
    for v in (rows, cols):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a pair of integers (rows, cols) >= 1, got {grid!r}")
    return int(rows), int(cols)


def check_grids(grid, key_grid) -> tuple[tuple[int, int], tuple[int, int]]:
    grid = check_grid("grid", grid)
    key_grid = grid if key_grid is None else check_grid("key_grid", key_grid)
    if grid[0] % key_grid[0] or grid[1] % key_grid[1]:
        raise ValueError(
            f"grid={grid} must be an integer multiple of key_grid={key_grid} per side "
            f"(pooled keys: key_grid = grid / pool factor)"
        )
    return grid, key_grid


def check_options(pattern: Pattern, curve: str) -> None:
    if isinstance(pattern, str) and pattern not in GRID_PATTERNS:
        raise ValueError(
            f"pattern={pattern!r} is not known; use one of {', '.join(GRID_PATTERNS)} or a "
            f"list of per-head specs (ylg.attention.layouts)"
        )
    if not isinstance(pattern, (str, list, tuple)):
        raise ValueError(
            f"pattern must be a name ({', '.join(GRID_PATTERNS)}) or a list of per-head specs, "
            f"got {type(pattern).__name__}"
        )
    if curve not in patterns.CURVES:
        raise ValueError(f"curve={curve!r} is not known; use one of {', '.join(patterns.CURVES)}")


def pattern_specs(pattern: Pattern) -> tuple[HeadSpec, ...] | None:
    """The specs of an explicit per-head list (expanded); ``None`` for a named pattern."""
    return None if isinstance(pattern, str) else expand_specs(pattern)


def grid_head_specs(pattern: Pattern, heads: int) -> tuple[HeadSpec, ...]:
    """The mask of each head: ``(name, step)`` of a 1-D pattern, ``"dense"`` or
    ``"neighborhood"`` (the rule is in :mod:`ylg.attention.grid`'s docstring); an explicit
    list is returned expanded, and must give ``heads`` specs."""
    check_options(pattern, "esa")
    heads = check_int("heads", heads, 1)
    if not isinstance(pattern, str):
        return head_specs(list(pattern), heads)  # expanded, with the head count checked
    if pattern == "dense":
        return (FULL,) * heads
    if pattern == NEIGHBORHOOD:
        return (NEIGHBORHOOD,) * heads
    if pattern == "ylg":
        pairs = -(-heads // 2)
        rtl_pairs = -(-pairs // 2)
        return tuple(("rtl" if i // 2 < rtl_pairs else "ltr", i % 2) for i in range(heads))
    name = "strided_fi" if pattern == "strided" else pattern
    return tuple((name, i % 2) for i in range(heads))


def validate(pattern, grid, heads, key_grid, curve, extra_tokens, radius, query_layout="colocate"):
    """Checked and normalised ``(pattern, grid, key_grid, heads, extra_tokens, radius)``; an
    explicit pattern list becomes the (hashable) tuple of every head's spec. ``query_layout``
    must be known, and is refused where it would be ignored (``dense``, ``neighborhood``)."""
    check_options(pattern, curve)
    if query_layout not in patterns.QUERY_LAYOUTS:
        raise ValueError(
            f"query_layout={query_layout!r} is not known; use one of "
            f"{', '.join(patterns.QUERY_LAYOUTS)}"
        )
    if pattern in ("dense", NEIGHBORHOOD) and query_layout != "colocate":
        raise ValueError(
            f"query_layout={query_layout!r} places the 1-D patterns on the grid; "
            f"pattern={pattern!r} has none, so leave query_layout at its default"
        )
    grid, key_grid = check_grids(grid, key_grid)
    heads = check_int("heads", heads, 1)
    if not isinstance(pattern, str):
        pattern = grid_head_specs(pattern, heads)
    extra_tokens = check_int("extra_tokens", extra_tokens, 0)
    radius = check_int("radius", radius, 0)
    return pattern, grid, key_grid, heads, extra_tokens, radius


def check_qkv(q, k, v) -> None:
    """q, k, v are 4-D floating tensors of one dtype with a head dimension >= 1."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor, got dtype {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [B, heads, N, D], got {tuple(t.shape)}")
        if t.shape[-1] < 1:
            raise ValueError(f"{name} has head dimension {t.shape[-1]}; it must be >= 1")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(
            f"q, k and v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype} "
            "(cast them, or run under torch.autocast)"
        )


def check_device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a torch device (e.g. cpu, cuda, cuda:0)"
        ) from None


__all__ = [
    "DEFAULT_RADIUS",
    "check_device",
    "check_qkv",
    "GRID_BACKENDS",
    "GRID_PATTERNS",
    "NEIGHBORHOOD",
    "grid_head_specs",
    "pattern_specs",
    "validate",
]
