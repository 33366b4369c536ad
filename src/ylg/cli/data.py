"""`ylg data`: prepare a dataset once (``.npz`` or ``.zip``), then train from it fast."""

from __future__ import annotations

import contextlib

_FORMAT_HELP = "output file: .npz (in memory, small sets) or .zip (PNG per image, streamed)"


def _common(p, resolution_default: int | None = None) -> None:
    p.add_argument("--out", required=True, help=_FORMAT_HELP)
    p.set_defaults(out_is_file=True)  # write_dataset refuses an existing file itself
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
        help="lanczos: antialiased (default); tf-bilinear: the original YLG input pipeline's "
        "tf.image.crop_and_resize over the largest central square (2-tap bilinear, corners "
        "aligned, no antialiasing; not TF1's resize_bilinear, which FID's Inception uses)",
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

    f = sources.add_parser(
        "folder", help="an image folder: class subfolders become labels (or flat, unlabeled)"
    )
    f.add_argument("src", help="the folder")
    _common(f)
    _image_options(f)
    f.set_defaults(func=run_folder)

    c = sources.add_parser("cifar10", help="CIFAR-10 from the official python tarball")
    c.add_argument(
        "--archive",
        default=None,
        help="cifar-10-python.tar.gz (default: download it from the official URL into the "
        "cache, MD5-checked)",
    )
    c.add_argument(
        "--split", choices=["train", "test", "all"], default="train", help="default train"
    )
    c.add_argument(
        "--cache-dir", default=None, help="download cache (default $YLG_CACHE, else ~/.cache/ylg)"
    )
    _common(c, resolution_default=32)
    _image_options(c)
    c.set_defaults(func=run_cifar10)

    a = sources.add_parser("celeba", help="CelebA img_align_celeba (folder or zip), unlabeled")
    a.add_argument("src", help="img_align_celeba/ or img_align_celeba.zip")
    _common(a)
    a.add_argument(
        "--crop",
        choices=["face128", "center"],
        default="face128",
        help="face128: the 128x128 box centred on (89, 121) of the 178x218 image (default); "
        "center: the largest centred square",
    )
    a.add_argument(
        "--resize",
        choices=["lanczos", "tf-bilinear"],
        default="lanczos",
        help="lanczos (default) or tf-bilinear (the original YLG pipeline's crop_and_resize: "
        "no antialiasing)",
    )
    a.set_defaults(func=run_celeba)

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
        help="the cache folder; npm tarballs are kept in its npm/ (default $YLG_CACHE, else "
        "~/.cache/ylg)",
    )
    e.set_defaults(func=run_emoji)


def _finish(summary, dropped=None) -> int:
    """Print the summary (``OUT.summary.json`` was written with the data)."""
    print(summary.format())
    if dropped:
        print(f"not selected from the source ({sum(dropped.values())}):")
        for reason, n in sorted(dropped.items()):
            print(f"  {n:>7}  {reason}")
    return 0


def run_emoji(args) -> int:
    from ylg.data.sources.emoji import emoji_source

    source = emoji_source(
        args.resolution, styles=args.styles, skin_tones=args.skin_tones, cache_dir=args.cache_dir
    )
    return _write(source, args)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (e.g. a job scheduler's kill) unwinds like Ctrl-C, so the writer removes its
    temporary file; SIGKILL cannot be caught (then a ``.partial`` file stays, never OUT)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write(source, args, *, crop: str = "center", resize: str = "lanczos", min_size: int = 1):
    from pathlib import Path

    from ylg.data.prepare import write_dataset

    out = Path(args.out)
    extra = {out.stem + ".LICENSE.txt": source.licence_text} if source.licence_text else None
    with _sigterm_as_interrupt():
        summary = write_dataset(
            source.items,
            out,
            args.resolution,
            class_names=source.class_names,
            style_names=source.style_names,
            crop=crop,
            resize=resize,
            min_size=min_size,
            total=source.total,
            extra_files=extra,
            progress=not args.quiet,
            overwrite=args.overwrite,
            summary_extra={"not_selected": dict(sorted(source.dropped.items()))}
            if source.dropped
            else {},
        )
    return _finish(summary, source.dropped)


def run_folder(args) -> int:
    from ylg.data.sources.folder import folder_source

    source = folder_source(args.src, resolution=args.resolution, draft=args.resize == "lanczos")
    return _write(source, args, crop=args.crop, resize=args.resize, min_size=args.min_size)


def run_cifar10(args) -> int:
    from ylg.data.sources.cifar10 import cifar10_source

    source = cifar10_source(
        args.archive, split=args.split, cache_dir=args.cache_dir, progress=not args.quiet
    )
    return _write(source, args, crop=args.crop, resize=args.resize, min_size=args.min_size)


def run_celeba(args) -> int:
    from ylg.data.sources.celeba import celeba_source

    source = celeba_source(args.src, crop=args.crop)
    return _write(source, args, resize=args.resize)
