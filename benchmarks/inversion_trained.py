"""Inversion on held-out emoji with *trained* models: does D's attention help, with power?

The YLG paper (Sec. 6) claims that inverting G through the discriminator's attention-weighted
features recovers real images better than the pixel loss. ``benchmarks/inversion.py`` tested
it on models trained for 141 steps, whose attention was untrained, so it could not test the
claim. This benchmark runs on the trained emoji models (``emoji32-ylg``, ``emoji32-sagan``)
and first checks that the test *can* say something:

**Preconditions** (recorded in the JSON; the run refuses when the last one fails unless
``--force``, and then flags it): D's attention ``gamma``; the range of its ``relative`` maps
on the targets; the median correlation across targets of the ``code`` saliency maps, over
the heads the ``original`` objective uses together and **per head**, and per head again after
dividing out the mask-only map (what the learned attention adds). The refusal rule: every
head that ``original`` weights must have a median correlation <= 0.9 after the mask-only map
is divided out; above that, its map barely depends on the image, and no attention arm can
differ from its controls.

**Arms** (same targets, latents, steps, restarts, optimiser; each keeps, per target, the
restart with the lowest final value of its own loss): ``step0`` (G at the first starting
latent, no optimisation), ``pixel``, ``features``, ``saliency-heads``, ``original`` (the
authors' objective), and the controls with the ``original`` objective where only the maps
change: ``mask-only`` (the YLG D's ``code`` maps with each head's attention replaced by
uniform weights inside its mask: what the maps would be if the attention had learned
nothing), ``uniform`` (all ones: differs from ``original`` also by the fixed mask term),
``shuffled`` (the maps of another target), ``dense-hybrid`` (the ``code`` maps of the trained
dense ``sagan`` D, all its heads, weighting the *YLG* D's features: a hybrid, not the paper's
method on the dense model). Optimiser of every arm: the
original code's Adam, lr 0.07, no Lookahead; latents: truncated normal (2 std).

**Metrics** per target: the L2 distance of the FID Inception's pool features (2048-d; no arm
optimises it) -- the primary metric; a mid-level spatial distance (Inception ``Mixed_5d``,
288 x 35 x 35: channel vectors unit-normalised per position, mean squared difference, as
LPIPS does without learned weights); PSNR and SSIM (the pixel arm's own objective: they
favour it by construction).

**Contrasts**: every arm vs ``pixel``; ``original`` vs each control; paired per target
(metric averaged over seeds first), mean, 95% t-interval and the paired t-test's p; per seed
as well. **The primary contrast is declared before the run**: ``original - mask-only`` on the
Inception pool distance (does the learned attention help?); every other contrast x metric is
secondary, its p corrected by Holm's method over all of them. Per-target arrays are in the
JSON, so any contrast can be recomputed.

Resumable: each (seed, arm, chunk of targets) writes its per-target metrics to
``--state DIR`` when it finishes; a rerun skips what is there (a kill loses at most one
chunk). ``--curves K`` first records the loss curves of ``pixel`` and ``original`` on K
targets (to choose ``--steps`` where they plateau).

    python benchmarks/inversion_trained.py --ylg emoji32-ylg --sagan emoji32-sagan \\
        --targets data/openmoji32.npz --n 40 --seeds 0 1 --steps 300 --restarts 4 \\
        --state data/inv-state --out benchmarks/results/inversion-trained.json

On a GPU machine without the FID weights, ``--device cuda --reconstruct-only`` only inverts,
keeping each chunk's reconstructions (``.rec.npz``) in ``--state``; the same command without
``--reconstruct-only`` on a machine with the weights then computes the metrics from them
(the v2 run: ``--chunk 40``, ``--state data/inv-state-v2``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ylg.attention.analysis import mask_only_saliency, median_cross_correlation, saliency_maps
from ylg.inversion import initial_latents, invert, psnr, ssim
from ylg.inversion.losses import original_heads
from ylg.metrics.quantize import to_uint8
from ylg.models.pretrained import PRETRAINED, WEIGHTS_DIR, load_models
from ylg.runtime.files import atomic_write_text
from ylg.runtime.machine import machine_record

ARMS = (
    "step0",
    "pixel",
    "features",
    "saliency-heads",
    "original",
    "mask-only",
    "uniform",
    "shuffled",
    "dense-hybrid",
)
CONTROLS = ("mask-only", "uniform", "shuffled", "dense-hybrid")
PRIMARY = ("original - mask-only", "inception_dist")
METRICS = ("inception_dist", "inception_mid", "psnr", "ssim")
MAX_CORRELATION = 0.9


def model_hashes(source: str) -> dict | None:
    """The SHA-256 of G and D that a shipped model or model folder's ``model.json`` records
    (so the JSON says exactly which weights were inverted); None for a run folder."""
    folder = WEIGHTS_DIR / source if source in PRETRAINED else Path(source)
    meta = folder / "model.json"
    if not meta.is_file():
        return None
    sha = json.loads(meta.read_text())["sha256"]
    return {k: sha[k] for k in ("G.safetensors", "D.safetensors") if k in sha}


def load_targets(path: str, n: int, resolution: int, seed: int = 0):
    """``n`` images drawn without replacement (fixed ``seed``): floats in [-1, 1], uint8,
    labels, indices into the file."""
    data = np.load(path)
    images = data["images"]  # [N, R, R, 3]
    if images.shape[1] != resolution:
        raise SystemExit(f"{path} holds {images.shape[1]} px images; the model makes {resolution}")
    if n > len(images):
        raise SystemExit(f"n={n} targets asked but {path} holds only {len(images)} images")
    idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    u8 = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).contiguous()  # [n, 3, R, R]
    return u8.float() / 127.5 - 1, u8, torch.from_numpy(data["labels"][idx]).long(), idx.tolist()


class InceptionDistances:
    """Pool-feature L2 and the Mixed_5d spatial distance of images to their targets."""

    def __init__(self, inception, targets_u8: torch.Tensor):
        self.net = inception
        self._mid = None
        inception.Mixed_5d.register_forward_hook(lambda m, i, o: setattr(self, "_mid", o))
        self.t_pool, self.t_mid = self.features(targets_u8)

    @torch.no_grad()
    def features(self, u8: torch.Tensor):
        pools, mids = [], []
        for s in range(0, len(u8), 16):
            pool, _ = self.net(u8[s : s + 16])
            pools.append(pool.double().cpu())
            mids.append(F.normalize(self._mid.double(), dim=1).cpu())  # [b, 288, 35, 35]
        return torch.cat(pools), torch.cat(mids)

    def __call__(self, u8: torch.Tensor, index: list[int]) -> dict[str, list[float]]:
        pool, mid = self.features(u8)
        return {
            "inception_dist": (pool - self.t_pool[index]).norm(dim=1).tolist(),
            "inception_mid": (mid - self.t_mid[index]).pow(2).sum(1).mean((1, 2)).tolist(),
        }


def preconditions(D, x: torch.Tensor, heads) -> dict:
    """gamma, map ranges, and how much the maps depend on the image: the median cross-target
    correlation of the code maps (heads together, per head, and per head after dividing out
    the mask-only map); ``ok`` by the rule of the module docstring."""
    code = saliency_maps(D, x, normalization="code", heads=heads)
    rel = saliency_maps(D, x, normalization="relative")
    mask_only = mask_only_saliency(D, x, normalization="code", heads=heads)
    learned = code / mask_only.clamp_min(1e-12)  # 1 = what the mask alone gives
    per_head = [median_cross_correlation(code[:, h]) for h in range(code.shape[1])]
    per_head_learned = [median_cross_correlation(learned[:, h]) for h in range(code.shape[1])]
    return {
        "gamma": D.attention.gamma.item(),
        "relative_map_range": [float(rel.min()), float(rel.max())],
        "relative_map_p5_p95": [float(rel.quantile(0.05)), float(rel.quantile(0.95))],
        "code_map_correlation_median": median_cross_correlation(code),
        "code_map_correlation_median_per_head": per_head,
        "learned_map_correlation_median_per_head": per_head_learned,
        "ok": max(per_head_learned) <= MAX_CORRELATION,
    }


def ci95(values) -> dict:
    """Mean, 95% t-interval and the paired t-test's two-sided p of per-target differences."""
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    mean = float(a.mean())
    if len(a) < 2:
        return {"mean": mean, "ci95": [mean, mean], "n": len(a), "p": None}
    sd = a.std(ddof=1)
    half = float(stats.t.ppf(0.975, len(a) - 1) * sd / math.sqrt(len(a)))
    p = float(stats.ttest_1samp(a, 0.0).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": len(a), "p": p}


def holm(pvalues: dict) -> dict:
    """Holm-adjusted p-values (step-down, monotone) of ``{key: p}``; None stays None."""
    keys = sorted((k for k, p in pvalues.items() if p is not None), key=lambda k: pvalues[k])
    m, out, running = len(keys), {k: None for k in pvalues}, 0.0
    for i, k in enumerate(keys):
        running = max(running, min(1.0, (m - i) * pvalues[k]))
        out[k] = running
    return out


def plateau_step(curve: np.ndarray, tol: float = 0.01) -> int:
    """First step after which the curve never again falls more than ``tol`` of its total
    drop below its value there."""
    drop = curve[0] - curve[-1]
    if drop <= 0:
        return 0
    future_min = np.minimum.accumulate(curve[::-1])[::-1]
    ok = (curve - future_min) <= tol * drop
    return int(np.argmax(ok))


def run_curves(args, G, D, x, labels, out: dict) -> None:
    k = min(args.curves, len(x))
    curves = {}
    for arm in ("pixel", "original"):
        r = invert(
            G, D, x[:k], labels[:k] if labels is not None else None, method=arm,
            steps=args.curve_steps, lr=args.lr, restarts=args.restarts, seed=0,
            lookahead=False, batch_size=k,
        )  # fmt: skip
        best = r.history[torch.arange(k), r.best]  # [k, steps + 1]
        norm = (best / best[:, :1]).mean(0).numpy()  # loss relative to the start, mean
        curves[arm] = {
            "mean_relative_loss": norm[:: max(1, args.curve_steps // 100)].tolist(),
            "every": max(1, args.curve_steps // 100),
            "plateau_step_1pct": plateau_step(norm, 0.01),
            "plateau_step_5pct": plateau_step(norm, 0.05),
        }
        print(f"curve {arm}: plateau (1% of drop) at step {curves[arm]['plateau_step_1pct']}, "
              f"(5%) at {curves[arm]['plateau_step_5pct']}", file=sys.stderr)  # fmt: skip
    out["curves"] = {"targets": k, "steps": args.curve_steps, **curves}


def chunk_metrics(rec, x, idx, dist) -> dict:
    m = dist(to_uint8(rec), idx)
    m["psnr"] = [float(v) for v in psnr(x[idx].cpu(), rec)]
    m["ssim"] = [float(v) for v in ssim(x[idx].cpu(), rec)]
    return m


def run_arm_chunk(args, arm, seed, G, D, x, labels, idx, controls):
    xs = x[idx]
    ys = labels[idx] if labels is not None else None
    if arm == "step0":
        z = initial_latents(len(idx) * args.restarts, int(G.z_dim), seed).view(
            len(idx), args.restarts, -1
        )
        with torch.no_grad():
            return G(z[:, 0].to(xs.device), ys).float().cpu()
    kw = {"method": arm}
    if arm in CONTROLS:
        kw = {"method": "original", "saliency": controls[arm][idx]}
    r = invert(
        G, D, xs, ys, steps=args.steps, lr=args.lr, restarts=args.restarts, seed=seed,
        lookahead=False, batch_size=len(idx), **kw,
    )  # fmt: skip
    return r.reconstructions.float().cpu()


def reconstruct(args, f: Path, arm, seed, G, D, x, labels, index, controls):
    """One chunk's reconstructions (float, CPU), the seconds they took and the device they
    were made on: read from ``f``'s ``.rec.npz`` beside it when a ``--reconstruct-only`` run
    left one there, else inverted now (and kept there when ``--reconstruct-only``)."""
    kept = f.with_suffix(".rec.npz")
    if kept.is_file():
        z = np.load(kept)
        return torch.from_numpy(z["rec"]), float(z["seconds"]), str(z["device"])
    t = time.perf_counter()
    rec = run_arm_chunk(args, arm, seed, G, D, x, labels, index, controls)
    seconds, where = time.perf_counter() - t, str(x.device)
    if args.reconstruct_only:
        tmp = kept.with_name(kept.name + ".tmp.npz")
        np.savez(tmp, rec=rec.numpy(), seconds=seconds, device=where)
        tmp.replace(kept)
    return rec, seconds, where


def summarise(per_target: dict, arms: list[str]) -> dict:
    """Means, paired contrasts (per target, averaged over seeds first) and the same per seed;
    the declared primary contrast, and Holm-corrected p-values of all the others."""
    res: dict = {"arms": {}, "contrasts": {}, "contrasts_per_seed": {}}
    arr = {a: {m: np.asarray(per_target[a][m]) for m in METRICS} for a in arms}  # [seeds, n]
    avg = {a: {m: np.nanmean(arr[a][m], 0) for m in METRICS} for a in arms}
    for a in arms:
        res["arms"][a] = {m: float(np.nanmean(avg[a][m])) for m in METRICS}
    pairs = [(a, "pixel") for a in arms if a != "pixel"]
    pairs += [("original", c) for c in CONTROLS if c in arms]
    for a, b in pairs:
        if a in arms and b in arms:
            key = f"{a} - {b}"
            res["contrasts"][key] = {m: ci95(avg[a][m] - avg[b][m]) for m in METRICS}
            res["contrasts_per_seed"][key] = {
                m: [ci95(arr[a][m][s] - arr[b][m][s]) for s in range(arr[a][m].shape[0])]
                for m in METRICS
            }
    primary_key, primary_metric = PRIMARY
    secondary = {
        (k, m): c[m]["p"] for k, c in res["contrasts"].items() for m in METRICS if (k, m) != PRIMARY
    }
    adjusted = holm(secondary)
    for (k, m), p in adjusted.items():
        res["contrasts"][k][m]["p_holm"] = p
    res["primary"] = {
        "contrast": primary_key,
        "metric": primary_metric,
        "declared": "before the run, in the benchmark's docstring (issue 27)",
        "result": res["contrasts"].get(primary_key, {}).get(primary_metric),
        "secondary_correction": f"Holm over {len(secondary)} secondary contrast x metric pairs",
    }
    return res


def plot_contrasts(contrasts: dict, path: Path, title: str) -> Path:
    """Forest plot: each paired contrast's mean and 95% interval, one panel per metric
    (distances: left of 0 is better for the first arm; PSNR: right of 0 is)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(contrasts)
    shown = (
        ("inception_dist", "Δ Inception pool distance\n(primary; < 0: first arm better)"),
        ("inception_mid", "Δ Mixed_5d distance\n(< 0: first arm better)"),
        ("psnr", "Δ PSNR, dB (> 0: first arm better;\nthe pixel arm's own objective)"),
    )
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 0.42 * len(names) + 1.4))
    y = np.arange(len(names))[::-1]
    for ax, (metric, label) in zip(axes, shown):
        mean = np.array([contrasts[n][metric]["mean"] for n in names])
        low = np.array([contrasts[n][metric]["ci95"][0] for n in names])
        high = np.array([contrasts[n][metric]["ci95"][1] for n in names])
        excludes = (low > 0) | (high < 0)
        ax.axvline(0, color="0.6", lw=1)
        ax.hlines(y, low, high, color=np.where(excludes, "#c53030", "#2b6cb0"), lw=2)
        ax.plot(mean, y, "o", color="black", ms=4)
        ax.set_yticks(y)
        ax.set_yticklabels(names if ax is axes[0] else [])
        ax.set_xlabel(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def reconstructions_figure(state: Path, arms, x_u8, seed, chunk, steps, restarts, path):
    """Targets (first row) and each arm's reconstructions of one chunk of targets (one seed),
    from the ``.npy`` files of ``--state``; enlarged 3x (nearest) so 32 px glyphs are seen."""
    from ylg.viz.grids import make_grid, save_image

    rows, labels = [x_u8[:chunk]], ["target"]
    for arm in arms:
        f = state / f"seed{seed}-{arm}-chunk0-of{chunk}-{steps}x{restarts}.npy"
        if f.is_file():
            rows.append(torch.from_numpy(np.load(f)))
            labels.append(arm)
    grid = torch.cat(rows)  # [rows * chunk, 3, R, R] uint8
    big = F.interpolate(grid.float(), scale_factor=3, mode="nearest").round().to(torch.uint8)
    save_image(make_grid(big, nrow=len(rows[0]), row_labels=labels), path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ylg", required=True, help="pretrained name or run dir of the YLG model")
    p.add_argument("--sagan", default=None, help="pretrained name or run dir of the dense model")
    p.add_argument("--targets", required=True, help="npz of held-out images (images, labels)")
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--restarts", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.07)
    p.add_argument("--chunk", type=int, default=8, help="targets inverted together")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--curves", type=int, default=0, help="loss curves on K targets first")
    p.add_argument("--curve-steps", type=int, default=600)
    p.add_argument("--curves-only", action="store_true")
    p.add_argument("--force", action="store_true", help="run even if the maps fail the check")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", help="where G and D run (cpu, cuda)")
    p.add_argument(
        "--reconstruct-only", action="store_true",
        help="only invert, keeping each chunk's reconstructions in --state (no Inception): "
        "a later run with the same --state computes the metrics, e.g. on a machine that "
        "has the FID weights",
    )  # fmt: skip
    p.add_argument("--state", required=True, help="folder of finished chunks (resumable)")
    p.add_argument("--out", default="benchmarks/results/inversion-trained.json")
    p.add_argument("--plot", default=None, help="forest plot of the contrasts (PNG)")
    p.add_argument("--figure", default=None, help="targets and reconstructions, seed 0 (PNG)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    m = load_models(args.ylg, device)
    G, D = m.G, m.D
    x, x_u8, labels, idx = load_targets(args.targets, args.n, int(G.resolution))
    x = x.to(device)
    labels = labels.to(device) if G.num_classes else None
    heads = original_heads(D.attention)
    out: dict = {"protocol": {
        "model": f"{args.ylg} (step {m.step})", "dense_model": args.sagan,
        "targets": f"{args.targets}: {args.n} drawn with seed 0, indices {idx}",
        "class": "known (the target's label)", "seeds": args.seeds, "steps": args.steps,
        "restarts": args.restarts, "optimiser": f"Adam lr {args.lr}, no Lookahead",
        "chunk": args.chunk, "original_heads": list(heads), "threads": torch.get_num_threads(),
        "model_sha256": model_hashes(args.ylg), "dense_model_sha256": (
            model_hashes(args.sagan) if args.sagan else None),
        "machine": machine_record(),
    }}  # fmt: skip
    pre = preconditions(D, x, heads)
    out["preconditions"] = pre
    print(json.dumps(pre), file=sys.stderr)
    if not pre["ok"]:
        worst = max(pre["learned_map_correlation_median_per_head"])
        msg = (f"a head that original weights has a median cross-target correlation of "
               f"{worst:.3f} > {MAX_CORRELATION} once the mask-only map is divided out: its "
               "map barely depends on the image")  # fmt: skip
        if not args.force:
            raise SystemExit("refused: " + msg + " (--force to run anyway)")
        print("WARNING: " + msg, file=sys.stderr)
        out["preconditions"]["warning"] = msg
    if args.curves:
        run_curves(args, G, D, x, labels, out)
        atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
        if args.curves_only:
            return 0
    code = saliency_maps(D, x, normalization="code", heads=heads)
    controls = {
        "mask-only": mask_only_saliency(D, x, normalization="code", heads=heads),
        "uniform": torch.ones_like(code),
        "shuffled": code.roll(1, dims=0),
    }
    if args.sagan:
        sagan = load_models(args.sagan, device)
        controls["dense-hybrid"] = saliency_maps(sagan.D, x, normalization="code")
        out["preconditions"]["dense-hybrid"] = preconditions(sagan.D, x, None)
    arms = [a for a in args.arms if a != "dense-hybrid" or "dense-hybrid" in controls]

    dist = None
    if not args.reconstruct_only:
        from ylg import metrics

        dist = InceptionDistances(metrics.load_inception(progress=False), x_u8)
    chunks = [list(range(s, min(s + args.chunk, args.n))) for s in range(0, args.n, args.chunk)]
    per_target = {
        a: {m_: np.full((len(args.seeds), args.n), np.nan) for m_ in METRICS} for a in arms
    }
    for si, seed in enumerate(args.seeds):
        for arm in arms:
            for ci, index in enumerate(chunks):
                f = (
                    state
                    / f"seed{seed}-{arm}-chunk{ci}-of{args.chunk}-{args.steps}x{args.restarts}.json"
                )
                if not f.is_file():
                    rec, seconds, where = reconstruct(
                        args, f, arm, seed, G, D, x, labels, index, controls
                    )
                    if args.reconstruct_only:
                        total = time.perf_counter() - t0
                        print(f"seed {seed} {arm} chunk {ci}: {seconds:.1f} s on {where} "
                              f"(total {total:.0f} s)", file=sys.stderr)  # fmt: skip
                        continue
                    row = chunk_metrics(rec, x, index, dist)
                    row.update(seconds=seconds, device=where)
                    atomic_write_text(f, json.dumps(row) + "\n")
                    np.save(f.with_suffix(".npy"), to_uint8(rec).numpy())
                    print(f"seed {seed} {arm} chunk {ci}: {seconds:.0f} s, pool dist "
                          f"{np.mean(row['inception_dist']):.2f} (total "
                          f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)  # fmt: skip
                row = json.loads(f.read_text())
                for m_ in METRICS:
                    per_target[arm][m_][si, index] = row[m_]
    if args.reconstruct_only:
        atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
        return 0
    out.update(summarise(per_target, arms))
    out["per_target"] = {a: {m_: v.tolist() for m_, v in d.items()} for a, d in per_target.items()}
    out["protocol"]["seconds_total_this_call"] = time.perf_counter() - t0
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    if args.plot:
        title = (f"Inversion of {args.n} held-out OpenMoji targets, {len(args.seeds)} seeds x "
                 f"{args.restarts} restarts x {args.steps} steps: paired contrasts, 95% CI "
                 "(red: excludes 0)")  # fmt: skip
        plot_contrasts(out["contrasts"], Path(args.plot), title)
    if args.figure:
        reconstructions_figure(
            state, arms, x_u8, args.seeds[0], args.chunk, args.steps, args.restarts,
            Path(args.figure),
        )  # fmt: skip
    print("| arm | Inception pool dist. | Mixed_5d dist. | PSNR | SSIM |\n|---|---|---|---|---|")
    for a, e in out["arms"].items():
        print(f"| {a} | {e['inception_dist']:.3f} | {e['inception_mid']:.4f} | "
              f"{e['psnr']:.2f} | {e['ssim']:.3f} |")  # fmt: skip
    print("\n| contrast | Δ pool dist. [95% CI] | Δ Mixed_5d [95% CI] | Δ PSNR [95% CI] |")
    print("|---|---|---|---|")
    for k, c in out["contrasts"].items():
        cells = [f"{c[m_]['mean']:+.3f} [{c[m_]['ci95'][0]:+.3f}, {c[m_]['ci95'][1]:+.3f}]"
                 for m_ in ("inception_dist", "inception_mid", "psnr")]  # fmt: skip
        print(f"| {k} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
