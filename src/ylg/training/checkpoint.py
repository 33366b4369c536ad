"""Checkpoints: plain dicts of state_dicts, written atomically; resume and inference loading.

A run directory holds ``latest.pt`` (the newest checkpoint), optionally ``ckpt-<step>.pt``
(``keep_checkpoints``) and ``best.pt`` (lowest FID, when evaluating). A checkpoint is::

    {"format": "ylg-train-1", "step": int, "config": dict, "num_classes": int,
     "class_names": list[str] or None (absent in older checkpoints),
     "G": ..., "D": ..., "G_ema": ... or None, "opt_G": ..., "opt_D": ...,
     "rng": {"torch", "numpy", "python", "cuda"}, "extra": {...}}

Writes go to a temporary file in the same folder, then ``os.replace``: a crash mid-write
never leaves a truncated ``latest.pt``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "ylg-train-1"
LATEST = "latest.pt"
BEST = "best.pt"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


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


@dataclass
class LoadedModels:
    """Models of a checkpoint, ready for inference (eval mode)."""

    G: nn.Module
    D: nn.Module
    config: dict
    step: int
    path: Path | None = None
    used_ema: bool = False
    class_names: list[str] | None = None


def load_for_inference(
    path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True
) -> LoadedModels:
    """Rebuild G and D from a checkpoint file or run directory (its latest checkpoint).

    ``use_ema``: load the EMA generator weights when the run kept them (else the raw ones).
    Both models are returned in eval mode on ``device``.
    """
    from ylg.training.config import TrainConfig
    from ylg.training.networks import build_models

    file = find_checkpoint(path)
    ckpt = load_checkpoint(file, map_location="cpu")
    config = TrainConfig.from_dict(ckpt["config"])
    G, D = build_models(config, ckpt["num_classes"], device="cpu")
    ema = use_ema and ckpt.get("G_ema") is not None
    G.load_state_dict(ckpt["G_ema"] if ema else ckpt["G"])
    D.load_state_dict(ckpt["D"])
    G.to(device).eval()
    D.to(device).eval()
    return LoadedModels(
        G=G,
        D=D,
        config=ckpt["config"],
        step=int(ckpt["step"]),
        path=file,
        used_ema=ema,
        class_names=ckpt.get("class_names"),
    )
