"""The docs figure of ``grid_mask``'s conventions: which keys one query sees, per head.

    python benchmarks/grid_patterns_figure.py --out docs/img/grid-patterns.png

A 16 x 16 grid with one global token, query cell (9, 6): the 8-head ``ylg`` pattern (its four
distinct masks), ``strided`` (two), ``neighborhood`` (radius 3), ``ylg`` over pooled 8 x 8
keys, and ``ylg`` with 2 heads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ylg.viz.patterns import grid_pattern_panels, plot_grid_patterns

GRID = (16, 16)
QUERY = (9, 6)
SPECS = [
    ("ylg", {"heads": 8, "extra_tokens": 1}),
    ("strided", {"heads": 8, "extra_tokens": 1}),
    ("neighborhood", {"heads": 8, "extra_tokens": 1, "radius": 3}),
    ("ylg", {"heads": 8, "extra_tokens": 1, "key_grid": (8, 8)}),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/img/grid-patterns.png")
    args = p.parse_args(argv)
    panels = grid_pattern_panels(SPECS, GRID, QUERY)
    title = (
        f"grid_mask: the keys query cell {QUERY} of a {GRID[0]}x{GRID[1]} grid sees, per head\n"
        "(red: the key cell under the query; every query also sees the global token)"
    )
    print(plot_grid_patterns(panels, GRID, QUERY, Path(args.out), title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
