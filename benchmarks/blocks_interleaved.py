"""`blocks` against dense SDPA, in one process, every case interleaved call by call.

    python benchmarks/blocks_interleaved.py --threads 1                    # 64x64 and 128x128
    python benchmarks/blocks_interleaved.py --grids 64x64 --reps 9 --threads 2

For each grid, every (method, dtype, global tokens) case is built in its own process first
(interleaved processes: one case's allocations do not change the memory state of another),
then the timed calls go round-robin over all of them (one call of each case per round, one
process running at a time, ``--reps`` rounds), so that a change of load or clock speed
reaches every case alike and each ratio is formed from times of one run. Methods (fwd+bwd
on q, k, v ``[1, 8, N, 64]``, ``ylg`` pattern, unpooled keys):

- ``sdpa``: ``F.scaled_dot_product_attention`` without a mask (the dense baseline);
- ``blocks``: ``grid_attention(..., backend="blocks")``: on the CPU its kernel with the
  backward written out (``ylg.attention.backends.block_kernel``);
- ``blocks-scatter``: the kernel with ``block_kernel.GATHER_ROWS = False``: every bucket's
  rows scattered into place (outputs and dq by ``index_copy_``, dk and dv by ``index_add_``
  into zero-filled buffers) instead of gathered from one concatenation;
- ``blocks-unpadded``: the kernel with ``block_kernel.PAD_WIDTH = False``: bf16 logits at
  their own width (127) instead of padded to 128 for the softmax;
- ``blocks-autograd``: the same backend with ``blocks.CPU_KERNEL = False``: autograd over the
  gathers, the path CUDA takes (what the CPU ran before the kernel).

``--thp both`` runs every case twice, once with PyTorch's ``THP_MEM_ALLOC_ENABLE=1`` (its
CPU allocator asks Linux for transparent huge pages for large buffers) and once without: on
Linux with THP in ``madvise`` mode, each call's large buffers are otherwise faulted in 4 KiB
pages every call (glibc returns allocations over 32 MiB to the OS when they are freed).

Prints the medians and the ratios, and writes ``--json`` (default
``benchmarks/results/blocks-interleaved.json``) with the machine record (CPU model and bf16
flags, threads, torch version, run id), every call's time and the median minor page faults per call.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import resource
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ylg.attention import grid_attention
from ylg.attention.backends import block_kernel, blocks
from ylg.runtime.machine import machine_record

METHODS = ("sdpa", "blocks", "blocks-scatter", "blocks-unpadded", "blocks-autograd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def parse_grid(text: str) -> tuple[int, int]:
    rows, _, cols = text.partition("x")
    try:
        return int(rows), int(cols)
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid {text!r} is not ROWSxCOLS (e.g. 64x64)") from None


def make_case(method: str, grid, dtype: torch.dtype, extra: int, heads: int, d: int):
    """A function that runs one fwd+bwd call of the case on its own inputs."""
    n = extra + grid[0] * grid[1]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, n, d, generator=g).to(dtype).requires_grad_() for _ in "qkv")
    if method == "sdpa":
        fwd = F.scaled_dot_product_attention
    else:

        def fwd(q, k, v):
            return grid_attention(
                q, k, v, grid=grid, pattern="ylg", extra_tokens=extra, backend="blocks"
            )

    flags = (method != "blocks-autograd", method != "blocks-scatter", method != "blocks-unpadded")

    def call() -> tuple[float, int]:
        """(seconds, the process's minor page faults during the call)"""
        blocks.CPU_KERNEL, block_kernel.GATHER_ROWS, block_kernel.PAD_WIDTH = flags
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        out = fwd(q, k, v)
        out.backward(torch.ones_like(out))
        elapsed = time.perf_counter() - start
        q.grad = k.grad = v.grad = None
        return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    return call


def _worker(spec: tuple, threads: int, warmup: int, conn) -> None:
    """One case in its own process: build it, warm it up, then time one call per request."""
    torch.set_num_threads(threads)
    call = make_case(*spec)
    for _ in range(warmup):  # the plan, kernels, and the allocator's thresholds settling
        call()
    conn.send("ready")
    while conn.recv() == "call":
        conn.send(call())


def run_grid(grid, args) -> list[dict]:
    """Every case of ``grid`` in its own process (so that one case's allocations, e.g. dense
    SDPA's 8 GiB at 128 x 128, do not change the memory state another case runs in), timed
    round-robin: one call of each case per round, one process running at a time."""
    ctx = mp.get_context("spawn")
    workers = {}
    thps = {"off": [False], "on": [True], "both": [False, True]}[args.thp]
    cases = itertools.product(args.methods, args.dtypes, args.extra_tokens, thps)
    for method, dtype, extra, thp in cases:
        if method == "sdpa" and extra and args.sdpa_without_global:
            continue  # one token more changes dense SDPA's cost by 1 / N
        # read by the child's torch at its first allocation (spawn: a fresh interpreter)
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1" if thp else "0"
        parent, child = ctx.Pipe()
        spec = (method, grid, DTYPES[dtype], extra, args.heads, args.head_dim)
        proc = ctx.Process(
            target=_worker, args=(spec, args.threads, args.warmup, child), daemon=True
        )
        proc.start()
        assert parent.recv() == "ready"
        workers[(method, dtype, extra, thp)] = (proc, parent)
    times = {key: [] for key in workers}
    faults = {key: [] for key in workers}
    try:
        for r in range(args.reps):
            for key, (_, conn) in workers.items():
                conn.send("call")
                seconds, n_faults = conn.recv()
                times[key].append(seconds)
                faults[key].append(n_faults)
            print(f"  {grid[0]}x{grid[1]} round {r + 1}/{args.reps}", flush=True)
    finally:
        for proc, conn in workers.values():
            conn.send("stop")
            proc.join()
    return [
        {
            "grid": f"{grid[0]}x{grid[1]}",
            "method": m,
            "dtype": dt,
            "extra_tokens": e,
            "thp": thp,
            "ms": 1e3 * statistics.median(ts),
            "calls_ms": [round(1e3 * t, 2) for t in ts],
            "minor_faults_per_call": statistics.median(faults[m, dt, e, thp]),
        }
        for (m, dt, e, thp), ts in times.items()
    ]


def ratios(rows: list[dict]) -> list[dict]:
    """Ratios of medians of one run: sdpa / blocks, autograd / kernel, bf16 speed-up of
    blocks, and the cost of the global token."""
    ms = {_key(r): r["ms"] for r in rows}
    out = []
    for grid, dtype, extra, thp in sorted({(g, dt, e, t) for g, _, dt, e, t in ms}):
        blk = ms.get((grid, "blocks", dtype, extra, thp))
        if blk is None:
            continue
        sdpa = ms.get((grid, "sdpa", dtype, extra, thp)) or ms.get((grid, "sdpa", dtype, 0, thp))
        auto = ms.get((grid, "blocks-autograd", dtype, extra, thp))
        scatter = ms.get((grid, "blocks-scatter", dtype, extra, thp))
        unpadded = ms.get((grid, "blocks-unpadded", dtype, extra, thp))
        none = ms.get((grid, "blocks", dtype, 0, thp))
        fp32 = ms.get((grid, "blocks", "fp32", extra, thp))
        without_thp = ms.get((grid, "blocks", dtype, extra, False)) if thp else None
        out.append(
            {
                "grid": grid,
                "dtype": dtype,
                "extra_tokens": extra,
                "thp": thp,
                "sdpa_over_blocks": sdpa / blk if sdpa else None,
                "autograd_over_kernel": auto / blk if auto else None,
                "scatter_over_gather": scatter / blk if scatter else None,
                "unpadded_over_padded": unpadded / blk if unpadded else None,
                "global_token_cost": blk / none - 1 if extra and none else None,
                "blocks_fp32_over_this": fp32 / blk if fp32 and dtype != "fp32" else None,
                "blocks_thp_speedup": without_thp / blk if without_thp else None,
            }
        )
    return out


def _key(row: dict) -> tuple:
    return row["grid"], row["method"], row["dtype"], row["extra_tokens"], row.get("thp", False)


def fmt(x, spec=".1f", suffix="x") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=parse_grid, nargs="+", default=[(64, 64), (128, 128)])
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    ap.add_argument("--extra-tokens", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7, help="rounds of interleaved calls")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls of each case first")
    ap.add_argument(
        "--sdpa-with-global",
        dest="sdpa_without_global",
        action="store_false",
        help="also time dense SDPA with the global tokens (by default their rows' ratio "
        "divides by SDPA without them: one token in N changes its cost by 1/N)",
    )
    ap.add_argument(
        "--thp",
        choices=("off", "on", "both"),
        default="off",
        help="PyTorch's THP_MEM_ALLOC_ENABLE in the case processes (both: every case twice)",
    )
    ap.add_argument("--note", default="", help="free text recorded with the run (e.g. load)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/blocks-interleaved.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    record = machine_record(threads=args.threads, dtype="+".join(args.dtypes))
    rows = []
    for grid in args.grids:
        rows += run_grid(grid, args)
    rat = ratios(rows)
    print("| grid | dtype | global | THP | sdpa | blocks | blocks-scatter | blocks-unpadded "
          "| blocks-autograd | sdpa / blocks | scatter / gathered | unpadded / padded "
          "| autograd / kernel | global cost | bf16 speed-up | THP speed-up |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ms = {_key(r): r["ms"] for r in rows}
    for r in rat:
        g, dt, e, thp = r["grid"], r["dtype"], r["extra_tokens"], r["thp"]
        cells = [fmt(ms.get((g, m, dt, e, thp)), ",.0f", " ms") for m in METHODS]
        print(
            f"| {g} | {dt} | {e} | {'on' if thp else 'off'} | {' | '.join(cells)} | "
            f"{fmt(r['sdpa_over_blocks'])} | {fmt(r['scatter_over_gather'], '.2f')} | "
            f"{fmt(r['unpadded_over_padded'], '.2f')} | "
            f"{fmt(r['autograd_over_kernel'], '.2f')} | "
            f"{fmt(r['global_token_cost'] and 100 * r['global_token_cost'], '+.0f', '%')} | "
            f"{fmt(r['blocks_fp32_over_this'], '.2f')} | {fmt(r['blocks_thp_speedup'], '.2f')} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "json"}
    config["grids"] = [f"{a}x{b}" for a, b in args.grids]
    result = {"machine": record, "config": config, "rows": rows, "ratios": rat}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
