"""`ylg train` and `ylg generate`: thin commands over ylg.training.train and ylg.generate.

Every field of :class:`ylg.training.config.TrainConfig` becomes a flag (``--batch-size``,
``--g-lr``, ``--attention``, ``--ema/--no-ema``, ...), generated from the dataclass; ``--set
key=value`` does the same by name. Multi-GPU / multi-node: ``torchrun --nproc-per-node N -m ylg
train ...``.
"""

from __future__ import annotations

import argparse
import sys

from ylg.training.config import PRESETS, TrainConfig


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from ylg.training.config import field_types

    types_ = field_types()
    group = p.add_argument_group("training options (override the preset)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        tp = types_[f.name]
        help_ = f"{f.metadata.get('help', '')} (default: {f.default!r})"
        if tp is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_,
            )
        else:
            group.add_argument(
                flag,
                dest=f.name,
                type=str,
                default=argparse.SUPPRESS,
                metavar=tp.__name__.upper(),
                help=help_,
            )


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train YLG-SAGAN (or a baseline) from a preset",
        description="Train G and D from a preset, with any option overridden. Writes "
        "config.json, stats.jsonl, tensorboard/, samples/, attention/ and latest.pt into --out.",
    )
    p.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: demo)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<preset>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest checkpoint (its saved config, plus "
        "the options given here)",
    )
    p.add_argument(
        "--set",
        dest="set_",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any training option by name (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(p)
    p.set_defaults(func=run_train)

    g = sub.add_parser(
        "generate",
        help="images, a grid or an interpolation GIF from a checkpoint",
        description="Sample a trained generator (EMA weights when the run kept them).",
    )
    g.add_argument("source", help="run directory (latest checkpoint) or checkpoint file")
    g.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument(
        "--classes", type=int, nargs="+", default=None, help="class labels to cycle through"
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
        help="also write interpolation.gif with STEPS frames between latents",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of latents and labels (default 0)")
    g.add_argument("--no-ema", action="store_true", help="use the raw (not EMA) generator")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    g.add_argument("--batch-size", type=int, default=64)
    g.set_defaults(func=run_generate)


def config_from_args(args) -> TrainConfig:
    """Resolve preset (or, on --resume, the run's saved config) plus the given overrides."""
    import json
    from pathlib import Path

    from ylg.training.config import field_types, parse_value, resolve

    overrides = {}
    for name in field_types():
        if hasattr(args, name):
            value = getattr(args, name)
            overrides[name] = value if isinstance(value, bool) else parse_value(name, value)
    for item in args.set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} is not KEY=VALUE")
        overrides[key.strip().replace("-", "_")] = parse_value(key.strip().replace("-", "_"), value)
    saved = Path(args.out) / "config.json" if args.out else None
    if args.resume and saved is not None and saved.is_file():
        if args.preset is not None:
            print(
                f"ylg train: --resume uses the saved {saved}; --preset {args.preset} ignored",
                file=sys.stderr,
            )
        values = {**json.loads(saved.read_text()), **overrides}
        return TrainConfig.from_dict(values).validate()
    return resolve(args.preset or "demo", overrides)


def check_resume(args) -> None:
    """``--resume`` must name a run folder with a checkpoint: a typo is an error, not a new run."""
    from pathlib import Path

    if args.resume:
        from ylg.training.checkpoint import find_checkpoint

        if args.out is None:
            raise ValueError("--resume needs --out: the run folder to continue")
        try:
            find_checkpoint(Path(args.out))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"--resume: no checkpoint (latest.pt or ckpt-*.pt) in {args.out}; check the "
                "folder name, or drop --resume to start a new run"
            ) from None


def run_train(args) -> int:
    from ylg.training import distributed as dist
    from ylg.training.loop import NonFiniteLossError, train

    check_resume(args)
    config = config_from_args(args)
    out = args.out or f"runs/{args.preset or 'demo'}"
    try:
        result = train(config, out, resume=args.resume, progress=not args.no_progress)
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


def run_generate(args) -> int:
    from ylg.generate import generate

    if args.truncation < 0:
        raise ValueError(f"--truncation {args.truncation} must be > 0 (or 0 = off)")

    paths = generate(
        args.source,
        args.out,
        n=args.n,
        classes=args.classes,
        truncation=args.truncation if args.truncation > 0 else None,
        grid=args.grid,
        interpolate=args.interpolate,
        seed=args.seed,
        use_ema=not args.no_ema,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(f"ylg generate: wrote {len(paths)} file(s) to {args.out}")
    return 0
