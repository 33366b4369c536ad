"""Steps/s and peak memory of full G+D training steps, dense `sagan` vs sparse `ylg`.

One step = a D update (G forward under no_grad, D on real + fake) and a G update (G and D
forward, backward), with Adam, as in ylg.training.loop, on random "real" images (no data
loading). Each (preset, variant) runs in a fresh process so that peak memory is its own:
peak RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA.

    python benchmarks/train_step.py                      # demo and cifar32 on the CPU
    python benchmarks/train_step.py --device cuda        # + imagenet128 on a GPU
    python benchmarks/train_step.py --presets cifar32 --batch-size 16 --steps 5
    python benchmarks/train_step.py --presets demo --set g_width=32 d_width=32 --num-classes 9 \
        --threads 1 --channels-last --compile --json out.json   # emoji 32 px options

``--set KEY=VALUE`` overrides preset options (as ``ylg train --set``); ``--threads N`` sets the
child's torch threads; ``--channels-last`` converts G, D and the real batch to channels-last
(not done by ``ylg train``); ``--compile`` wraps G and D in ``torch.compile`` as
``ylg train --compile`` does, and reports the warm-up (compile) time separately.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time


def _measure(
    preset: str,
    variant: str,
    device: str,
    batch: int | None,
    steps: int,
    backend,
    q,
    overrides=None,
    threads=None,
    channels_last=False,
    compile_=False,
    num_classes=10,
    precisions=("auto",),
    batch_sizes=None,
) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)

    from ylg.models.loading import build_models
    from ylg.training.config import resolve
    from ylg.training.loss import HingeLoss
    from ylg.training.precision import autocast_factory, resolve_precision

    cfg = resolve(preset, {**(overrides or {}), "attention": variant})
    b = batch or cfg.batch_size
    torch.manual_seed(0)
    dev = torch.device(device)
    G, D = build_models(cfg, num_classes, dev)
    if backend is not None:
        for net in (G, D):
            if net.attention is not None:
                net.attention.backend = backend
    resolved = [resolve_precision(p, dev) for p in precisions]
    autocasts = {p: autocast_factory(p, dev) for p in resolved}
    mf = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        G, D = G.to(memory_format=mf), D.to(memory_format=mf)
    if compile_:
        G, D = torch.compile(G), torch.compile(D)
    losses = {p: HingeLoss(G, D, autocast=a) for p, a in autocasts.items()}
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    real = torch.rand(b, 3, cfg.resolution, cfg.resolution, device=dev) * 2 - 1
    real = real.contiguous(memory_format=mf)
    y = torch.randint(num_classes, (b,), device=dev)

    def step(precision):
        loss_fn = losses[precision]
        for p in D.parameters():
            p.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        loss, _ = loss_fn.d_phase(real, y, torch.randn(b, cfg.z_dim, device=dev), y)
        loss.backward()
        opt_D.step()
        for p in D.parameters():
            p.requires_grad_(False)
        opt_G.zero_grad(set_to_none=True)
        loss, _ = loss_fn.g_phase(torch.randn(b, cfg.z_dim, device=dev), y)
        loss.backward()
        opt_G.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(2):  # warm-up: mask building, allocator, cudnn autotuning, compilation
        for p in resolved:
            step(p)
    sync()
    warmup = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # Precisions interleaved step by step in this one process: their ratio is not moved by
    # what else the machine does between them.
    times = {p: [] for p in resolved}
    for _ in range(steps):
        for p in resolved:
            t = time.perf_counter()
            step(p)
            sync()
            times[p].append(time.perf_counter() - t)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    q.put((b, times, peak, warmup, torch.get_num_threads()))


def measure(preset, variant, device, batch, steps, backend=None, **kw):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(
        target=_measure, args=(preset, variant, device, batch, steps, backend, q), kwargs=kw
    )
    p.start()
    result = q.get()
    p.join()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", nargs="+", default=None)
    ap.add_argument("--variants", nargs="+", default=["sagan", "ylg"])
    ap.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument(
        "--backend", default=None, help="attention backend for every variant (default: auto)"
    )
    ap.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="preset overrides, as ylg train --set",
    )
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch threads in the child")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile G and D")
    ap.add_argument(
        "--precisions",
        nargs="+",
        default=["auto"],
        help="fp32 / bf16 / auto; several are timed interleaved, step by step, in one process",
    )
    ap.add_argument("--tag", default="", help="label for this configuration in the output")
    ap.add_argument("--json", default=None, help="append one JSON line per row to this file")
    args = ap.parse_args(argv)
    import json

    import torch

    from ylg.runtime.machine import machine_record
    from ylg.training.config import parse_assignments

    overrides = parse_assignments(args.set)

    presets = args.presets or (
        ["demo", "cifar32", "imagenet128"]
        if args.device.startswith("cuda")
        else ["demo", "cifar32"]
    )
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"attention backend {args.backend or 'auto'}"
    )
    print(
        "| preset | variant | precision | batch | threads | options | steps/s (median) | img/s "
        "| warm-up s | peak memory (MiB) | vs sagan | vs first precision |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    machine = machine_record(run_id_note="ratios only within one run_id")
    opts = (
        " ".join(
            [*args.set]
            + (["channels_last"] if args.channels_last else [])
            + (["compile"] if args.compile else [])
        )
        or "-"
    )
    for preset in presets:
        base = None
        for variant in args.variants:
            b, times_by, peak, warmup, nthreads = measure(
                preset,
                variant,
                args.device,
                args.batch_size,
                args.steps,
                args.backend,
                overrides=overrides,
                threads=args.threads,
                channels_last=args.channels_last,
                compile_=args.compile,
                num_classes=args.num_classes,
                precisions=tuple(args.precisions),
            )
            first = None
            for precision, times in times_by.items():
                rate = 1.0 / statistics.median(times)
                first = rate if first is None else first
                if variant == "sagan" and precision == next(iter(times_by)):
                    base = rate
                ratio = f"{rate / base:.2f}x" if base and variant != "sagan" else ""
                print(
                    f"| {preset} | {variant} | {precision} | {b} | {nthreads} | {opts} | "
                    f"{rate:.3f} | {rate * b:.1f} | {warmup:.1f} | {peak:.0f} | {ratio} | "
                    f"{rate / first:.2f}x |"
                )
                sys.stdout.flush()
                if args.json:
                    row = {
                        "tag": args.tag,
                        "command": " ".join(sys.argv),
                        "preset": preset,
                        "variant": variant,
                        "precision": precision,
                        "batch": b,
                        "threads": nthreads,
                        "overrides": args.set,
                        "channels_last": args.channels_last,
                        "compile": args.compile,
                        "num_classes": args.num_classes,
                        "steps_timed": len(times),
                        "median_s": statistics.median(times),
                        "steps_per_s": rate,
                        "images_per_s": rate * b,
                        "speedup_vs_first_precision": rate / first,
                        "warmup_s": warmup,
                        "times_s": times,
                        "peak_mib": peak,
                        "machine": machine,
                    }
                    with open(args.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
