"""Training YLG-SAGAN: config and presets, hinge loss, the loop, checkpoints, DDP helpers.

from ylg.training import resolve, train
result = train(resolve("demo", {"steps": 100}), "runs/try")
"""

from ylg.training.checkpoint import LoadedModels, load_checkpoint, load_for_inference
from ylg.training.config import PRESETS, TrainConfig, resolve
from ylg.training.loop import NonFiniteLossError, TrainResult, train
from ylg.training.loss import HingeLoss

__all__ = [
    "PRESETS",
    "HingeLoss",
    "LoadedModels",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "load_for_inference",
    "resolve",
    "train",
]
