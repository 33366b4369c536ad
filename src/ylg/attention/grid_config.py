"""What a grid attention call is configured by: its pattern, heads, grids and global tokens.

The checks shared by :mod:`ylg.attention.grid` (masks, layouts, the attention call) and
:mod:`ylg.attention.flex_export` (FlexAttention masks). A ``pattern`` is a name of
:data:`GRID_PATTERNS` or an explicit per-head list in the layout syntax of
:mod:`ylg.attention.heads` (``"dense"``, a 1-D pattern name giving its two steps as two
heads, or ``(name, step)``); :class:`ylg.attention.YLGAttention2d` passes its heads that way.
"""

from __future__ import annotations

from ylg import patterns
from ylg.attention.checks import check_device, check_grids, check_int, check_qkv
from ylg.attention.heads import (
    GRID_PATTERNS,
    NEIGHBORHOOD,
    Pattern,
    check_pattern,
    expand_specs,
    grid_head_specs,
)

GRID_BACKENDS = ("auto", "reference", "blocks", "flex")
DEFAULT_RADIUS = 3  # a 7 x 7 window, NATTEN's usual kernel size


def check_options(pattern: Pattern, curve: str) -> None:
    check_pattern(pattern)
    if curve not in patterns.CURVES:
        raise ValueError(f"curve={curve!r} is not known; use one of {', '.join(patterns.CURVES)}")


def pattern_specs(pattern: Pattern):
    """The specs of an explicit per-head list (expanded); ``None`` for a named pattern."""
    return None if isinstance(pattern, str) else expand_specs(pattern)


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


__all__ = [
    "DEFAULT_RADIUS",
    "check_device",
    "check_grids",
    "check_int",
    "check_device",
    "check_qkv",
    "GRID_BACKENDS",
    "GRID_PATTERNS",
    "NEIGHBORHOOD",
    "grid_head_specs",
    "pattern_specs",
    "validate",
]
