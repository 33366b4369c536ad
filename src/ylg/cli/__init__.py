"""The `ylg` command line: a thin layer of subcommands over library functions.

Every module in this package that defines ``register(subparsers)`` contributes its
subcommands; each subcommand sets ``func`` (called with the parsed namespace) and keeps
heavy imports inside that function so that ``ylg --help`` stays fast.

User errors (bad values, missing files) are raised by the library as ``ValueError`` or
``FileNotFoundError``; they are printed as one line and exit with status 2, without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def check_common_args(args: argparse.Namespace) -> None:
    """Checks every subcommand shares, before any work: a folder ``--out`` must not be an
    existing file (commands whose ``--out`` is a file set ``out_is_file`` and check it
    themselves), ``--device`` must name a device this torch has. Raises ValueError."""
    import os

    out = getattr(args, "out", None)
    out_is_file = getattr(args, "out_is_file", False)
    if isinstance(out, (str, os.PathLike)) and os.path.isfile(out) and not out_is_file:
        raise ValueError(f"--out {out} is an existing file; give a folder (new or existing)")
    device = getattr(args, "device", None)
    if isinstance(device, str):
        name = device.strip().lower()
        if name == "gpu" or name == "cuda" or name.startswith("cuda:"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(
                    f"--device {device}: this torch has no CUDA device; use --device cpu"
                )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ylg",
        description="Your Local GAN: sparse 2-D attention, YLG-SAGAN training, evaluation, "
        "inversion and visualisation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        check_common_args(args)
        result = args.func(args)
    except USER_ERRORS as err:
        print(f"ylg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ylg {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
