"""The general grid API's attention core: forward+backward time and peak memory against SDPA.

    python benchmarks/grid_attention.py --threads 1                   # the defaults below
    python benchmarks/grid_attention.py --grids 16x16 --head-dims 64 --side-head-dims \\
        --extra-tokens 0 --reps 3 --json /tmp/ga.json                   # a quick run
    python benchmarks/grid_attention.py --device cuda --methods sdpa blocks flex

Every method runs on the same q ``[B, heads, Nq, D]``, k ``[B, heads, Nk, D]``,
v ``[B, heads, Nk, D]`` (``Nq = extra_tokens + H * W``, ``Nk = extra_tokens + h * w``, the
layout of ``F.scaled_dot_product_attention``) and calls ``backward`` on the output:

- ``sdpa``: ``F.scaled_dot_product_attention`` without a mask (the fastest dense baseline);
- ``reference``: ``grid_attention(..., backend="reference")``, the dense masked softmax; only
  where ``H * W <= --max-reference-n`` (its ``[B, heads, Nq, Nk]`` tensors grow as N^2);
- ``blocks``: ``grid_attention(..., backend="blocks")``;
- ``flex`` (CUDA only: PyTorch's CPU FlexAttention has no backward): compiled
  ``flex_attention`` with ``ylg.attention.flex_block_mask``'s block mask; the timed call
  includes putting q, k, v into the mask's token order and the output back into raster order.

Defaults (issue 21): CPU, float32, batch 1, 8 heads, ``ylg`` pattern, unpooled keys; grids
64x64 and 128x128 at head dim 64, plus head dims 16 and 128 at the first grid; 0 and 1
extra (global) tokens.

Each (method, configuration) runs in a fresh process (``multiprocessing`` spawn), so that its
memory is its own:

1. a tiny call (loads kernels), then one full-size call (warm-up: builds the pattern's plan
   or block mask, compiles); ``first_call_mb`` is the growth of peak RSS over that call on the
   CPU (so it includes building the plan), ``max_memory_allocated`` growth on CUDA;
2. ``ms``: the median of ``--reps`` timed calls (fewer when one call takes more than
   ``--budget-s / --reps``);
3. ``peak_mb``: one more call, measured alone. On CUDA: ``max_memory_allocated`` over
   ``memory_allocated`` before the call. On the CPU: peak RSS (``VmHWM``, reset through
   ``/proc/self/clear_refs``) over RSS before the call, after ``malloc_trim`` and with a fixed
   glibc mmap threshold so that freed blocks go back to the system and every byte the call
   touches is counted (falls back to ``first_call_mb`` where ``/proc`` does not allow it).
   q, k, v themselves are not counted.

Prints a markdown table (one row per configuration: each method's ms and peak MB, the speed-up
``sdpa / blocks`` and the memory ratio ``blocks / sdpa``) and merges the rows into
``--json`` (default ``benchmarks/results/grid-attention.json``; a row replaces the stored row
of the same method and configuration, so CPU and CUDA runs can share one file).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import statistics
import sys
import time
from pathlib import Path

METHODS = ("sdpa", "reference", "blocks", "flex")
KEY = (
    "method",
    "grid",
    "key_grid",
    "heads",
    "head_dim",
    "extra_tokens",
    "batch",
    "dtype",
    "device",
    "threads",
)
DEFAULT_JSON = Path(__file__).parent / "results" / "grid-attention.json"


def parse_grid(text: str) -> tuple[int, int]:
    """``"64x32"`` -> (64, 32); ``"64"`` -> (64, 64)."""
    parts = text.lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        h = w = 0
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"grid {text!r} is not HxW or N with positive integers")
    return h, w


# --- one case, in its own process --------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _cpu_call_peak_mb(call) -> float | None:
    """Peak RSS growth over one ``call()``, with freed memory returned first; None if the
    kernel does not let this process reset its peak RSS."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD fixed: big blocks mmapped, unmapped on free
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _rss_kib("VmRSS")
    except OSError:
        return None
    call()
    return (_rss_kib("VmHWM") - base) / 1024


