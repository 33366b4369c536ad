"""`ylg invert` and `ylg attention`: thin commands over ylg.inversion.

- ``ylg invert IMAGE... --checkpoint RUN --out DIR``: :func:`ylg.inversion.files.invert_images`;
- ``ylg attention RUN (--image IMAGE | --seed S) --out DIR``:
  :func:`ylg.inversion.figures.attention_figures`.
"""

from __future__ import annotations

import argparse

METHOD_NAMES = ("pixel", "features", "saliency", "saliency-heads", "generator-saliency")


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
    p.add_argument(
        "--checkpoint", required=True, help="run directory (latest checkpoint) or checkpoint file"
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
        help="loss to descend (default saliency-heads, the paper's Eq. 3)",
    )
    p.add_argument(
        "--compare",
        nargs="*",
        default=None,
        metavar="METHOD",
        choices=METHOD_NAMES,
        help="run several methods (default: all five) on the same images and write "
        "OUT/comparison.png (target | method 1 | method 2 | ...)",
    )
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    p.add_argument("--restarts", type=int, default=4, help="latents per image (default 4)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
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
    a.add_argument("checkpoint", help="run directory (latest checkpoint) or checkpoint file")
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
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    a.set_defaults(func=run_attention)


def run_invert(args) -> int:
    from ylg.inversion.files import invert_images

    compare = args.compare is not None
    methods = (list(args.compare) or list(METHOD_NAMES)) if compare else [args.method]
    records = invert_images(
        args.checkpoint,
        args.images,
        args.out,
        methods=methods,
        compare=compare,
        label=args.label,
        steps=args.steps,
        restarts=args.restarts,
        lr=args.lr,
        seed=args.seed,
        top_k=args.top_k,
        batch_size=args.batch_size,
        device=args.device,
        use_ema=not args.no_ema,
        progress=not args.no_progress,
    )
    for r in records:
        print(
            f"{r['image']} [{r['method']}]: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}, "
            f"class {r['label']} -> {r['folder']}"
        )
    return 0


def run_attention(args) -> int:
    from ylg.inversion.figures import attention_figures

    paths = attention_figures(
        args.checkpoint,
        args.out,
        image=args.image,
        seed=args.seed,
        label=args.label,
        queries=args.query,
        invert_steps=args.invert_steps,
        device=args.device,
        use_ema=not args.no_ema,
    )
    for path in paths:
        print(path)
    return 0
