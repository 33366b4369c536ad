"""`ylg train`: a thin command over :func:`ylg.training.train`.

The training options are flags generated from the config dataclass
(:mod:`ylg.cli.config_flags`); the resume rules are :mod:`ylg.training.resume`. Multi-GPU /
multi-node: ``torchrun --nproc-per-node N -m ylg train ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ylg.cli.config_flags import DEFAULT_PRESET, add_config_flags, config_overrides
from ylg.training.config import PRESETS, TrainConfig


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train YLG-SAGAN (or a baseline) from a preset",
        description="Train G and D from a preset, with any option overridden. Writes "
        "config.json, stats.jsonl, tensorboard/, samples/, attention/ and latest.pt into --out.",
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=tuple(PRESETS),
        metavar="PRESET",
        help=f"one of %(choices)s (default: {DEFAULT_PRESET})",
    )
    p.add_argument("--out", default=None, help="run directory (default: runs/<preset>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue a run from a checkpoint, with its saved options plus the options given "
        "here. Alone: the run in --out, from its latest checkpoint. With a checkpoint file "
        "(e.g. runs/x/ckpt-0000500.pt, see --keep-checkpoints): from that step, into the "
        "file's folder (later stats rows are dropped), or into --out if given. With a run "
        "folder: its latest checkpoint",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(func=run_train, data_workers=_data_workers)


def config_from_args(args) -> TrainConfig:
    """Resolve preset (or, on --resume, the run's saved config) plus the given overrides."""
    from ylg.training.resume import resume_config

    config, saved_in = resume_config(
        args.preset or DEFAULT_PRESET, config_overrides(args), resume=args.resume, out=args.out
    )
    if saved_in is not None and args.preset is not None:
        print(
            f"ylg train: --resume uses the options saved in {saved_in}; --preset {args.preset} "
            "ignored",
            file=sys.stderr,
        )
    return config


def _data_workers(args) -> int:
    """DataLoader workers of the run (for the thread rule); keeps the resolved config."""
    args.resolved_config = config_from_args(args)
    return args.resolved_config.workers


def run_train(args) -> int:
    from ylg.training import distributed as dist
    from ylg.training.loop import NonFiniteLossError, train
    from ylg.training.resume import resume_plan

    file, resume_out = resume_plan(args.resume, args.out)
    config = getattr(args, "resolved_config", None) or config_from_args(args)
    out = resume_out or Path(args.out or f"runs/{args.preset or DEFAULT_PRESET}")
    try:
        result = train(
            config,
            out,
            resume=args.resume is not None,
            resume_from=file,
            progress=not args.no_progress,
        )
    except NonFiniteLossError as err:
        if dist.is_main():
            print(f"ylg train: stopped: {err}", file=sys.stderr)
        return 1
    if dist.is_main():
        how = "stopped by signal" if result.stopped == "signal" else "finished"
        print(f"ylg train: {how} at step {result.step}; checkpoint: {result.checkpoint}")
        if result.stopped == "signal":
            print(f"ylg train: continue with: ylg train --out {out} --resume")
    return 0
