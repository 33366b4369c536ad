"""Attention backends: forward+backward time and peak memory, against dense SDPA.

    python benchmarks/attention.py                       # CPU (and CUDA when present)
    python benchmarks/attention.py --devices cuda --sizes 64 128 --batch 8

For each query grid (16x16 ... 128x128) and key grid (pooled: half the side; unpooled: the
same), every method runs the attention core on the same q ``[B, heads, Nq, D]``,
k ``[B, heads, Nk, D]``, v ``[B, heads, Nk, Dv]`` (SAGAN shapes: D = C/8/heads, Dv = C/2/heads):

- ``sdpa``: ``F.scaled_dot_product_attention`` without a mask (the dense baseline);
- ``sdpa-pad``: the same with q, k zero-padded to Dv so that PyTorch's fused (flash) kernel
  accepts them (it needs equal head dims); same logits, the fastest dense attention on hand;
- ``reference``: ``masked_attention(..., backend="reference")`` with the layout's masks;
- ``blocks`` (and ``flex`` on CUDA): the sparse backends, same masks.

Each case runs in a fresh subprocess: one warm-up call (also the peak-memory measurement:
peak RSS growth on CPU, ``max_memory_allocated`` growth on CUDA), then the median of
``--repeats`` timed forward+backward calls. Cases whose dense ``[B, heads, Nq, Nk]`` tensors
would exceed ``--mem-limit-gb`` are reported as "does not fit" without running.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

METHODS = ("sdpa", "sdpa-pad", "reference", "blocks", "flex")
DENSE = ("sdpa", "reference")  # methods that materialise [B, heads, Nq, Nk] floats


def run_case(cfg: dict) -> dict:
    """One (device, size, pooling, method) measurement, in this process."""
    import resource

    import torch
    import torch.nn.functional as F

    from ylg.attention import build_layout, masked_attention

    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    if device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    side, pool, heads, channels, batch = (
        cfg["side"],
        cfg["pool"],
        cfg["heads"],
        cfg["channels"],
        cfg["batch"],
    )
    query_grid = (side, side)
    key_grid = (side // 2, side // 2) if pool else query_grid
    d, dv = channels // 8 // heads, channels // 2 // heads
    method = cfg["method"]

    def inputs(qg, kg):
        nq, nk = qg[0] * qg[1], kg[0] * kg[1]
        layout = None
        if method not in ("sdpa", "sdpa-pad"):
            layout = build_layout(cfg["layout"], heads, qg, kg).to(device)
        q = torch.randn(batch, heads, nq, d, device=device, requires_grad=True)
        k = torch.randn(batch, heads, nk, d, device=device, requires_grad=True)
        v = torch.randn(batch, heads, nk, dv, device=device, requires_grad=True)
        return q, k, v, layout

    def step(q, k, v, layout):
        if method == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        elif method == "sdpa-pad":
            pad = (0, max(dv - d, 0))
            out = F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), v, scale=1.0)
        else:
            out = masked_attention(q, k, v, layout, method)
        out.backward(torch.ones_like(out))

    # A tiny call first, so that loading kernels does not count as this case's memory.
    step(*inputs((4, 4), (2, 2) if pool else (4, 4)))
    args = inputs(query_grid, key_grid)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_mb()
    start = time.perf_counter()
    step(*args)  # warm-up (plans, compilation, cached masks) and peak memory
    sync()
    first = time.perf_counter() - start
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = rss_mb() - base
    repeats = max(1, min(cfg["repeats"], int(cfg["budget_s"] / max(first, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(*args)
        sync()
        times.append(time.perf_counter() - start)
    return {"ms": 1e3 * statistics.median(times), "peak_mb": peak, "runs": repeats}


def dense_bytes(cfg: dict, nq: int, nk: int) -> int:
    """Rough peak of a dense masked attention: logits, probs and their grads in float32."""
    return 4 * 4 * cfg["batch"] * cfg["heads"] * nq * nk


def measure(cfg: dict) -> dict:
    """Run one case in a subprocess (fresh peak-memory counter, survives out-of-memory)."""
    side = cfg["side"]
    nq = side * side
    nk = nq // 4 if cfg["pool"] else nq
    if cfg["method"] in DENSE and dense_bytes(cfg, nq, nk) > cfg["mem_limit_gb"] * 2**30:
        gb = dense_bytes(cfg, nq, nk) / 2**30
        return {"skip": f"does not fit (~{gb:.0f} GB > --mem-limit-gb)"}
    proc = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=cfg["case_timeout_s"],
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"skip": f"failed: {tail[:80]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(device: str, args) -> str:
    import torch

    from ylg.attention.backends.flex import available

    methods = [m for m in args.methods if m != "flex" or available(torch.device(device))]
    lines = [
        f"### {device}: {describe(device, args)}",
        "",
        "| query grid | keys | method | fwd+bwd ms | peak MB | time / sdpa | memory / sdpa |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for side in args.sizes:
        for pool in (True, False):
            base = None
            keys = f"{side // 2}x{side // 2} (pooled)" if pool else f"{side}x{side}"
            for method in methods:
                cfg = dict(
                    vars(args), device=device, side=side, pool=pool, method=method,
                    sizes=None, devices=None, methods=None,
                )  # fmt: skip
                r = dict(measure(cfg), method=method)
                if method in ("sdpa", "sdpa-pad") and "skip" not in r and base is None:
                    base = r  # sdpa-pad stands in where plain sdpa does not fit (marked *)
                if "skip" in r:
                    row = f"| {side}x{side} | {keys} | {method} | {r['skip']} | | | |"
                else:
                    star = "*" if base is not None and base.get("method") == "sdpa-pad" else ""
                    tr = f"{r['ms'] / base['ms']:.2f}{star}" if base else "-"
                    mr = f"{r['peak_mb'] / max(base['peak_mb'], 1e-3):.2f}{star}" if base else "-"
                    row = (
                        f"| {side}x{side} | {keys} | {method} | {r['ms']:.1f} | "
                        f"{r['peak_mb']:.0f} | {tr} | {mr} |"
                    )
                lines.append(row)
                print(row, file=sys.stderr, flush=True)
    lines += ["", "\\* ratio to `sdpa-pad`: plain `sdpa` does not fit at that size."]
    return "\n".join(lines)


def describe(device: str, args) -> str:
    import platform

    import torch

    if device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    d = args.channels // 8 // args.heads
    return (
        f"{name}; torch {torch.__version__}; layout={args.layout}, B={args.batch}, "
        f"heads={args.heads}, C={args.channels} (D={d}, Dv={4 * d}); median of up to "
        f"{args.repeats} runs"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda if present")
    p.add_argument("--sizes", nargs="+", type=int, default=[16, 32, 64, 128])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--layout", default="ylg")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=30.0, help="time budget per case")
    p.add_argument(
        "--threads", type=int, default=2, help="CPU threads (1 on a machine shared with other jobs)"
    )
    p.add_argument("--mem-limit-gb", type=float, default=6.0)
    p.add_argument("--case-timeout-s", type=float, default=900.0)
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        print(table(device, args), flush=True)
        print()


if __name__ == "__main__":
    main()
