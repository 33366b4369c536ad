"""How many CPU threads a command gives torch: one rule for every ``ylg`` command.

Oversubscribed OpenMP threads (more threads than free cores, or threads that compete with
DataLoader worker processes) make CPU training many times slower, and a thread count read
from the load average changes from run to run (and so do the samples: float sums depend on
how the work is split). The rule here depends only on the process, never on the machine's
momentary load:

1. ``--threads N`` (``threads=N``), if given;
2. else ``OMP_NUM_THREADS``, if set to a positive integer (its first entry, for lists such
   as ``4,2``): the user's explicit choice for OpenMP;
3. else the CPU cores this process may run on (``os.sched_getaffinity``, else
   ``os.cpu_count``), divided among the processes of a ``torchrun`` on this node
   (``LOCAL_WORLD_SIZE``), minus the DataLoader worker processes of the command, at least 1.

The same seed with the same thread count gives bit-identical results on the CPU.

    from ylg.runtime.threads import choose_threads, set_threads
    choice = choose_threads(workers=2)
    set_threads(choice.threads)
    print(choice.describe("train"))
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "LINE",
    "ThreadChoice",
    "available_cores",
    "choose_threads",
    "parse_threads",
    "set_threads",
    "without_thread_line",
]

#: the line :meth:`ThreadChoice.describe` writes (every ``ylg`` command prints it on stderr)
LINE = re.compile(r"^ylg [\w-]+: \d+ CPU threads? \(.*\)$")


def without_thread_line(text: str) -> str:
    """``text`` (a command's stderr) without the thread-count line."""
    return "\n".join(li for li in text.splitlines() if not LINE.match(li))


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask, else ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_threads(value: str | int, name: str = "--threads") -> int:
    """A thread count: a positive integer; ValueError naming ``name`` and the value."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name} {value!r} is not a positive integer (CPU threads, e.g. 2)")
    return n


def _omp_threads(environ: Mapping[str, str]) -> int | None:
    text = environ.get("OMP_NUM_THREADS", "").split(",")[0]
    try:
        n = int(text)
    except ValueError:
        return None
    return n if n >= 1 else None


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count and why: ``source`` is ``"--threads"``, ``"OMP_NUM_THREADS"`` or
    ``"rule"``."""

    threads: int
    source: str
    cores: int
    workers: int = 0
    processes: int = 1

    def describe(self, command: str) -> str:
        """One line for stderr, e.g. ``ylg train: 2 CPU threads (2 cores available, 0 data
        workers; --threads to change)``."""
        plural = "thread" if self.threads == 1 else "threads"
        if self.source == "--threads":
            why = f"--threads {self.threads}; {self.cores} cores available"
        elif self.source == "OMP_NUM_THREADS":
            why = f"OMP_NUM_THREADS={self.threads}; --threads to change"
        else:
            per = f" / {self.processes} processes" if self.processes > 1 else ""
            why = (
                f"{self.cores} cores available{per}, {self.workers} data workers; "
                "--threads to change"
            )
        return f"ylg {command}: {self.threads} CPU {plural} ({why})"


def choose_threads(
    workers: int = 0,
    *,
    threads: int | str | None = None,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
) -> ThreadChoice:
    """The thread count of a command whose DataLoader runs ``workers`` worker processes.

    Args:
        workers: DataLoader worker processes of this command (each takes a core).
        threads: an explicit count (``--threads``): used as given (validated).
        environ: environment to read ``OMP_NUM_THREADS`` / ``LOCAL_WORLD_SIZE`` from
            (default ``os.environ``).
        cores: cores available (default :func:`available_cores`).
    """
    environ = os.environ if environ is None else environ
    cores = available_cores() if cores is None else cores
    if workers < 0:
        raise ValueError(f"workers={workers} must be >= 0")
    if threads is not None:
        return ThreadChoice(parse_threads(threads), "--threads", cores, workers)
    omp = _omp_threads(environ)
    if omp is not None:
        return ThreadChoice(omp, "OMP_NUM_THREADS", cores, workers)
    try:
        processes = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        processes = 1
    n = max(1, cores // processes - workers)
    return ThreadChoice(n, "rule", cores, workers, processes)


def set_threads(n: int) -> int:
    """``torch.set_num_threads(n)``; returns the previous count (to restore it)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    return old
