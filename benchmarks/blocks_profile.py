"""Where the time of one `blocks` call goes on the CPU, per thread count: a profiler table.

    python benchmarks/blocks_profile.py --grid 64x64 --dtype bf16 --threads 1 2

Runs ``--calls`` fwd+bwd calls of ``grid_attention(..., pattern="ylg", backend="blocks")`` (q, k,
v ``[1, 8, N, 64]``, unpooled; after 3 warm-up calls) under ``torch.profiler`` at each thread
count, in one process, with the kernel's rows gathered (its default) and, with ``--scatter``,
also scattered into place (``block_kernel.GATHER_ROWS = False``). Prints each
op's self CPU time per call and how much faster it ran at the higher thread count, and writes
``--json`` with the machine record. Profiler times carry its overhead: read them as shares
and as per-op scaling, not as the call's speed (``blocks_interleaved.py`` times that).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from blocks_interleaved import DTYPES, make_case, parse_grid
from torch.profiler import ProfilerActivity, profile

from ylg.runtime.machine import machine_record


def op_times(call, calls: int) -> dict[str, dict]:
    """``{op: {"ms": self CPU ms per call, "count": calls per call}}`` over ``calls`` calls."""
    for _ in range(3):
        call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            call()
    return {
        e.key: {"ms": e.self_cpu_time_total / calls / 1e3, "count": e.count // calls}
        for e in prof.key_averages()
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=parse_grid, default=(64, 64))
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--extra-tokens", type=int, default=0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--scatter", action="store_true", help="also profile the scatter-add path")
    ap.add_argument("--top", type=int, default=12, help="ops printed per profile")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/blocks-profile.json"))
    args = ap.parse_args(argv)
    record = machine_record(threads=args.threads, dtype=args.dtype)
    profiles = []
    for gather in [True, False] if args.scatter else [True]:
        for threads in args.threads:
            torch.set_num_threads(threads)
            method = "blocks" if gather else "blocks-scatter"  # make_case sets GATHER_ROWS
            call = make_case(method, args.grid, DTYPES[args.dtype], args.extra_tokens, 8, 64)
            ops = op_times(call, args.calls)
            profiles.append({"gather_rows": gather, "threads": threads, "ops": ops})
    for gather in sorted({p["gather_rows"] for p in profiles}, reverse=True):
        runs = [p for p in profiles if p["gather_rows"] == gather]
        first = runs[0]["ops"]
        top = sorted(first, key=lambda k: -first[k]["ms"])[: args.top]
        heads = " | ".join(f"{p['threads']} thr ms" for p in runs)
        print(f"\nrows {'gathered' if gather else 'scattered into place'}")
        print(f"| op | calls | {heads} | {runs[0]['threads']} thr / {runs[-1]['threads']} thr |")
        print("|---|---|" + "---|" * (len(runs) + 1))
        for op in top + ["total"]:
            ms = [
                sum(o["ms"] for o in p["ops"].values()) if op == "total" else p["ops"][op]["ms"]
                for p in runs
            ]
            count = "" if op == "total" else first[op]["count"]
            cells = " | ".join(f"{m:.2f}" for m in ms)
            print(f"| {op} | {count} | {cells} | {ms[0] / ms[-1]:.2f}x |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "json"}
    config["grid"] = f"{args.grid[0]}x{args.grid[1]}"
    result = {"machine": record, "config": config, "profiles": profiles}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
