"""Head specs: which mask rule each attention head uses.

A head spec is ``"dense"`` (the head sees every key), ``"neighborhood"`` (a window around the
key cell under the query, :mod:`ylg.attention.neighborhood`) or ``(name, step)``: step
``step`` (0 or 1) of the 1-D pattern ``name`` of :data:`ylg.patterns.PATTERNS`, placed on the
grid by a curve. Two rules turn what a caller asks for into one spec per head:

- :func:`head_specs`, the ``layout=`` of :class:`ylg.attention.YLGAttention2d` (named layouts
  with a fixed head count):

  - ``dense``: every query sees every key (SAGAN), any number of heads;
  - ``ylg``: 8 heads, RTL step 0, RTL step 1, RTL step 0, RTL step 1, LTR step 0, LTR step 1,
    LTR step 0, LTR step 1 (the head order of the original code);
  - ``strided``: 8 heads, the full-information strided pattern's 2 steps, 4 times;
  - a list of entries, each a pattern name (its 2 steps as 2 consecutive heads), a
    ``(name, step)`` pair (one head) or ``"dense"`` (one head that sees every key);
  - an explicit boolean tensor ``[heads, Nq, Nk]`` (no specs: ``None``).

- :func:`grid_head_specs`, the ``pattern=`` of the grid API (:mod:`ylg.attention.grid`): a
  name of :data:`GRID_PATTERNS` assigned to any number of heads (the rule is in the grid
  module's docstring), or an explicit list in the layout syntax above.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ylg.attention.checks import check_int
from ylg.patterns import PATTERNS as PATTERN_NAMES

NAMED_LAYOUTS = ("dense", "ylg", "strided")
GRID_PATTERNS = ("ylg", "strided", "rtl", "ltr", "dense", "neighborhood")
FULL = "dense"  # the head spec of a head that sees every key
NEIGHBORHOOD = "neighborhood"  # the head spec of a neighbourhood head

# A head spec: FULL, NEIGHBORHOOD or (pattern name, step).
HeadSpec = str | tuple[str, int]
# A grid pattern: a name of GRID_PATTERNS or an explicit per-head list.
Pattern = str | Sequence[HeadSpec]


def head_specs(layout: str | Sequence | torch.Tensor, heads: int) -> tuple[HeadSpec, ...] | None:
    """The per-head pattern steps of a named layout or list; ``None`` for an explicit tensor.

    Raises ``ValueError`` naming the layout when it is unknown or gives a number of heads other
    than ``heads``.
    """
    if isinstance(layout, torch.Tensor):
        if layout.dtype != torch.bool or layout.dim() != 3 or layout.shape[0] != heads:
            raise ValueError(
                f"layout tensor must be a bool tensor [heads={heads}, Nq, Nk], got dtype "
                f"{layout.dtype} and shape {tuple(layout.shape)}"
            )
        return None
    if isinstance(layout, str):
        if layout == "dense":
            return (FULL,) * heads
        if layout == "ylg":
            specs = [("rtl", 0), ("rtl", 1)] * 2 + [("ltr", 0), ("ltr", 1)] * 2
        elif layout == "strided":
            specs = [("strided_fi", 0), ("strided_fi", 1)] * 4
        else:
            raise ValueError(
                f"layout={layout!r} is not known; use one of {', '.join(NAMED_LAYOUTS)}, a list "
                f"of pattern names ({', '.join(PATTERN_NAMES)}) or a bool tensor [heads, Nq, Nk]"
            )
        if heads != len(specs):
            raise ValueError(
                f"layout={layout!r} has {len(specs)} heads, got heads={heads}; use heads="
                f"{len(specs)} or layout='dense' for any number of heads"
            )
        return tuple(specs)
    specs = expand_specs(layout)
    if len(specs) != heads:
        raise ValueError(
            f"layout={list(layout)!r} gives {len(specs)} heads (a pattern name counts 2), "
            f"got heads={heads}"
        )
    return specs


def expand_specs(entries: Sequence) -> tuple[HeadSpec, ...]:
    """The per-head specs of a list layout (a pattern name gives its 2 steps as 2 heads);
    raises ``ValueError`` naming an unknown entry."""
    specs: list[HeadSpec] = []
    for entry in entries:
        if isinstance(entry, str) and entry == FULL:
            specs.append(FULL)
        elif isinstance(entry, str) and entry in PATTERN_NAMES:
            specs += [(entry, 0), (entry, 1)]
        elif (
            isinstance(entry, (tuple, list))
            and len(entry) == 2
            and entry[0] in PATTERN_NAMES
            and entry[1] in (0, 1)
        ):
            specs.append((str(entry[0]), int(entry[1])))
        else:
            raise ValueError(
                f"layout entry {entry!r} is not known; each entry is a pattern name "
                f"({', '.join(PATTERN_NAMES)}) giving its 2 steps as 2 heads, a (name, step) "
                f"pair with step 0 or 1, or 'dense'"
            )
    return tuple(specs)


def check_pattern(pattern: Pattern) -> None:
    """``pattern`` is a name of :data:`GRID_PATTERNS` or a list (its entries are checked by
    :func:`expand_specs`)."""
    if isinstance(pattern, str) and pattern not in GRID_PATTERNS:
        raise ValueError(
            f"pattern={pattern!r} is not known; use one of {', '.join(GRID_PATTERNS)} or a "
            f"list of per-head specs (ylg.attention.heads)"
        )
    if not isinstance(pattern, (str, list, tuple)):
        raise ValueError(
            f"pattern must be a name ({', '.join(GRID_PATTERNS)}) or a list of per-head specs, "
            f"got {type(pattern).__name__}"
        )


def grid_head_specs(pattern: Pattern, heads: int) -> tuple[HeadSpec, ...]:
    """The mask of each head: ``(name, step)`` of a 1-D pattern, ``"dense"`` or
    ``"neighborhood"`` (the rule is in :mod:`ylg.attention.grid`'s docstring); an explicit
    list is returned expanded, and must give ``heads`` specs."""
    check_pattern(pattern)
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


__all__ = [
    "FULL",
    "GRID_PATTERNS",
    "NAMED_LAYOUTS",
    "NEIGHBORHOOD",
    "PATTERN_NAMES",
    "HeadSpec",
    "Pattern",
    "check_pattern",
    "expand_specs",
    "grid_head_specs",
    "head_specs",
]
