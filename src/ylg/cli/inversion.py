"""`ylg invert` and `ylg attention`: thin commands over ylg.inversion.

- ``ylg invert IMAGE... --checkpoint RUN --out DIR``:
  :func:`ylg.inversion.invert_images.invert_images`;
- ``ylg attention RUN (--image IMAGE | --seed S) --out DIR``:
  :func:`ylg.inversion.attention_figures.attention_figures`.
"""

from __future__ import annotations

import argparse
import sys

METHOD_NAMES = (
    "pixel",
    "features",
    "saliency",
    "saliency-heads",
    "generator-saliency",
    "original",
)
#: steps on CPU when --steps is not given (the GPU defaults take many minutes on a CPU)
CPU_STEPS = 300


def _point(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"query point {text!r} is not ROW,COL (two integers, e.g. 16,8)"
        ) from None
    return r, c


def register(sub) -> None:
    p = sub.add_parser(
        "invert",
        help="find latents whose images match given images (D-attention saliency losses)",
        description="Invert images through a trained generator. Writes, per image, the target, "
        "the reconstruction, a side-by-side comparison, the loss curves of every restart, the "
        "latent and a JSON with PSNR / SSIM into OUT/<image name>/.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any common format)")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="run directory (latest checkpoint) or checkpoint file")
    model.add_argument(
        "--pretrained", metavar="NAME", help="a model shipped with ylg, e.g. emoji32-ylg"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--class",
        dest="label",
        type=int,
        default=None,
        metavar="N",
        help="class of every image (default: search D's top-k classes)",
    )
    p.add_argument(
        "--method",
        default="saliency-heads",
        choices=METHOD_NAMES,
        help="loss to descend (default saliency-heads, the paper's Eq. 3; 'original': the "
        "authors' code: RTL heads, their normalisation, Adam lr 0.07, 1000 steps, 8 restarts)",
    )
    p.add_argument(
        "--compare",
        nargs="*",
        default=None,
        metavar="METHOD",
        choices=METHOD_NAMES,
        help="run several methods (default: ylg's five; name 'original' to add it) on the "
        "same images and write "
        "OUT/comparison.png (target | method 1 | method 2 | ...)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimiser steps (default: the method's, 1500 or 1000 for original; on CPU "
        f"{CPU_STEPS})",
    )
    p.add_argument(
        "--restarts", type=int, default=None, help="latents per image (default 4; original 8)"
    )
    p.add_argument(
        "--lr", type=float, default=None, help="Adam learning rate (default 0.05; original 0.07)"
    )
    la = p.add_mutually_exclusive_group()
    la.add_argument(
        "--lookahead",
        dest="lookahead",
        action="store_true",
        default=None,
        help="wrap Adam in Lookahead (k=5, alpha=0.5) (default for all but original)",
    )
    la.add_argument("--no-lookahead", dest="lookahead", action="store_false", help="plain Adam")
    p.add_argument(
        "--normalization",
        default=None,
        choices=("paper", "code"),
        help="saliency normalisation (default: paper; original: code)",
    )
    p.add_argument("--top-k", type=int, default=3, help="classes tried when --class is not given")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial latents")
    p.add_argument("--batch-size", type=int, default=8, help="images inverted together")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_invert)

    a = sub.add_parser(
        "attention",
        help="figures of what each attention head of G and D looks at",
        description="Per-head saliency overlays of G's and D's attention layers, the attention "
        "of chosen query points over the image, and each head's mask.",
    )
    a.add_argument(
        "checkpoint", nargs="?", help="run directory (latest checkpoint) or checkpoint file"
    )
    a.add_argument(
        "--pretrained", metavar="NAME", help="a model shipped with ylg instead, e.g. emoji32-ylg"
    )
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="a real image: D's attention on it")
    src.add_argument("--seed", type=int, help="generate an image with G: G's and D's attention")
    a.add_argument(
        "--query",
        nargs="+",
        type=_point,
        default=None,
        metavar="ROW,COL",
        help="query points in image pixels (default: the centre and three others)",
    )
    a.add_argument("--class", dest="label", type=int, default=None, metavar="N", help="G's class")
    a.add_argument(
        "--invert-steps",
        type=int,
        default=0,
        metavar="N",
        help="with --image: invert it first (N steps) to also draw G's attention",
    )
    a.add_argument(
        "--normalization",
        default="relative",
        choices=("relative", "code", "paper"),
        help="saliency maps: relative (default; 1 = uniform within the head's mask), code "
        "(the authors' code) or paper (mean over all queries; dominated by the mask)",
    )
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    a.set_defaults(func=run_attention)


def _format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def run_invert(args) -> int:
    from ylg.inversion.invert_images import invert_images
    from ylg.runtime.device import resolve_device

    compare = args.compare is not None
    ylg_methods = [m for m in METHOD_NAMES if m != "original"]
    methods = (list(args.compare) or ylg_methods) if compare else [args.method]
    steps = args.steps
    if steps is None and resolve_device(args.device).type == "cpu":
        steps = CPU_STEPS
        print(
            f"running on the CPU: {CPU_STEPS} steps per method (the GPU defaults are 1500, "
            "1000 for original); pass --steps N to choose",
            file=sys.stderr,
        )

    def estimate(method: str, seconds: float) -> None:
        print(
            f"[{method}] estimated run time: {_format_seconds(seconds)} (measured on the first "
            "steps); --steps, --restarts or fewer images make it shorter",
            file=sys.stderr,
        )

    records = invert_images(
        args.checkpoint or args.pretrained,
        args.images,
        args.out,
        methods=methods,
        compare=compare,
        label=args.label,
        steps=steps,
        restarts=args.restarts,
        lr=args.lr,
        seed=args.seed,
        top_k=args.top_k,
        batch_size=args.batch_size,
        device=args.device,
        use_ema=not args.no_ema,
        progress=not args.no_progress,
        lookahead=args.lookahead,
        normalization=args.normalization,
        on_estimate=estimate,
    )
    for r in records:
        print(
            f"{r['image']} [{r['method']}]: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}, "
            f"class {r['label']} -> {r['folder']}"
        )
    return 0


def run_attention(args) -> int:
    from ylg.cli import model_source
    from ylg.inversion.attention_figures import attention_figures

    paths = attention_figures(
        model_source(args.checkpoint, args.pretrained),
        args.out,
        image=args.image,
        seed=args.seed,
        label=args.label,
        queries=args.query,
        invert_steps=args.invert_steps,
        device=args.device,
        use_ema=not args.no_ema,
        normalization=args.normalization,
    )
    for path in paths:
        print(path)
    return 0
