"""`ylg generate`: a thin command over :func:`ylg.generate.generate`."""

from __future__ import annotations

from ylg.runtime.device import DEVICE_HELP


def register(sub) -> None:
    g = sub.add_parser(
        "generate",
        help="images, a grid or an interpolation GIF from a checkpoint",
        description="Sample a trained generator (EMA weights when the run kept them). "
        "With --seeds, one image per seed (seed0007.png, ...): the same seed gives the same "
        "image whatever the other seeds; else --n images from --seed (00000.png, ...).",
    )
    g.add_argument("source", nargs="?", help="run directory (latest checkpoint) or checkpoint file")
    g.add_argument(
        "--pretrained", metavar="NAME", help="a model shipped with ylg instead, e.g. emoji32-ylg"
    )
    g.add_argument(
        "--n", type=int, default=None, help="number of images, drawn from --seed (default 16)"
    )
    g.add_argument(
        "--seeds",
        default=None,
        metavar="RANGES",
        help="one image per seed, e.g. 0-63 or 0-7,12,20-23 (instead of --n)",
    )
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument(
        "--class",
        "--classes",
        dest="classes",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="classes to cycle through, by name (e.g. star; the checkpoint's class names) or "
        "number (default: random classes)",
    )
    g.add_argument(
        "--truncation",
        type=float,
        default=2.0,
        help="resample latent entries with |z| above this (default 2.0; 0 = off)",
    )
    g.add_argument("--grid", action="store_true", help="write one grid.png instead of files")
    g.add_argument(
        "--interpolate",
        type=int,
        default=0,
        metavar="STEPS",
        help="also write interpolation.gif with STEPS frames between latents (from --seed)",
    )
    g.add_argument(
        "--gif-scale",
        type=int,
        default=None,
        metavar="K",
        help="enlarge the GIF K times, nearest neighbour (default: the smallest K that makes "
        "it at least 256 px wide)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the latents and random classes of --n images and of the interpolation "
        "(default 0)",
    )
    g.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    g.add_argument("--device", default="auto", help=f"where G runs: {DEVICE_HELP} (default: auto)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="images per forward pass with --n (default 64; --seeds: one at a time)",
    )
    g.set_defaults(func=run_generate)


def run_generate(args) -> int:
    from ylg.cli import model_source
    from ylg.generate import generate, parse_seeds

    if args.truncation < 0:
        raise ValueError(f"--truncation {args.truncation} must be > 0 (or 0 = off)")
    seeds = None
    if args.seeds is not None:
        if args.n is not None:
            raise ValueError(f"--n {args.n} and --seeds {args.seeds}: give one of them")
        seeds = parse_seeds(args.seeds)
    classes = None
    if args.classes is not None:
        classes = [int(c) if c.lstrip("-").isdigit() else c for c in args.classes]

    paths = generate(
        model_source(args.source, args.pretrained),
        args.out,
        n=16 if args.n is None else args.n,
        seeds=seeds,
        classes=classes,
        truncation=args.truncation if args.truncation > 0 else None,
        grid=args.grid,
        interpolate=args.interpolate,
        gif_scale=args.gif_scale,
        seed=args.seed,
        use_ema=not args.no_ema,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(f"ylg generate: wrote {len(paths)} file(s) to {args.out}")
    return 0
