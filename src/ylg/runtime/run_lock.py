"""One run per folder: an exclusive lock on a run folder for the life of a run.

The lock is ``flock`` on ``RUN_DIR/.ylg-run.lock`` (``msvcrt.locking`` on Windows). The OS
drops it when the process ends in any way (kill -9 included), so a crash never leaves a stale
lock; the file itself stays, holding the last holder's PID for the message. A second run into
the folder is refused at once with one line that names the folder and the holder's PID.

    with RunLock("runs/x"):
        ...  # train
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

__all__ = ["LOCK_NAME", "RunFolderBusyError", "RunLock"]

LOCK_NAME = ".ylg-run.lock"


class RunFolderBusyError(RuntimeError):
    """Another process holds the run folder's lock."""


class RunLock:
    """Exclusive, non-blocking lock of a run folder (created if missing); a context manager.
    ``enabled=False`` does nothing (the non-zero ranks of a distributed run)."""

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if not self.enabled or self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusyError(
                f"run folder {self.run_dir} is in use by another ylg run (PID {holder}); "
                "wait for it to end or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
