"""What a grid attention call asks for, checked and resolved: a :class:`GridSpec`.

Every entry point of the grid API (:func:`ylg.attention.grid_mask`,
:func:`ylg.attention.grid_attention`, :func:`ylg.attention.mask_mod`,
:func:`ylg.attention.flex_block_mask`, the modules and the diffusers processor) turns its
``pattern`` and options into a spec with :func:`grid_spec`, once; the spec is hashable, and
:func:`ylg.attention.plan.grid_plan` turns it into the cached plan that every backend reads.
A spec holds no tensors: it says what is wanted, the plan holds what was built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ylg import patterns
from ylg.attention.checks import check_grids, check_int
from ylg.attention.heads import NEIGHBORHOOD, HeadSpec, Pattern, check_pattern, grid_head_specs

DEFAULT_RADIUS = 3  # a 7 x 7 window, NATTEN's usual kernel size
GRID_BACKENDS = ("auto", "reference", "blocks", "flex")


@dataclass(frozen=True)
class GridSpec:
    """A grid attention configuration, checked and resolved (hashable: the plan cache's key).

    ``heads``: the spec of every head (:mod:`ylg.attention.heads`); ``grid`` ``(H, W)``: the
    query grid; ``key_grid`` ``(h, w)``: the key grid (the query grid unless keys are pooled);
    ``extra_tokens``: global tokens in front of the grid tokens; ``radius``: the neighbourhood
    window's; ``curve``, ``query_layout`` and ``stride`` (``None``: ``isqrt(h * w)``) place the
    1-D patterns on the grid (:func:`ylg.patterns.grid_blocks`).
    """

    heads: tuple[HeadSpec, ...]
    grid: tuple[int, int]
    key_grid: tuple[int, int]
    curve: str = "esa"
    extra_tokens: int = 0
    radius: int = DEFAULT_RADIUS
    query_layout: str = "colocate"
    stride: int | None = None

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    @property
    def num_queries(self) -> int:
        """``Nq = extra_tokens + H * W``."""
        return self.extra_tokens + self.grid[0] * self.grid[1]

    @property
    def num_keys(self) -> int:
        """``Nk = extra_tokens + h * w``."""
        return self.extra_tokens + self.key_grid[0] * self.key_grid[1]

    @property
    def neighborhood(self) -> bool:
        """True when the heads use the neighbourhood window (then every head does)."""
        return NEIGHBORHOOD in self.heads

    def grid_only(self) -> GridSpec:
        """This spec without global tokens (the grid tokens' part of the mask)."""
        return self if self.extra_tokens == 0 else replace(self, extra_tokens=0)


def grid_spec(
    pattern: Pattern,
    grid,
    *,
    heads: int,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
) -> GridSpec:
    """The checked :class:`GridSpec` of a call; raises ``ValueError`` naming a bad argument.

    ``query_layout`` must be known, and is refused where it would be ignored (``dense``,
    ``neighborhood``); an explicit pattern list must give ``heads`` specs.
    """
    check_pattern(pattern)
    if curve not in patterns.CURVES:
        raise ValueError(f"curve={curve!r} is not known; use one of {', '.join(patterns.CURVES)}")
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
    specs = grid_head_specs(pattern, check_int("heads", heads, 1))
    extra_tokens = check_int("extra_tokens", extra_tokens, 0)
    radius = check_int("radius", radius, 0)
    return GridSpec(specs, grid, key_grid, curve, extra_tokens, radius, query_layout, stride)


__all__ = ["DEFAULT_RADIUS", "GRID_BACKENDS", "GridSpec", "grid_spec"]
