"""Training YLG-SAGAN: config and presets, hinge loss, the loop in named phases, resume rules.

    from ylg.training import resolve, train
    result = train(resolve("demo", {"steps": 100}), "runs/try")

Names are imported lazily so that ``ylg --help`` (which reads the config dataclass) does not
import torch. ``LoadedModels``, ``load_checkpoint`` and ``load_for_inference`` live on the
lower floors (:mod:`ylg.models.loading`, :mod:`ylg.runtime.checkpoint`) and are re-exported
here for convenience.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "ylg.training.config",
    "TrainConfig": "ylg.training.config",
    "resolve": "ylg.training.config",
    "HingeLoss": "ylg.training.loss",
    "LoadedModels": "ylg.models.loading",
    "load_checkpoint": "ylg.runtime.checkpoint",
    "load_for_inference": "ylg.models.loading",
    "NonFiniteLossError": "ylg.training.loop",
    "TrainResult": "ylg.training.loop",
    "train": "ylg.training.loop",
    "resume_plan": "ylg.training.resume",
    "resume_config": "ylg.training.resume",
    "saved_config": "ylg.training.resume",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
