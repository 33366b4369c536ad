"""`ylg train` and `ylg generate`: thin commands over ylg.training.train and ylg.generate.

Every field of :class:`ylg.training.config.TrainConfig` becomes a flag (``--batch-size``,
``--g-lr``, ``--attention``, ``--ema/--no-ema``, ...), generated from the dataclass; ``--set
key=value`` does the same by name. Multi-GPU / multi-node: ``torchrun --nproc-per-node N -m ylg
train ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ylg.training.config import PRESETS, TrainConfig

#: the preset ``ylg train`` uses without ``--preset``
DEFAULT_PRESET = "demo"


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def default_help(name: str) -> str:
    """Where an option's value comes from when it is not given, generated from PRESETS:
    ``(default: 0.999)`` when no preset sets it, else each preset's value, the default
    preset first: ``(preset: demo 16, imagenet128 64, cifar32 64, celeba64 64)``."""
    default = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)
    order = [DEFAULT_PRESET, *(p for p in PRESETS if p != DEFAULT_PRESET)]
    values = {p: PRESETS[p].get(name, default) for p in order}
    if all(v == default for v in values.values()):
        return f"(default: {_fmt(default)})"
    return "(preset: " + ", ".join(f"{p} {_fmt(v)}" for p, v in values.items()) + ")"


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per training option (``--g-width``, ...) and ``--set KEY=VALUE``; read back
    with :func:`config_overrides`."""
    from ylg.cli import LazyChoices, attention_variants
    from ylg.training.config import field_types

    p.add_argument(
        "--set",
        dest="set_",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any training option by name (repeatable)",
    )
    types_ = field_types()
    choices = {"attention": LazyChoices(attention_variants)}
    group = p.add_argument_group(
        "training options (default: the preset's value, listed per preset where they differ)"
    )
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        tp = types_[f.name]
        help_ = f"{f.metadata.get('help', '')} {default_help(f.name)}"
        if tp is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_,
            )
        elif f.name in choices:
            group.add_argument(
                flag,
                dest=f.name,
                type=str,
                default=argparse.SUPPRESS,
                choices=choices[f.name],
                metavar=f.name.upper(),
                help=f"{help_}; one of %(choices)s",
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
    _add_config_flags(p)
    p.set_defaults(func=run_train, data_workers=_data_workers)

    g = sub.add_parser(
        "generate",
        help="images, a grid or an interpolation GIF from a checkpoint",
        description="Sample a trained generator (EMA weights when the run kept them). "
        "With --seeds, one image per seed (seed0007.png, ...): the same seed gives the same "
        "image whatever the other seeds; else --n images from --seed (00000.png, ...).",
    )
    g.add_argument("source", help="run directory (latest checkpoint) or checkpoint file")
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
    g.add_argument(
        "--device", default="cpu", help="where G runs: cpu, cuda or cuda:N (default cpu)"
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="images per forward pass with --n (default 64; --seeds: one at a time)",
    )
    g.set_defaults(func=run_generate)


def config_overrides(args) -> dict:
    """The training options given on the command line (the config flags and ``--set
    KEY=VALUE``), parsed to the config's types; shared by ``ylg train`` and ``ylg ablate``."""
    from ylg.training.config import field_types, parse_assignments, parse_value

    overrides = {}
    for name in field_types():
        if hasattr(args, name):
            value = getattr(args, name)
            overrides[name] = value if isinstance(value, bool) else parse_value(name, value)
    overrides.update(parse_assignments(args.set_))
    return overrides


def resume_plan(args) -> tuple[Path | None, Path | None]:
    """``(checkpoint file, run folder)`` of ``--resume``: ``(None, None)`` for a new run,
    ``(None, --out)`` to continue --out from its latest checkpoint, ``(file, folder)`` to
    continue from a chosen checkpoint file (its own folder, or --out). A missing checkpoint
    is an error that names the path: a typo must not start a new run."""
    from ylg.runtime.checkpoint import find_checkpoint

    if args.resume is None:
        return None, None
    if args.resume is True:
        if args.out is None:
            raise ValueError(
                "--resume needs --out (the run folder to continue) or a checkpoint: "
                "--resume runs/x/latest.pt"
            )
        try:
            find_checkpoint(Path(args.out))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"--resume: no checkpoint (latest.pt or ckpt-*.pt) in {args.out}; check the "
                "folder name, or drop --resume to start a new run"
            ) from None
        return None, Path(args.out)
    given = Path(args.resume)
    if not given.exists():
        raise FileNotFoundError(
            f"--resume {given}: no such checkpoint file or run folder; check the name, or "
            "drop --resume to start a new run"
        )
    try:
        file = find_checkpoint(given)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--resume {given}: no checkpoint (latest.pt or ckpt-*.pt) in this folder"
        ) from None
    out = Path(args.out) if args.out else file.parent
    if out.resolve() != file.parent.resolve():
        try:
            theirs = find_checkpoint(out)
        except FileNotFoundError:
            theirs = None
        if theirs is not None:
            raise ValueError(
                f"--out {out} already has a checkpoint ({theirs.name}) of another run; "
                f"resuming {file} there would mix two runs: choose a new --out"
            )
    return file, out


def config_from_args(args) -> TrainConfig:
    """Resolve preset (or, on --resume, the run's saved config) plus the given overrides."""
    import json

    from ylg.training.config import resolve

    overrides = config_overrides(args)
    if args.resume is None or args.resume is True:  # a new run, or --out's config.json
        file, out = None, (Path(args.out) if args.resume and args.out else None)
    else:
        file, out = resume_plan(args)
    if file is not None:
        from ylg.runtime.checkpoint import load_checkpoint

        saved, where = load_checkpoint(file, mmap=True)["config"], file
    elif out is not None and (out / "config.json").is_file():
        saved, where = json.loads((out / "config.json").read_text()), out / "config.json"
    else:
        return resolve(args.preset or DEFAULT_PRESET, overrides)
    if args.preset is not None:
        print(
            f"ylg train: --resume uses the options saved in {where}; --preset {args.preset} "
            "ignored",
            file=sys.stderr,
        )
    return TrainConfig.from_dict({**saved, **overrides}).validate()


def _data_workers(args) -> int:
    """DataLoader workers of the run (for the thread rule); keeps the resolved config."""
    args.resolved_config = config_from_args(args)
    return args.resolved_config.workers


def run_train(args) -> int:
    from ylg.training import distributed as dist
    from ylg.training.loop import NonFiniteLossError, train

    file, resume_out = resume_plan(args)
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


def run_generate(args) -> int:
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
        args.source,
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
