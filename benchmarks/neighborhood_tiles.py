"""How the ``neighborhood`` pattern's tile size sets the ``blocks`` backend's speed (CPU).

    python benchmarks/neighborhood_tiles.py --threads 1

For each grid (unpooled, radius 3 = a 7 x 7 window, 8 heads, head dim 64, batch 1, float32):
the median forward+backward time of ``masked_attention(..., backend="blocks")`` on the layout
of :func:`ylg.attention.grid.neighborhood_blocks` with each tile size, beside unmasked SDPA.
The calls are interleaved (one of each per round), so a load change hits every tile alike.
Writes ``benchmarks/results/neighborhood-tiles.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ylg.attention.functional import masked_attention
from ylg.attention.grid import neighborhood_blocks, neighborhood_tile
from ylg.attention.layouts import HeadGroup, HeadLayout
from ylg.runtime.machine import machine_record


def fwd_bwd(q, k, v, layout=None) -> None:
    """One forward+backward: the tiled ``blocks`` call, or unmasked SDPA without a layout."""
    if layout is None:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    else:
        masked_attention(q, k, v, layout, "blocks", scale=0.125).sum().backward()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grids", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--tiles", nargs="+", type=int, default=[4, 7, 8, 16])
    p.add_argument("--radius", type=int, default=3)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/neighborhood-tiles.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"default tile at radius {args.radius}: {neighborhood_tile(args.radius)}")
    print("| grid | " + " | ".join(f"tile {t} ms" for t in args.tiles) + " | sdpa ms |")
    print("|---" * (len(args.tiles) + 2) + "|")
    for side in args.grids:
        n = side * side
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 8, n, 64, generator=g).requires_grad_() for _ in range(3))
        calls = {}
        for t in args.tiles:
            if t > side:
                continue
            blocks = neighborhood_blocks((side, side), (side, side), args.radius, tile=t)
            layout = HeadLayout(8, n, n, groups=(HeadGroup(tuple(range(8)), blocks),))
            calls[t] = functools.partial(fwd_bwd, q, k, v, layout)
        calls["sdpa"] = functools.partial(fwd_bwd, q, k, v)
        for fn in calls.values():
            fn()  # warm-up
        times = {key: [] for key in calls}
        for _ in range(args.reps):
            for key, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        ms = {str(key): statistics.median(v) * 1e3 for key, v in times.items()}
        rows.append({"grid": [side, side], "radius": args.radius, "ms": ms})
        cells = [f"{ms[str(t)]:.1f}" if str(t) in ms else "-" for t in args.tiles]
        print(f"| {side}x{side} | " + " | ".join(cells) + f" | {ms['sdpa']:.1f} |")
    out = {
        "setup": {"heads": 8, "head_dim": 64, "batch": 1, "dtype": "float32",
                  "threads": torch.get_num_threads(), "reps": args.reps,
                  "torch": torch.__version__, "device": "cpu",
                  "machine": machine_record(dtype="float32")},
        "rows": rows,
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
