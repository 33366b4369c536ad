"""Build G and D from the options a run used, and rebuild them from a checkpoint.

This is what every consumer of a trained model (``generate``, ``metrics``, ``inversion``,
``viz``, ``experiments``) needs, so it lives on the models floor: none of them reaches up into
``ylg.training`` to get a model.

    G, D = build_models(config, num_classes)          # a TrainConfig or its dict
    m = load_for_inference("runs/demo")               # m.G, m.D (eval mode), m.config, ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ylg.models.discriminator import Discriminator
from ylg.models.generator import Generator
from ylg.runtime.checkpoint import find_checkpoint, load_checkpoint

__all__ = ["LoadedModels", "build_models", "load_for_inference"]

#: the options of a training config that decide the models' shapes
MODEL_OPTIONS = ("resolution", "attention", "g_width", "d_width", "z_dim")


def build_models(
    config: Any, num_classes: int, device: torch.device | str = "cpu"
) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` for ``config`` (resolution, attention variant, widths, z_dim) on ``device``.

    ``config`` is a :class:`ylg.training.TrainConfig` or a dict with those keys (a checkpoint's
    ``config``). ``num_classes`` is 0 for unconditional models. The weights are initialised
    from the current torch RNG state, so seed it first for reproducible weights.
    """
    get = config.__getitem__ if isinstance(config, Mapping) else config.__getattribute__
    try:
        opts = {name: get(name) for name in MODEL_OPTIONS}
    except (KeyError, AttributeError) as err:
        raise ValueError(f"model config lacks {err}; it needs {', '.join(MODEL_OPTIONS)}") from None
    G = Generator(
        opts["resolution"],
        num_classes,
        attention=opts["attention"],
        width=opts["g_width"],
        z_dim=opts["z_dim"],
    )
    D = Discriminator(
        opts["resolution"], num_classes, attention=opts["attention"], width=opts["d_width"]
    )
    return G.to(device), D.to(device)


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
    file = find_checkpoint(path)
    ckpt = load_checkpoint(file, map_location="cpu")
    G, D = build_models(ckpt["config"], ckpt["num_classes"], device="cpu")
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
