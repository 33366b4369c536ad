"""Build the generator and discriminator a training config describes."""

from __future__ import annotations

import torch
from torch import nn

from ylg.training.config import TrainConfig


def build_models(
    config: TrainConfig, num_classes: int, device: torch.device | str = "cpu"
) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` for ``config`` (resolution, attention variant, widths, z_dim) on ``device``.

    ``num_classes`` is 0 for unconditional models. The weights are initialised from the
    current torch RNG state, so seed it first for reproducible weights.
    """
    from ylg.models import Discriminator, Generator

    G = Generator(
        config.resolution,
        num_classes,
        attention=config.attention,
        width=config.g_width,
        z_dim=config.z_dim,
    )
    D = Discriminator(
        config.resolution, num_classes, attention=config.attention, width=config.d_width
    )
    return G.to(device), D.to(device)
