"""The checkpoint file: its format, where a run keeps it, and reading it back.

A run directory holds ``latest.pt`` (the newest checkpoint), optionally ``ckpt-<step>.pt``
(``keep_checkpoints``) and ``best.pt`` (lowest FID, when evaluating). A checkpoint is a plain
dict of state_dicts and config::

    {"format": "ylg-train-1", "step": int, "config": dict, "num_classes": int,
     "class_names": list[str] or None (absent in older checkpoints),
     "G": ..., "D": ..., "G_ema": ... or None, "opt_G": ..., "opt_D": ...,
     "rng": {"torch", "numpy", "python", "cuda"}, "extra": {...}}

Writing it is the trainer's job (``ylg.training.loop``, through
:func:`ylg.runtime.files.atomic_torch_save`); rebuilding the models from it for inference is
``ylg.models.loading.load_for_inference``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["BEST", "FORMAT", "LATEST", "find_checkpoint", "load_checkpoint"]

FORMAT = "ylg-train-1"
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
        ckpt = torch.load(file, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as err:  # truncated / not a torch file
        raise ValueError(f"{file} is not a readable ylg checkpoint ({err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{file} is not a ylg training checkpoint (format {FORMAT!r})")
    return ckpt
