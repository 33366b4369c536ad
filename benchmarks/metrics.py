"""Throughput of evaluation: Inception feature extraction, and generation + features.

    python benchmarks/metrics.py                      # CPU, a few images, extrapolated
    python benchmarks/metrics.py --device cuda --n 50000 --batch-size 250

Reports images/s of (1) the FID Inception alone on uint8 images of the given resolution
(TF1 resize to 299 included) and (2) ``evaluate_generator`` end to end (YLG-SAGAN generator at
that resolution, 1000 classes, FID + IS against synthetic reference statistics), with the time
that 50,000 samples would take. The weights are random unless --inception-weights is given:
the speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import torch

from ylg.metrics import (
    InceptionV3FID,
    ReferenceStats,
    evaluate_generator,
    fid_from_statistics,
    load_inception,
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_features(inception, device, n: int, batch_size: int, resolution: int) -> float:
    """Images/s of Inception on uint8 images [B, 3, R, R] already on the device."""
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (batch_size, 3, resolution, resolution), generator=g)
    batch = batch.to(torch.uint8).to(device)
    with torch.no_grad():
        inception(batch)  # warm-up (cuDNN autotune, allocator)
        sync(device)
        done, t0 = 0, time.perf_counter()
        while done < n:
            inception(batch)
            done += batch_size
        sync(device)
    return done / (time.perf_counter() - t0)


def bench_fid_solve() -> float:
    """Seconds of the fixed cost of one FID: the eigenvalues of a 2048x2048 S1 @ S2."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4096, 2048)), rng.normal(size=(4096, 2048))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    t0 = time.perf_counter()
    fid_from_statistics(a.mean(0), s1, b.mean(0), s2)
    return time.perf_counter() - t0


def bench_end_to_end(
    inception, device, n: int, batch_size: int, resolution: int
) -> tuple[float, float]:
    """(images/s, seconds) of evaluate_generator: generation + quantisation + features + FID/IS."""
    from ylg.models import Generator

    G = Generator(resolution, num_classes=1000, attention="ylg").to(device).eval()
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4096, 2048))
    reference = ReferenceStats(
        mu=a.mean(0), sigma=np.cov(a, rowvar=False), n=len(a), resolution=resolution,
        extractor=inception.extractor_id, source="synthetic",
    )  # fmt: skip
    kwargs = dict(reference=reference, metrics=("fid", "is"), batch_size=batch_size)
    evaluate_generator(G, n=max(batch_size, 10), device=device, inception=inception,
                       progress=False, **kwargs)  # fmt: skip  # warm-up
    sync(device)
    t0 = time.perf_counter()
    evaluate_generator(G, n=n, device=device, inception=inception, progress=True, **kwargs)
    sync(device)
    seconds = time.perf_counter() - t0
    return n / seconds, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, default=None, help="images per measurement")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--inception-weights", default=None)
    p.add_argument("--skip-end-to-end", action="store_true")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    warnings.filterwarnings("ignore", message=".*fewer than the feature dimension")

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    n = args.n or (5000 if cuda else 16)
    batch_size = args.batch_size or (250 if cuda else 8)
    if args.inception_weights:
        inception = load_inception(args.inception_weights, device=device)
    else:
        inception = InceptionV3FID().to(device).eval()
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    threads = torch.get_num_threads()
    print(f"device {device} ({name}), {threads} CPU threads, torch {torch.__version__}")

    results = {"device": str(device), "device_name": name, "threads": threads,
               "resolution": args.resolution, "batch_size": batch_size, "n": n}  # fmt: skip
    ips = bench_features(inception, device, n, batch_size, args.resolution)
    results["features_img_per_s"] = ips
    print(f"features only:       {ips:9.1f} img/s   (50,000 images: {50000 / ips / 60:7.1f} min)")
    fid_s = bench_fid_solve()
    results["fid_solve_s"] = fid_s
    print(f"one FID from statistics (2048x2048 eigenvalues): {fid_s:.1f} s")
    if not args.skip_end_to_end:
        ips, seconds = bench_end_to_end(inception, device, n, batch_size, args.resolution)
        per_image = max(seconds - fid_s, 0.0) / n  # the FID solve is a fixed cost
        estimate = 50000 * per_image + fid_s
        results.update(end_to_end_s=seconds, end_to_end_img_per_s=ips, estimated_50k_s=estimate)
        print(
            f"generate + features: {ips:9.1f} img/s over {n} images ({seconds:.1f} s, one FID "
            f"included); 50,000 images: ~{estimate / 60:.1f} min"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
