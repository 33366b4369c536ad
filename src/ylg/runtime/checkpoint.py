"""The checkpoint file: its format, where a run keeps it, and reading it back.

A run directory holds ``latest.pt`` (the newest checkpoint), optionally ``ckpt-<step>.pt``
(``keep_checkpoints``) and ``best.pt`` (lowest FID, when evaluating). A checkpoint is a plain
dict of state_dicts and config::

    {"format": "ylg-train-2", "step": int, "config": dict, "num_classes": int,
     "class_names": list[str] or None, "world_size": int, "precision": "fp32" | "bf16",
     "G": ..., "D": ..., "G_ema": ... or None, "ema_n_averaged": int,
     "opt_G": ..., "opt_D": ..., "lecam": {...},
     "rng": {"torch", "numpy", "python", "cuda"}, "extra": {...}}

**A checkpoint is data, never code.** Every field is a tensor or a plain type, and files are
read with ``torch.load(weights_only=True)``, whose unpickler refuses anything else: opening a
checkpoint someone sent cannot run code. ``ylg-train-1`` files (ylg before 2026-12, which
stored numpy RNG objects) need pickle; they are refused with a message that says how to
convert a file you trust, once, with :func:`upgrade_checkpoint` (``ylg upgrade-checkpoint``).

Writing it is the trainer's job (``ylg.training.loop``, through
:func:`ylg.runtime.files.atomic_torch_save`); rebuilding the models from it for inference is
``ylg.models.loading.load_for_inference``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ylg.runtime.files import atomic_torch_save

__all__ = [
    "BEST",
    "FORMAT",
    "LATEST",
    "UnsafeCheckpointError",
    "find_checkpoint",
    "load_checkpoint",
    "upgrade_checkpoint",
]

FORMAT = "ylg-train-2"
LEGACY_FORMAT = "ylg-train-1"


class UnsafeCheckpointError(ValueError):
    """The file needs pickle (it may run code when loaded) and was not loaded."""


LATEST = "latest.pt"
BEST = "best.pt"


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory's ``latest.pt``; FileNotFoundError otherwise."""
    path = Path(path)
    if path.is_dir():
        candidate = path / LATEST
        if candidate.is_file():
            return candidate
        steps = sorted(path.glob("ckpt-*.pt"))
        if steps:
            return steps[-1]
        raise FileNotFoundError(f"no checkpoint ({LATEST} or ckpt-*.pt) in run directory {path}")
    if path.is_file():
        return path
    raise FileNotFoundError(f"checkpoint or run directory {path} does not exist")


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict:
    """Load a checkpoint dict from a file or run directory, checking its format.

    ``mmap=True`` maps the tensors from the file instead of reading them (fast when only the
    config or the step is wanted)."""
    file = find_checkpoint(path)
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:  # weights_only refused an object: never unpickled
        raise UnsafeCheckpointError(
            f"{file} holds pickled objects that could run code, so it was not loaded "
            f"({_first_line(err)}). A checkpoint of ylg before 2026-12 (format "
            f"{LEGACY_FORMAT!r}) is like that: if you trust the file, convert it once with "
            f"`ylg upgrade-checkpoint {file}`"
        ) from None
    except Exception as err:  # truncated / not a torch file
        raise ValueError(f"{file} is not a readable ylg checkpoint ({_first_line(err)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{file} is not a ylg training checkpoint (format {FORMAT!r})")
    return ckpt


def plain_numpy_state(state: tuple) -> dict:
    """``numpy.random.get_state()`` as tensors and plain types (loads without pickle)."""
    kind, keys, pos, has_gauss, cached = state
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),  # uint32 [624]
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def plain_python_state(state: tuple) -> dict:
    """``random.getstate()`` as tensors and plain types (625 values < 2**32)."""
    version, mt, gauss_next = state
    return {
        "version": int(version),
        "state": torch.tensor(mt, dtype=torch.int64),
        "gauss_next": None if gauss_next is None else float(gauss_next),
    }


def _first_line(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    reason = next((ln for ln in lines if ln.startswith("WeightsUnpickler error")), None)
    return reason or (lines[0] if lines else type(err).__name__)


def upgrade_checkpoint(
    path: str | os.PathLike, out: str | os.PathLike | None = None, *, trust: bool = False
) -> Path:
    """Rewrite a ``ylg-train-1`` checkpoint (numpy RNG objects, needs pickle) as
    ``ylg-train-2`` (tensors and plain types), in place or to ``out``.

    This **unpickles the file**, which runs any code it holds: only for files you made or
    trust, hence ``trust=True`` is required. The converted file loads safely afterwards."""
    if not trust:
        raise UnsafeCheckpointError(
            f"upgrading {path} unpickles it, which can run code: pass trust=True "
            "(ylg upgrade-checkpoint --trust) only for a file you made or trust"
        )
    file = find_checkpoint(path)
    ckpt = torch.load(file, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (LEGACY_FORMAT, FORMAT):
        raise ValueError(f"{file} is not a ylg training checkpoint")
    rng = ckpt.get("rng", {})
    if isinstance(rng.get("numpy"), tuple):
        rng["numpy"] = plain_numpy_state(rng["numpy"])
    if isinstance(rng.get("python"), tuple):
        rng["python"] = plain_python_state(rng["python"])
    ckpt["format"] = FORMAT
    ckpt.setdefault("precision", "fp32")
    target = Path(out) if out is not None else file
    atomic_torch_save(ckpt, target)
    torch.load(target, map_location="cpu", weights_only=True)  # it is safe now
    return target
