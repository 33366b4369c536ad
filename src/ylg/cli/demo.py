"""`ylg demo`: the main job: train the `demo` preset on the built-in shapes, on the CPU.

A thin command over :func:`ylg.demo.run_demo` (what it trains, draws and scores is
documented there); it prints the report of where the outputs are. Running it again continues
an unfinished demo run; ``--restart`` starts over.
"""

from __future__ import annotations


def register(sub) -> None:
    from ylg.cli import LazyChoices, attention_variants

    p = sub.add_parser(
        "demo",
        help="the main job: train the demo preset on the built-in data (minutes on a CPU)",
        description="Train YLG-SAGAN (demo preset: 32x32, small widths) on the built-in "
        "procedural shapes, then write samples, attention snapshots, loss curves and a "
        "checkpoint.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: preset)")
    p.add_argument(
        "--attention",
        default=None,
        choices=LazyChoices(attention_variants),
        metavar="VARIANT",
        help="attention variant, one of %(choices)s (default: ylg)",
    )
    p.add_argument(
        "--restart", action="store_true", help="delete a previous demo run in --out first"
    )
    p.add_argument("--no-patterns", action="store_true", help="skip the pattern figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, data_workers=_data_workers)


def _data_workers(args) -> int:
    """DataLoader workers of the demo preset (for the thread rule of :mod:`ylg.runtime.threads`)."""
    from ylg.training.config import resolve

    return resolve("demo").workers


def run_demo(out, **options) -> str:
    """:func:`ylg.demo.run_demo`, imported when called: ``ylg --help`` must not import torch."""
    from ylg import demo

    return demo.run_demo(out, **options)


def run(args) -> int:
    report = run_demo(
        args.out,
        steps=args.steps,
        attention=args.attention,
        patterns=not args.no_patterns,
        progress=not args.no_progress,
        restart=args.restart,
    )
    print(report)
    return 0
