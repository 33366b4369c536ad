"""The training options as command-line flags, shared by ``ylg train`` and ``ylg ablate``.

Every field of :class:`ylg.training.config.TrainConfig` becomes a flag (``--batch-size``,
``--g-lr``, ``--attention``, ``--ema/--no-ema``, ...), generated from the dataclass, with the
value of every preset in its help; ``--set key=value`` does the same by name.
:func:`add_config_flags` adds them to a parser, :func:`config_overrides` reads them back.
"""

from __future__ import annotations

import argparse
import dataclasses

from ylg.training.config import PRESETS, TrainConfig

__all__ = ["DEFAULT_PRESET", "add_config_flags", "config_overrides", "default_help"]

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


def add_config_flags(p: argparse.ArgumentParser) -> None:
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
