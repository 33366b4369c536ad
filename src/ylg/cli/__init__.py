"""The `ylg` command line: a thin layer of subcommands over library functions.

Every module in this package that defines ``register(subparsers)`` contributes its
subcommands; each subcommand sets ``func`` (called with the parsed namespace) and keeps
heavy imports inside that function so that ``ylg --help`` stays fast.

User errors (bad values, missing files) are raised by the library as ``ValueError`` or
``FileNotFoundError``; they are printed as one line and exit with status 2, without a
traceback. Anything else is a bug and keeps its traceback.

Every subcommand has ``--threads N``; without it the thread count follows one rule
(:mod:`ylg.runtime.threads`: ``OMP_NUM_THREADS`` if set, else the cores available minus the
command's DataLoader workers), printed as one line on stderr before the work starts. A subcommand
whose workers are not a plain ``--workers`` option sets ``data_workers`` (a function of the
parsed namespace) with ``set_defaults``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from ylg.runtime.run_lock import RunFolderBusyError

USER_ERRORS = (
    ValueError,
    RunFolderBusyError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


class LazyChoices(Sequence):
    """``choices`` for argparse from a library list that is only imported when needed (when a
    value is checked or the subcommand's help is shown), so that ``ylg --help`` and the
    commands that do not use it never import torch."""

    def __init__(self, load: Callable[[], Iterable[str]]):
        self._load = load
        self._items: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    def __getitem__(self, i):
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, value) -> bool:
        return value in self._get()


def attention_variants() -> list[str]:
    """Names of the attention variants (:data:`ylg.models.variants.VARIANTS`), sorted."""
    from ylg.models.variants import VARIANTS

    return sorted(VARIANTS)


def model_source(path: str | None, pretrained: str | None) -> str:
    """The model a command loads: a run directory / checkpoint file, or ``--pretrained NAME``
    (exactly one; :func:`ylg.models.pretrained.load_models` takes either)."""
    if (path is None) == (pretrained is None):
        raise ValueError(
            "give a run directory or checkpoint file, or --pretrained NAME (exactly one)"
        )
    if pretrained is not None:
        from ylg.models.pretrained import available, is_model_folder

        if pretrained not in available() and not is_model_folder(pretrained):
            names = ", ".join(available()) or "none in this installation"
            raise ValueError(
                f"--pretrained {pretrained!r} is not a shipped model or a model folder "
                f"(ylg export); shipped: {names}"
            )
    return path if path is not None else pretrained


def version() -> str:
    """The installed distribution's version, else ``ylg.__version__``."""
    from importlib import metadata

    try:
        return metadata.version("ylg")
    except metadata.PackageNotFoundError:
        import ylg

        return getattr(ylg, "__version__", "unknown")


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run something: subcommands, and the sub-subcommands of those that
    have them (``ylg data folder``), each once."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    out, seen = [], set()
    for action in subs:
        for child in action.choices.values():
            if id(child) not in seen:
                seen.add(id(child))
                out += _leaf_parsers(child)
    return out


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        default=None,
        metavar="N",
        help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the cores "
        "available minus the data workers)",
    )


def data_workers(args: argparse.Namespace) -> int:
    """DataLoader worker processes of the parsed command (they take cores from torch)."""
    hook = getattr(args, "data_workers", None)
    if callable(hook):
        return int(hook(args))
    workers = getattr(args, "workers", 0)
    return workers if isinstance(workers, int) and workers > 0 else 0


def check_common_args(args: argparse.Namespace) -> None:
    """Checks every subcommand shares, before any work: a folder ``--out`` must not be an
    existing file (commands whose ``--out`` is a file set ``out_is_file`` and check it
    themselves), ``--device`` must name a device this torch has, ``--threads`` must be a
    positive integer. Raises ValueError."""
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
    threads = getattr(args, "threads", None)
    if threads is not None:
        from ylg.runtime.threads import parse_threads

        parse_threads(threads)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage wall: ``ylg train``'s usage is 40 options);
    the subcommand parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ylg",
        description="Your Local GAN: sparse 2-D attention, YLG-SAGAN training, evaluation, "
        "inversion and visualisation.",
    )
    parser.add_argument("--version", action="version", version=f"ylg {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for leaf in _leaf_parsers(parser):
        if leaf is not parser:
            _add_threads_option(leaf)
    return parser


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run ``ylg ARGV``; returns the exit status (argparse's too: 2 for a bad option, 0 for
    ``--help``), so that callers in a running process never see SystemExit."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    old_threads = None
    try:
        check_common_args(args)
        from ylg.runtime.threads import choose_threads, set_threads

        choice = choose_threads(data_workers(args), threads=getattr(args, "threads", None))
        if _is_main_process():
            print(choice.describe(args.command), file=sys.stderr)
        old_threads = set_threads(choice.threads)
        result = args.func(args)
    except USER_ERRORS as err:
        print(f"ylg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ylg {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if old_threads is not None:  # for callers of main() in a running process (tests)
            set_threads(old_threads)
    return int(result or 0)
