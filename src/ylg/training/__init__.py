"""Training YLG-SAGAN: config and presets, hinge loss, the loop, checkpoints, DDP helpers.

    from ylg.training import resolve, train
    result = train(resolve("demo", {"steps": 100}), "runs/try")

Names are imported lazily so that ``ylg --help`` (which reads the config dataclass) does not
import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "config",
    "TrainConfig": "config",
    "resolve": "config",
    "HingeLoss": "loss",
    "LoadedModels": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_for_inference": "checkpoint",
    "NonFiniteLossError": "loop",
    "TrainResult": "loop",
    "train": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
