"""Steps/s and peak memory of full G+D training steps, dense `sagan` vs sparse `ylg`.

One step = a D update (G forward under no_grad, D on real + fake) and a G update (G and D
forward, backward), with Adam, as in ylg.training.loop, on random "real" images (no data
loading). Each (preset, variant) runs in a fresh process so that peak memory is its own:
peak RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA.

    python benchmarks/train_step.py                      # demo and cifar32 on the CPU
    python benchmarks/train_step.py --device cuda        # + imagenet128 on a GPU
    python benchmarks/train_step.py --presets cifar32 --batch-size 16 --steps 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time


def _measure(
    preset: str, variant: str, device: str, batch: int | None, steps: int, backend, q
) -> None:
    import torch

    from ylg.models.loading import build_models
    from ylg.training.config import resolve
    from ylg.training.loss import HingeLoss

    cfg = resolve(preset, {"attention": variant})
    b = batch or cfg.batch_size
    torch.manual_seed(0)
    dev = torch.device(device)
    G, D = build_models(cfg, 10, dev)
    if backend is not None:
        for net in (G, D):
            if net.attention is not None:
                net.attention.backend = backend
    autocast = None
    if dev.type == "cuda" and cfg.amp:
        import functools

        autocast = functools.partial(torch.autocast, "cuda", dtype=torch.bfloat16)
    loss_fn = HingeLoss(G, D, autocast=autocast)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    real = torch.rand(b, 3, cfg.resolution, cfg.resolution, device=dev) * 2 - 1
    y = torch.randint(10, (b,), device=dev)

    def step():
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

    for _ in range(2):  # warm-up: mask building, allocator, cudnn autotuning
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    q.put((b, times, peak))


def measure(preset, variant, device, batch, steps, backend=None):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(preset, variant, device, batch, steps, backend, q))
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
    args = ap.parse_args(argv)
    import torch

    presets = args.presets or (
        ["demo", "cifar32", "imagenet128"]
        if args.device.startswith("cuda")
        else ["demo", "cifar32"]
    )
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"attention backend {args.backend or 'auto'}"
    )
    print("| preset | variant | batch | steps/s (median) | peak memory (MiB) | vs sagan |")
    print("|---|---|---|---|---|---|")
    for preset in presets:
        base = None
        for variant in args.variants:
            b, times, peak = measure(
                preset, variant, args.device, args.batch_size, args.steps, args.backend
            )
            rate = 1.0 / statistics.median(times)
            base = rate if variant == "sagan" else base
            ratio = f"{rate / base:.2f}x" if base and variant != "sagan" else ""
            print(f"| {preset} | {variant} | {b} | {rate:.3f} | {peak:.0f} | {ratio} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