def run_case(cfg: dict) -> dict:
    """One (method, configuration) measurement, in this process."""
    import resource

    import torch
    import torch.nn.functional as F

    from ylg.attention import flex_block_mask, grid_attention

    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    if device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    dtype = getattr(torch, cfg["dtype"])
    method, heads, d, e, batch = (
        cfg["method"],
        cfg["heads"],
        cfg["head_dim"],
        cfg["extra_tokens"],
        cfg["batch"],
    )

    def inputs(grid, key_grid):
        nq, nk = e + grid[0] * grid[1], e + key_grid[0] * key_grid[1]
        shapes = [(batch, heads, nq, d), (batch, heads, nk, d), (batch, heads, nk, d)]
        return [torch.randn(s, device=device, dtype=dtype, requires_grad=True) for s in shapes]

    def make_step(grid, key_grid):
        kw = dict(grid=grid, key_grid=key_grid, pattern=cfg["pattern"], extra_tokens=e)
        if method == "sdpa":
            return lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
        if method in ("reference", "blocks"):
            return lambda q, k, v: grid_attention(q, k, v, backend=method, **kw)
        if method == "flex":
            from torch.nn.attention.flex_attention import flex_attention

            block_mask, q_order, k_order = flex_block_mask(
                cfg["pattern"],
                grid,
                heads=heads,
                key_grid=key_grid,
                extra_tokens=e,
                device=device,
                compile=device.type == "cuda",
            )
            q_back = torch.argsort(q_order)  # reordered -> raster
            flex = torch.compile(flex_attention, dynamic=False)

            def step(q, k, v):
                out = flex(
                    q[:, :, q_order], k[:, :, k_order], v[:, :, k_order], block_mask=block_mask
                )
                return out[:, :, q_back]  # [B, heads, Nq, D] in raster order

            return step
        raise ValueError(f"method={method!r} is not known; use one of {', '.join(METHODS)}")

    def run(step, args):
        out = step(*args)
        out.backward(torch.ones_like(out))
        for t in args:
            t.grad = None

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    grid, key_grid = tuple(cfg["grid"]), tuple(cfg["key_grid"])
    tiny = (2 * grid[0] // key_grid[0], 2 * grid[1] // key_grid[1])
    run(make_step(tiny, (2, 2)), inputs(tiny, (2, 2)))  # load kernels: not this case's memory
    args = inputs(grid, key_grid)

    # 1. Warm-up at full size (plan, block mask, compilation), with its memory.
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    step = make_step(grid, key_grid)
    run(step, args)
    sync()
    first_s = time.perf_counter() - start
    if device.type == "cuda":
        first_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        first_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024

    # 2. Time.
    reps = max(1, min(cfg["reps"], int(cfg["budget_s"] / max(first_s, 1e-6))))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run(step, args)
        sync()
        times.append(time.perf_counter() - start)

    # 3. One call's own memory.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run(step, args)
        sync()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _cpu_call_peak_mb(lambda: run(step, args))
    return {
        "ms": 1e3 * statistics.median(times),
        "peak_mb": first_mb if peak is None else peak,
        "first_call_mb": first_mb,
        "first_call_s": first_s,
        "reps": reps,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
    }


def _child(cfg: dict, out) -> None:
    try:
        out.put(run_case(cfg))
    except Exception as exc:  # reported as a skipped row, the run goes on
        out.put({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"})


def measure(cfg: dict) -> dict:
    """Run one case in a fresh spawned process; a crash (e.g. out of memory) or a timeout
    becomes ``{"error": ...}``."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(cfg, out))
    proc.start()
    deadline = time.monotonic() + cfg["case_timeout_s"]
    result = None
    while result is None:
        try:
            result = out.get(timeout=1.0)
        except queue.Empty:
            if not proc.is_alive():
                result = {"error": f"process died (exit code {proc.exitcode})"}
            elif time.monotonic() > deadline:
                proc.kill()
                result = {"error": f"timed out after {cfg['case_timeout_s']:.0f} s"}
    proc.join()
    return result


# --- configurations, table, JSON ---------------------------------------------------------


def configurations(args) -> list[dict]:
    """(grid, head dim, extra tokens): every grid at ``--head-dims``, and the first grid at
    ``--side-head-dims`` too."""
    combos = [(g, d) for g in args.grids for d in args.head_dims]
    combos += [(args.grids[0], d) for d in args.side_head_dims if d not in args.head_dims]
    configs = []
    for grid, d in combos:
        key_grid = (grid[0] // args.pool, grid[1] // args.pool)
        for e in args.extra_tokens:
            configs.append(
                dict(
                    grid=list(grid),
                    key_grid=list(key_grid),
                    heads=args.heads,
                    head_dim=d,
                    extra_tokens=e,
                    batch=args.batch,
                    dtype=args.dtype,
                    device=args.device,
                )
            )
    return configs


def fmt_grid(g) -> str:
    return f"{g[0]}x{g[1]}"


def cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if "error" in row or "skip" in row:
        return row.get("skip") or row["error"]
    return f"{row['ms']:.1f} ms, {row['peak_mb']:.0f} MB"


def table(configs: list[dict], results: dict, methods: list[str]) -> str:
    head = [
        "grid",
        "keys",
        "D",
        "extra",
        *methods,
        "sdpa / blocks (time)",
        "blocks / sdpa (memory)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for c in configs:
        rows = {m: results.get((m, json.dumps(c, sort_keys=True))) for m in methods}
        s, b = rows.get("sdpa"), rows.get("blocks")
        ok = s and b and "ms" in s and "ms" in b
        speed = f"{s['ms'] / b['ms']:.2f}x" if ok else "-"
        mem = f"{b['peak_mb'] / max(s['peak_mb'], 1e-3):.2f}x" if ok else "-"
        cells = [fmt_grid(c["grid"]), fmt_grid(c["key_grid"]), str(c["head_dim"])]
        cells += [str(c["extra_tokens"]), *(cell(rows[m]) for m in methods), speed, mem]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(args) -> dict:
    import platform

    import torch

    if args.device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()}, {args.threads} thread(s)"
    from ylg.runtime.machine import machine_record

    return {
        "machine": name,
        "machine_record": machine_record(threads=args.threads, device=args.device),
        "torch": torch.__version__,
        "pattern": args.pattern,
        "reps": args.reps,
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/grid_attention.py " + " ".join(sys.argv[1:]),
    }


def save(path: Path, rows: list[dict], meta: dict) -> None:
    """Merge ``rows`` into the JSON at ``path``: a row replaces the stored one with the same
    method and configuration."""
    from ylg.runtime.files import atomic_write_text

    old = json.loads(path.read_text()) if path.exists() else {"rows": [], "runs": []}
    keep = {tuple(json.dumps(r[k]) for k in KEY) for r in rows}
    merged = [r for r in old["rows"] if tuple(json.dumps(r[k]) for k in KEY) not in keep] + rows
    run_id = meta["machine_record"]["run_id"]  # saved after every case: one entry per run
    runs = [r for r in old.get("runs", []) if r.get("machine_record", {}).get("run_id") != run_id]
    runs.append(meta)
    atomic_write_text(path, json.dumps({"rows": merged, "runs": runs}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument(
        "--grids",
        nargs="+",
        type=parse_grid,
        default=[(64, 64), (128, 128)],
        help="query grids, HxW or N (default: 64x64 128x128)",
    )
    p.add_argument("--head-dims", nargs="+", type=int, default=[64], help="at every grid")
    p.add_argument(
        "--side-head-dims",
        nargs="*",
        type=int,
        default=[16, 128],
        help="head dims run at the first grid only (default: 16 128; none: omit)",
    )
    p.add_argument("--extra-tokens", nargs="+", type=int, default=[0, 1])
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--pattern", default="ylg")
    p.add_argument("--pool", type=int, default=1, help="key grid = query grid / POOL per side")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--reps", type=int, default=5, help="timed calls after the warm-up")
    p.add_argument("--budget-s", type=float, default=60.0, help="time budget per case")
    p.add_argument(
        "--max-reference-n",
        type=int,
        default=4096,
        help="run `reference` only where H * W <= this (default 4096 = 64x64)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads in each case (CPU)")
    p.add_argument("--case-timeout-s", type=float, default=900.0)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)

    methods = [m for m in args.methods if m != "flex" or args.device == "cuda"]
    if "flex" in args.methods and args.device != "cuda":
        print("flex skipped: PyTorch's CPU FlexAttention has no backward", file=sys.stderr)
    configs = configurations(args)
    results, rows = {}, []
    meta = describe(args)
    for c in configs:
        for method in methods:
            cfg = dict(
                c,
                method=method,
                pattern=args.pattern,
                threads=args.threads,
                reps=args.reps,
                budget_s=args.budget_s,
                case_timeout_s=args.case_timeout_s,
            )
            n = c["grid"][0] * c["grid"][1]
            if method == "reference" and n > args.max_reference_n:
                r = {"skip": f"not run (N > {args.max_reference_n})"}
            else:
                r = measure(cfg)
            results[(method, json.dumps(c, sort_keys=True))] = r
            label = f"{method} {fmt_grid(c['grid'])} D={c['head_dim']} extra={c['extra_tokens']}"
            print(f"{label}: {cell(r)}", file=sys.stderr, flush=True)
            if "ms" in r:
                rows.append(
                    {
                        "method": method,
                        **c,
                        "ms": r["ms"],
                        "peak_mb": r["peak_mb"],
                        "first_call_mb": r["first_call_mb"],
                        "reps": r["reps"],
                        "threads": r["threads"],
                        "run_id": meta["machine_record"]["run_id"],  # ratios within one run
                    }
                )
                save(args.json, rows, meta)  # a killed run keeps the cases it finished
    print(
        f"\n{meta['machine']}; torch {meta['torch']}; pattern {args.pattern}, B={args.batch}, "
        f"heads={args.heads}, {args.dtype}; median of up to {args.reps} fwd+bwd calls\n"
    )
    print(table(configs, results, methods))
    save(args.json, rows, meta)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
