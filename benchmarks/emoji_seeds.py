"""YLG vs SAGAN over training seeds: FID and KID of each run's checkpoint at one budget.

Each ``--runs`` entry is ``VARIANT:SEED:PATH`` (a run folder or checkpoint file; a folder
with ``--step N`` reads its ``ckpt-<N>.pt``). Every checkpoint is scored the same way: ``--n``
samples of its EMA generator (untruncated, random classes, sample seed 0) against ``--ref-n``
real images of ``--data``, true Inception weights, FID and KID (KID over subsets of
min(1000, n)). Then, per metric, the mean and standard deviation over seeds of each variant,
and the paired difference ``ylg - sagan`` over the seeds both have, with a t-interval over
seeds (95%, n - 1 degrees of freedom): the spread that comes from training, not from
sampling.

    python benchmarks/emoji_seeds.py --data data/emoji32-train.npz --step 2500 \\
        --runs ylg:0:runs/ship-ylg sagan:0:runs/ship-sagan ylg:1:runs/seed-ylg-1 ... \\
        --out benchmarks/results/ylg-vs-sagan-emoji32.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file
from scipy import stats as scipy_stats

from ylg import metrics
from ylg.models.loading import build_models
from ylg.models.pretrained import load_models
from ylg.runtime.files import atomic_write_text, file_digest
from ylg.runtime.machine import machine_record


def parse_run(text: str) -> tuple[str, int, str]:
    try:
        variant, seed, path = text.split(":", 2)
        return variant, int(seed), path
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not VARIANT:SEED:PATH") from None


def generator_only(path: Path):
    """G of a model folder that holds only ``G.safetensors`` and ``model.json`` (how seed runs
    come back from a GPU session: FID and KID need no D), its SHA-256 checked against
    ``model.json``; None for anything else."""
    meta_path = path / "model.json"
    if not (meta_path.is_file() and (path / "G.safetensors").is_file()):
        return None
    if (path / "D.safetensors").is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if file_digest(path / "G.safetensors") != meta["sha256"]["G.safetensors"]:
        raise SystemExit(f"{path / 'G.safetensors'} does not match {meta_path}")
    G, _ = build_models(meta["config"], meta["num_classes"], device="cpu")
    G.load_state_dict(load_file(path / "G.safetensors"))
    return SimpleNamespace(G=G.eval(), step=int(meta["step"]), config=meta["recipe"])


def checkpoint_of(path: str, step: int | None) -> Path:
    p = Path(path)
    if p.is_dir() and step is not None:
        return p / f"ckpt-{step:07d}.pt"
    return p


def paired(rows: list[dict], metric: str, a: str = "ylg", b: str = "sagan") -> dict | None:
    """Mean and 95% t-interval of ``a - b`` over the seeds both variants have."""
    by = {(r["variant"], r["seed"]): r[metric] for r in rows}
    seeds = sorted({s for v, s in by if v == a} & {s for v, s in by if v == b})
    if len(seeds) < 2:
        return None
    d = [by[(a, s)] - by[(b, s)] for s in seeds]
    mean, sd = statistics.mean(d), statistics.stdev(d)
    half = scipy_stats.t.ppf(0.975, len(d) - 1) * sd / len(d) ** 0.5
    return {"seeds": seeds, "diffs": d, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def summary(rows: list[dict]) -> dict:
    out: dict = {"per_variant": {}, "paired_ylg_minus_sagan": {}}
    for metric in ("fid", "kid"):
        for v in sorted({r["variant"] for r in rows}):
            xs = [r[metric] for r in rows if r["variant"] == v]
            out["per_variant"].setdefault(v, {})[metric] = {
                "n_seeds": len(xs),
                "mean": statistics.mean(xs),
                "sd": statistics.stdev(xs) if len(xs) > 1 else None,
                "values": xs,
            }
        out["paired_ylg_minus_sagan"][metric] = paired(rows, metric)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", type=parse_run, required=True)
    p.add_argument("--step", type=int, default=None, help="read ckpt-<step>.pt of folders")
    p.add_argument("--data", required=True, help="npz of the real training images")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--ref-n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/ylg-vs-sagan-emoji32.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    inception = metrics.load_inception(progress=False)
    ref = metrics.reference_stats(
        args.data, 32, n=args.ref_n, inception=inception, keep_features=args.ref_n, progress=False
    )
    out: dict = {
        "protocol": {
            "reference": f"{Path(args.data).name} (sha256 {file_digest(args.data)[:16]}): "
            f"{ref.n} images at 32 px ({ref.extractor})",
            "n_generated": args.n,
            "step": args.step,
            "samples": "EMA generator, untruncated, random classes, sample seed 0",
            "machine": machine_record(threads=torch.get_num_threads()),
        },
        "rows": [],
    }
    if Path(args.out).is_file():  # resumable: rows already scored at this budget are kept
        old = json.loads(Path(args.out).read_text())
        if (
            old["protocol"].get("step") == args.step
            and old["protocol"]["reference"] == (out["protocol"]["reference"])
        ):
            out["rows"] = old["rows"]
    done = {(r["variant"], r["seed"]) for r in out["rows"]}
    for variant, seed, path in args.runs:
        if (variant, seed) in done:
            continue
        file = checkpoint_of(path, args.step)
        t = time.perf_counter()
        m = generator_only(file) or load_models(file)
        values = metrics.evaluate_generator(
            m.G, n=args.n, reference=ref, metrics=("fid", "kid"), inception=inception,
            kid_subset_size=min(1000, args.n, args.ref_n), seed=0, progress=False,
        )  # fmt: skip
        meta = Path(file) / "model.json"  # a model folder keeps the batch in its recipe
        recipe = json.loads(meta.read_text())["recipe"] if meta.is_file() else m.config
        batch = recipe.get("batch_size")
        row = {"variant": variant, "seed": seed, "run": Path(path).name, "step": m.step,
               "images_seen": m.step * batch if batch else None, **values,
               "seconds": time.perf_counter() - t}  # fmt: skip
        out["rows"].append(row)
        out["summary"] = summary(out["rows"]) if len(out["rows"]) > 1 else None
        atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
        print(f"{variant} seed {seed} step {m.step}: FID {values['fid']:.2f} "
              f"KID x1e3 {1e3 * values['kid']:.2f}", flush=True)  # fmt: skip
    out["summary"] = summary(out["rows"]) if len(out["rows"]) > 1 else None
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    s = out["summary"]
    if s:
        for metric, scale in (("fid", 1.0), ("kid", 1e3)):
            for v, e in s["per_variant"].items():
                sd = "-" if e[metric]["sd"] is None else f"{scale * e[metric]['sd']:.2f}"
                print(f"{metric} {v}: mean {scale * e[metric]['mean']:.2f} sd {sd} "
                      f"over {e[metric]['n_seeds']} seeds")  # fmt: skip
            d = s["paired_ylg_minus_sagan"][metric]
            if d:
                lo, hi = (scale * x for x in d["ci95"])
                print(f"{metric} ylg - sagan: {scale * d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
