"""Inversion on held-out emoji: does weighting D's features by its attention beat pixels?

The YLG paper (Sec. 6) claims that inverting a generator through the discriminator's
attention-weighted features recovers real images better than the pixel loss. This benchmark
tests that claim on targets **outside G's range**: emoji of a style held out from training
(OpenMoji; G and D were trained on Twemoji / Noto / Fluent), with the class known (as in the
original code, which is given the category).

Arms (every arm: the same targets, latents, steps, restarts and optimiser; each arm keeps,
per target, the restart with the lowest final value of its *own* loss):

- ``pixel``: mean squared pixel error (the baseline);
- ``features``: mean squared error of D0 features (D up to its attention layer);
- ``saliency-heads``, ``saliency``, ``generator-saliency``: ylg's losses (the paper's
  Eqs. 3, 2, 4 with the ``paper`` normalisation, see docs/inversion.md);
- ``original``: the authors' objective (RTL heads 0-3, ``code`` normalisation, sum of
  unsquared per-head norms, norms over each target's restarts);
- controls, all with the ``original`` objective and the same D0 features, only the maps
  change: ``uniform`` (every map 1), ``shuffled`` (the maps of another target),
  ``dense`` (the maps of a dense SAGAN discriminator's attention on the target, ``code``
  normalisation, all its heads).

The optimiser of every arm is the original code's: Adam, lr 0.07, no Lookahead; latents
start from a truncated normal (2 std), the same for every arm (``seed``).

Metrics per target (reconstruction vs target): PSNR and SSIM, and a perceptual distance no
arm optimises: the L2 distance between the FID Inception's pool features (2048-d). Per arm:
means over targets and seeds, and the paired per-target difference to ``pixel`` (metric
averaged over seeds first) with a 95% confidence interval (t distribution over targets).

Usage::

    flock /tmp/ylg-cpu.lock python benchmarks/inversion.py \\
        --ylg data/table1-emoji64/ylg-seed0 --sagan data/table1-emoji64/sagan-seed0 \\
        --targets data/openmoji64.npz --n 100 --seeds 0 1 --steps 150 --restarts 2

Writes ``benchmarks/results/inversion.json`` (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ylg.inversion import invert, psnr, saliency_maps, ssim
from ylg.inversion.losses import original_heads
from ylg.runtime.device import resolve_device

ARMS = (
    "pixel",
    "features",
    "saliency-heads",
    "saliency",
    "generator-saliency",
    "original",
    "uniform",
    "shuffled",
    "dense",
)
METRICS = ("psnr", "ssim", "inception_dist")


def load_targets(path: str, n: int, resolution: int, seed: int = 0):
    """``n`` images of the npz drawn without replacement (fixed ``seed``): floats
    ``[n, 3, R, R]`` in [-1, 1], uint8 ``[n, 3, R, R]``, labels ``[n]``, indices."""
    data = np.load(path)
    images = data["images"]  # [N, R, R, 3] uint8
    if images.shape[1] != resolution:
        raise ValueError(
            f"{path} holds {images.shape[1]}x{images.shape[2]} images but the model makes "
            f"{resolution}x{resolution}; use the matching file"
        )
    if n > len(images):
        raise ValueError(f"n={n} targets asked but {path} holds only {len(images)} images")
    idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    u8 = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).contiguous()  # [n, 3, R, R]
    x = u8.float() / 127.5 - 1
    labels = torch.from_numpy(data["labels"][idx]).long()
    return x, u8, labels, idx.tolist()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def get_inception(kind: str):
    """(model, description). ``auto``: the true FID weights if they load, else random."""
    from ylg.metrics.inception import InceptionV3FID

    if kind in ("auto", "true"):
        try:
            from ylg.metrics import load_inception

            model = load_inception(progress=False)
            return model, f"FID Inception-v3, true weights ({model.extractor_id})"
        except Exception as err:  # noqa: BLE001 - any failure to load means: fall back
            if kind == "true":
                raise
            print(f"true Inception weights unavailable ({err}); RANDOM weights", file=sys.stderr)
    torch.manual_seed(0)
    return InceptionV3FID().eval(), "RANDOM-WEIGHT Inception-v3 (development only, not perceptual)"


def ci95(values: list[float]) -> dict:
    """Mean and 95% t-interval of ``values``."""
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    n = len(a)
    mean = float(a.mean())
    if n < 2:
        return {"mean": mean, "ci95": [mean, mean], "n": n}
    half = float(stats.t.ppf(0.975, n - 1) * a.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ylg", required=True, help="run dir / checkpoint of the YLG model (G, D)")
    p.add_argument("--sagan", default=None, help="run dir / checkpoint of a dense SAGAN (D)")
    p.add_argument("--targets", required=True, help="npz of held-out images (images, labels)")
    p.add_argument("--n", type=int, default=100, help="targets")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="latent seeds")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--restarts", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.07)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--inception", default="auto", choices=("auto", "true", "random"))
    p.add_argument(
        "--inception-seeds",
        type=int,
        default=0,
        help="compute the Inception distance on the first N seeds only (0 = all; it costs "
        "~0.25 s per image on 2 CPU cores)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=0,
        help="skip the remaining (seed, arm) runs once the inversions have taken this long "
        "(0 = no limit); skipped runs are listed in the JSON",
    )
    p.add_argument("--out", default="benchmarks/results/inversion.json")
    p.add_argument("--save-images", default=None, help="npz of targets and reconstructions")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if "dense" in args.arms and not args.sagan:
        raise SystemExit("arm 'dense' needs --sagan (a dense-attention checkpoint)")
    t_start = time.perf_counter()
    device = resolve_device(args.device)

    from ylg.models.loading import load_for_inference

    models = load_for_inference(args.ylg, device=device)
    G, D = models.G, models.D
    R = int(G.resolution)
    x, x_u8, labels, idx = load_targets(args.targets, args.n, R)
    x = x.to(device)
    labels = labels if G.num_classes else None
    heads = original_heads(D.attention)

    # -- Saliency maps of the controls (computed once, on the targets) --------------------
    code = saliency_maps(D, x, normalization="code", heads=heads)  # [n, 4, hk, wk]
    controls = {
        "uniform": torch.ones_like(code),
        # a derangement: target i gets the maps of target i + 1 (targets are in random order)
        "shuffled": code.roll(1, dims=0),
    }
    sagan_desc = None
    if args.sagan:
        sagan = load_for_inference(args.sagan, device=device)
        dense = saliency_maps(sagan.D, x, normalization="code")  # [n, heads_s, hk, wk]
        if dense.shape[-2:] != code.shape[-2:]:
            raise SystemExit(
                f"the SAGAN D's key grid {tuple(dense.shape[-2:])} differs from the YLG D's "
                f"{tuple(code.shape[-2:])}"
            )
        controls["dense"] = dense
        sagan_desc = f"{sagan.path} (step {sagan.step})"

    def arm_kwargs(arm: str) -> dict:
        if arm in controls:
            return {"method": "original", "saliency": controls[arm]}
        return {"method": arm}

    protocol = {
        "n_images": args.n,
        "seeds": args.seeds,
        "steps": args.steps,
        "restarts": args.restarts,
        "optimiser": f"Adam lr {args.lr}, no Lookahead (every arm)",
        "model": f"{models.path} (step {models.step})",
        "dense_model": sagan_desc,
        "targets": f"{args.targets}: indices {idx[:5]}... ({args.n} drawn with seed 0)",
        "class": "known (the target's label)" if labels is not None else "unconditional",
        "original_heads": list(heads),
        "inception_seeds": args.seeds[: args.inception_seeds or len(args.seeds)],
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(protocol, indent=1), file=sys.stderr)

    # -- Invert: one batched optimisation per arm and seed --------------------------------
    recons: dict[str, list[torch.Tensor]] = {a: [] for a in args.arms}
    seconds: dict[str, float] = {a: 0.0 for a in args.arms}
    skipped: list[str] = []
    for seed in args.seeds:
        for arm in args.arms:
            if args.max_seconds and time.perf_counter() - t_start > args.max_seconds:
                skipped.append(f"seed {seed} {arm}")
                continue
            t = time.perf_counter()
            r = invert(
                G, D, x, labels, steps=args.steps, lr=args.lr, restarts=args.restarts,
                seed=seed, lookahead=False, batch_size=args.n, **arm_kwargs(arm),
            )  # fmt: skip
            seconds[arm] += time.perf_counter() - t
            recons[arm].append(r.reconstructions.float().cpu())
            print(
                f"seed {seed} {arm}: {time.perf_counter() - t:.0f} s, "
                f"PSNR {np.mean(psnr(x.cpu(), recons[arm][-1])):.2f} dB "
                f"(total {time.perf_counter() - t_start:.0f} s)",
                file=sys.stderr,
            )

    # -- Metrics --------------------------------------------------------------------------
    t = time.perf_counter()
    inception, inception_desc = get_inception(args.inception)
    from ylg.metrics.features import extract_features

    f_target = extract_features(inception, x_u8)[0].double()  # [n, 2048]
    per_image: dict[str, dict[str, np.ndarray]] = {}  # arm -> metric -> [seeds, n]
    n_inception = args.inception_seeds or len(args.seeds)
    done = [a for a in args.arms if recons[a]]
    for arm in done:
        rows = {m: [] for m in METRICS}
        for k, rec in enumerate(recons[arm]):
            rows["psnr"].append(psnr(x.cpu(), rec))
            rows["ssim"].append(ssim(x.cpu(), rec))
            if k < n_inception:
                f_rec = extract_features(inception, to_uint8(rec))[0].double()
                rows["inception_dist"].append((f_rec - f_target).norm(dim=1).tolist())
        per_image[arm] = {m: np.asarray(v, dtype=np.float64) for m, v in rows.items()}
    metric_seconds = time.perf_counter() - t

    results: dict = {}
    base = per_image.get("pixel")
    for arm in done:
        entry: dict = {}
        for m in METRICS:
            v = per_image[arm][m]  # [seeds, n]
            entry[m] = float(v[np.isfinite(v)].mean())
            entry[f"{m}_per_seed"] = [float(s[np.isfinite(s)].mean()) for s in v]
        if base is not None:
            entry["delta_vs_pixel"] = {
                m: ci95((per_image[arm][m].mean(0) - base[m].mean(0)).tolist()) for m in METRICS
            }
        entry["seconds"] = seconds[arm]
        entry["seeds_run"] = len(recons[arm])
        results[arm] = entry
    protocol.update(
        skipped=skipped,
        inception=inception_desc,
        seconds_inversion=sum(seconds.values()),
        seconds_metrics=metric_seconds,
        seconds_total=time.perf_counter() - t_start,
    )
    out = {"protocol": protocol, "arms": results}
    write_json(Path(args.out), out)
    if args.save_images:
        np.savez_compressed(
            args.save_images,
            targets=x_u8.numpy(),
            **{a: to_uint8(torch.stack(recons[a])).numpy() for a in done},
        )

    # -- Table ----------------------------------------------------------------------------
    print(
        f"\n{args.n} held-out targets x {len(args.seeds)} seeds; {args.steps} steps x "
        f"{args.restarts} restarts; {inception_desc}\n"
    )
    print(
        "| arm | PSNR (dB) | SSIM | Inception dist. | ΔPSNR vs pixel [95% CI] "
        "| ΔSSIM vs pixel [95% CI] | ΔInception vs pixel [95% CI] |"
    )
    print("|---|---|---|---|---|---|---|")
    for arm, e in results.items():
        cells = [f"{e['psnr']:.2f}", f"{e['ssim']:.3f}", f"{e['inception_dist']:.4g}"]
        for m, fmt in (("psnr", ".2f"), ("ssim", ".3f"), ("inception_dist", ".3g")):
            d = e.get("delta_vs_pixel", {}).get(m)
            if d is None or arm == "pixel":
                cells.append("—")
            else:
                lo, hi = d["ci95"]
                cells.append(f"{d['mean']:+{fmt}} [{lo:+{fmt}}, {hi:+{fmt}}]")
        print(f"| {arm} | " + " | ".join(cells) + " |")
    print(f"\nwrote {args.out} ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
