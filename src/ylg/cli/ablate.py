"""`ylg ablate`: the paper's Table 1 as a command, a thin layer over
:func:`ylg.experiments.ablate` (and :func:`~ylg.experiments.report`,
:func:`~ylg.experiments.commands`).

Training options are the same flags as ``ylg train`` (generated from the config dataclass),
applied to every run; ``--variants`` and ``--seeds`` pick the runs.
"""

from __future__ import annotations

import sys

from ylg.experiments.spec import TABLE1
from ylg.training.config import PRESETS


def register(sub) -> None:
    from ylg.cli import LazyChoices, attention_variants
    from ylg.cli.config_flags import add_config_flags

    p = sub.add_parser(
        "ablate",
        help="Table 1: train attention variants x seeds with one budget; table + FID curves",
        description="Train one ordinary run folder per (variant, seed) under --out with "
        "identical options but the attention and the seed, with FID/KID against reference "
        "statistics computed once, then write table.md, table.csv, runs.csv and curves.png. "
        "Running the same command again resumes unfinished runs and skips finished ones; a "
        "larger --steps continues them.",
    )
    p.add_argument("--out", required=True, help="ablation folder (one run folder per run)")
    p.add_argument("--preset", default="demo", help=f"one of {', '.join(PRESETS)} (default demo)")
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(TABLE1),
        metavar="VARIANT",
        choices=LazyChoices(attention_variants),
        help=f"attention variants, any of %(choices)s (default: Table 1's {' '.join(TABLE1)})",
    )
    p.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1], metavar="SEED", help="default: 0 1"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once on one GPU, as separate processes (CPU: always 1)",
    )
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print the commands that do the work on a cluster (reference statistics, then "
        "one torchrun per run) and exit; then `ylg ablate ... --table-only`",
    )
    p.add_argument("--nproc-per-node", type=int, default=1, help="GPUs per run in --print-commands")
    p.add_argument(
        "--table-only",
        action="store_true",
        help="only write the table and curves of the runs in --out as they are (no training)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(p)
    p.set_defaults(func=run, data_workers=_data_workers)


def _data_workers(args) -> int:
    """DataLoader workers of each run (they run one at a time on the CPU)."""
    from ylg.training.config import resolve

    return resolve(args.preset, _options(args)).workers


def _options(args) -> dict:
    from ylg.cli.config_flags import config_overrides

    return config_overrides(args)


def run(args) -> int:
    from ylg.experiments import ablate, commands, plan, report, save_plan

    if args.table_only:
        result = report(args.out)
    elif args.print_commands:
        if args.nproc_per_node < 1:
            raise ValueError(f"--nproc-per-node {args.nproc_per_node} must be >= 1")
        the_plan = plan(
            args.out,
            variants=args.variants,
            seeds=args.seeds,
            preset=args.preset,
            options=_options(args),
        )
        save_plan(the_plan)  # so that --table-only knows the runs
        for line in commands(the_plan, nproc_per_node=args.nproc_per_node):
            print(line)
        return 0
    else:
        result = ablate(
            args.out,
            variants=args.variants,
            seeds=args.seeds,
            preset=args.preset,
            options=_options(args),
            jobs=args.jobs,
            progress=not args.no_progress,
        )
        if result.failed:
            for name, why in result.failed.items():
                print(f"ylg ablate: {name} failed: {why}", file=sys.stderr)
    print(f"ylg ablate: table: {result.table}")
    print(f"ylg ablate: curves: {result.curves}")
    if result.interrupted:
        print("ylg ablate: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    if not args.table_only:
        print(result.table.read_text(), end="")
    return 1 if result.failed else 0
