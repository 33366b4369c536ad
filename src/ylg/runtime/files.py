"""Files that are never left half-written, and file digests.

Every file ylg writes that another process (or a resumed run) may read goes through
:func:`atomic_path`: the content is written to a temporary file beside the target
(``NAME.partial-<pid>.<ext>``, same folder so the rename cannot cross file systems) and
renamed onto the target only when the writer returned without an exception. A crash, a
``KeyboardInterrupt`` or a failed write leaves the old file (or no file) and no temporary.

    with atomic_path("stats.npz") as tmp:
        np.savez(tmp, mu=mu)            # the suffix is kept, so np.savez adds nothing
    atomic_write_text("config.json", text)
    atomic_torch_save(ckpt, "run/latest.pt")
    file_digest("weights.pth")          # streamed in 1 MiB blocks, memoised on size + mtime
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_torch_save", "atomic_write_text", "file_digest"]


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary name :func:`atomic_path` writes to: ``NAME.partial-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f"{path.name}.partial-{os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a normal exit rename it onto ``path``.

    The parent folder is created. On an exception (any ``BaseException``) the temporary
    file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; return the path."""
    import torch  # the foundation stays importable without torch for the CLI's start-up

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


_digests: dict[tuple[str, str, int, int], str] = {}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``sha256``, ``md5``, ... as :mod:`hashlib` names them).

    The file is read in 1 MiB blocks, so its size does not matter; the result is memoised on
    the resolved path, size and modification time."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), algorithm, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.new(algorithm)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]
