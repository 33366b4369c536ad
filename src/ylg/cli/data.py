"""`ylg data`: prepare a dataset once (``.npz`` or ``.zip``), then train from it fast."""

from __future__ import annotations

_FORMAT_HELP = "output file: .npz (in memory, small sets) or .zip (PNG per image, streamed)"


def _common(p, resolution_default: int | None = None) -> None:
    p.add_argument("--out", required=True, help=_FORMAT_HELP)
    p.add_argument(
        "--resolution",
        type=int,
        default=resolution_default,
        required=resolution_default is None,
        help="output side in pixels"
        + (f" (default {resolution_default})" if resolution_default else ""),
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _image_options(p) -> None:
    p.add_argument(
        "--crop",
        choices=["center", "none"],
        default="center",
        help="center: largest centred square (default); none: pad to a square with white",
    )
    p.add_argument(
        "--resize",
        choices=["lanczos", "tf-bilinear"],
        default="lanczos",
        help="lanczos: antialiased (default); tf-bilinear: 2-tap bilinear without "
        "antialiasing, as TF1's resize_bilinear in the original YLG input pipeline",
    )
    p.add_argument(
        "--min-size", type=int, default=1, help="skip images whose shorter side is below this"
    )


def register(sub) -> None:
    p = sub.add_parser(
        "data",
        help="prepare a dataset file (.npz / .zip) from a folder, CIFAR-10, CelebA or emoji",
        description="Convert a source once into a .npz or .zip that `ylg train --data` reads.",
    )
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)

    e = sources.add_parser(
        "emoji",
        help="the built-in real dataset: emoji in 4 styles (npm packages), 9 category classes",
    )
    _common(e, resolution_default=64)
    e.add_argument(
        "--styles",
        nargs="+",
        default=None,
        metavar="STYLE",
        help="twemoji noto fluent openmoji (default: all that are natively >= --resolution)",
    )
    e.add_argument(
        "--skin-tones", action="store_true", help="keep skin-tone variants (default: drop)"
    )
    e.add_argument(
        "--cache-dir",
        default=None,
        help="where npm tarballs are kept (default $YLG_CACHE_DIR or ~/.cache/ylg)",
    )
    e.set_defaults(func=run_emoji)


def _finish(summary, dropped=None) -> int:
    import json
    from pathlib import Path

    print(summary.format())
    if dropped:
        print(f"not selected from the source ({sum(dropped.values())}):")
        for reason, n in sorted(dropped.items()):
            print(f"  {n:>7}  {reason}")
    record = summary.to_dict()
    if dropped:
        record["not_selected"] = dict(sorted(dropped.items()))
    out = Path(summary.out)
    summary_path = out.with_name(out.name + ".summary.json")
    summary_path.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def run_emoji(args) -> int:
    from ylg.data.prepare import write_dataset
    from ylg.data.sources.emoji import emoji_source

    source = emoji_source(
        args.resolution, styles=args.styles, skin_tones=args.skin_tones, cache_dir=args.cache_dir
    )
    from pathlib import Path

    out = Path(args.out)
    summary = write_dataset(
        source.items,
        out,
        args.resolution,
        class_names=source.class_names,
        style_names=source.style_names,
        total=len(source),
        extra_files={out.stem + ".LICENSE.txt": source.licence_text},
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    return _finish(summary, source.dropped)
