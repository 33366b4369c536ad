"""`ylg stats` and `ylg eval`: reference statistics of a dataset, FID / IS / KID of a checkpoint.

Thin commands over :func:`ylg.metrics.reference_stats` and
:func:`ylg.metrics.evaluate_generator`.
"""

from __future__ import annotations

import argparse

BUILTIN = "builtin"


def _source(value: str | None):
    """The data source for make_dataset: None for the built-in procedural dataset."""
    return None if value in (None, "", BUILTIN) else value


def _device(value: str) -> str:
    if value == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--inception-weights",
        default=None,
        metavar="PATH",
        help="Inception weight file (default: $YLG_INCEPTION_WEIGHTS, else the torch hub cache, "
        "downloading weights-inception-2015-12-05-6726825d.pth once)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=64, help="default 64")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--workers", type=int, default=0, help="data loading workers (default 0)")
    p.add_argument("--no-cache", action="store_true", help="recompute reference statistics")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub) -> None:
    s = sub.add_parser(
        "stats",
        help="Inception reference statistics of a dataset (for FID / KID)",
        description="Compute the FID reference statistics (mean, covariance and a feature "
        "subset for KID) of a dataset at a resolution and write them as .npz. Results are also "
        "cached under $YLG_CACHE/stats (default ~/.cache/ylg/stats).",
    )
    s.add_argument("data", help=f"image folder, .npz of images, or '{BUILTIN}' (procedural)")
    s.add_argument("--resolution", type=_positive_int, required=True, help="image size R")
    s.add_argument("--out", required=True, help="output .npz")
    s.add_argument("--n", type=_positive_int, default=None, help="random subset size (default all)")
    s.add_argument("--seed", type=int, default=0, help="subset / built-in data seed (default 0)")
    s.add_argument(
        "--keep-features",
        type=int,
        default=5000,
        help="feature rows kept for KID (default 5000; 0 = none)",
    )
    _common(s)
    s.set_defaults(func=run_stats)

    e = sub.add_parser(
        "eval",
        help="FID / IS / KID of a checkpoint",
        description="Generate N samples from a checkpoint (EMA weights when kept) and compute "
        "FID, IS and KID against reference statistics. Prints a table and writes JSON. FID "
        "depends on N and on the reference set: compare numbers with the same of both.",
    )
    e.add_argument("checkpoint", help="run directory (latest checkpoint) or checkpoint file")
    ref = e.add_mutually_exclusive_group(required=True)
    ref.add_argument("--data", default=None, help=f"reference dataset: folder, .npz or '{BUILTIN}'")
    ref.add_argument("--ref", default=None, help="reference statistics .npz from `ylg stats`")
    e.add_argument("--n", type=_positive_int, default=50000, help="samples (default 50000)")
    e.add_argument(
        "--metrics", default="fid,is", help="comma-separated: fid, is, kid (default fid,is)"
    )
    e.add_argument(
        "--ref-n", type=_positive_int, default=None, help="with --data: images used (default all)"
    )
    e.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    e.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    e.add_argument("--kid-subsets", type=_positive_int, default=100, help="default 100")
    e.add_argument("--kid-subset-size", type=_positive_int, default=1000, help="default 1000")
    e.add_argument(
        "--out", default=None, help="JSON file (default: <run dir>/eval-step<S>-n<N>.json)"
    )
    _common(e)
    e.set_defaults(func=run_eval)


def run_stats(args) -> int:
    from ylg.metrics import load_inception, reference_stats

    device = _device(args.device)
    inception = load_inception(args.inception_weights, device=device)
    stats = reference_stats(
        _source(args.data),
        args.resolution,
        n=args.n,
        batch_size=args.batch_size,
        device=device,
        inception=inception,
        seed=args.seed,
        keep_features=args.keep_features,
        cache=not args.no_cache,
        num_workers=args.workers,
        progress=not args.no_progress,
    )
    path = stats.save(args.out)
    print(
        f"ylg stats: {stats.n} images of {stats.source} at {stats.resolution}x{stats.resolution} "
        f"({stats.extractor}) -> {path}"
    )
    return 0


def format_table(result: dict) -> str:
    ref = result["reference"]
    lines = [
        f"checkpoint  {result['checkpoint']} (step {result['step']}, "
        f"{'EMA' if result['ema'] else 'raw'} generator)",
        f"samples     N = {result['n']} (seed {result['seed']})",
        f"reference   {ref['source'] or '?'} (n = {ref['n']}, "
        f"{ref['resolution']}x{ref['resolution']}, {ref['extractor']})",
        "",
        f"{'metric':<8}{'value':>14}{'std':>14}",
    ]
    for name in result["metrics_requested"]:
        value = result["metrics"][name]
        std = result["metrics"].get(f"{name}_std")
        std_text = "" if std is None else f"{std:>14.6g}"
        lines.append(f"{name.upper():<8}{value:>14.6g}{std_text}")
    return "\n".join(lines)


def run_eval(args) -> int:
    import json
    import warnings
    from pathlib import Path

    from ylg.metrics import ReferenceStats, evaluate_generator, load_inception, reference_stats
    from ylg.metrics.evaluate import parse_metrics
    from ylg.training.checkpoint import load_for_inference

    metrics = parse_metrics(args.metrics)
    device = _device(args.device)
    loaded = load_for_inference(args.checkpoint, device=device, use_ema=not args.no_ema)
    G = loaded.G
    inception = load_inception(args.inception_weights, device=device)
    if args.ref is not None:
        reference = ReferenceStats.load(
            args.ref, resolution=G.resolution, extractor=inception.extractor_id
        )
    else:
        reference = reference_stats(
            _source(args.data),
            G.resolution,
            n=args.ref_n,
            batch_size=args.batch_size,
            device=device,
            inception=inception,
            cache=not args.no_cache,
            num_workers=args.workers,
            progress=not args.no_progress,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = evaluate_generator(
            G,
            n=args.n,
            reference=reference,
            metrics=metrics,
            batch_size=args.batch_size,
            device=device,
            seed=args.seed,
            inception=inception,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            progress=not args.no_progress,
        )
    notes = sorted({str(w.message) for w in caught})
    checkpoint = Path(loaded.path) if loaded.path is not None else Path(args.checkpoint)
    result = {
        "checkpoint": str(checkpoint),
        "step": loaded.step,
        "ema": bool(loaded.used_ema),
        "n": args.n,
        "seed": args.seed,
        "reference": reference.summary(),
        "metrics_requested": list(metrics),
        "metrics": values,
        "warnings": notes,
    }
    out = (
        Path(args.out) if args.out else checkpoint.parent / f"eval-step{loaded.step}-n{args.n}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    for note in notes:
        print(f"warning: {note}")
    print(f"\nwrote {out}")
    return 0
