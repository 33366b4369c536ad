"""LeCam regularisation (Tseng et al., CVPR 2021), for GANs on limited data.

    R = E[relu(D(x) - a_fake)^2] + E[relu(a_real - D(G(z)))^2]

where ``a_real`` and ``a_fake`` are exponential moving averages (decay 0.99) of D's mean
output on real and on fake images. For the first ``start`` = 1000 steps the averages just
track the current means (decay 0), so the early, large outputs of an untrained D are not
pulled towards anchors at 0 (ylg's choice; not checked against the authors' code). Added to
D's loss with a weight (``lecam``, e.g. 0.3), it keeps D's predictions close to the
anchors, which bounds how far D can separate the few real images it has seen from the
fakes. The published results help most together with DiffAugment on 10% of CIFAR.

The averages are updated once per step from the step's mean D outputs averaged over all
processes and accumulation rounds (the values of ``stats.jsonl``'s ``d_real`` / ``d_fake``),
so every process holds the same anchors; they are saved in the checkpoint.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["LeCam"]


class LeCam:
    """The LeCam penalty with its two anchors (start at 0, as in the reference code)."""

    def __init__(self, weight: float, decay: float = 0.99, start: int = 1000):
        if weight < 0:
            raise ValueError(f"lecam weight={weight} must be >= 0")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"lecam decay={decay} must be in [0, 1)")
        self.weight, self.decay, self.start = float(weight), float(decay), int(start)
        self.real_ema, self.fake_ema, self.updates = 0.0, 0.0, 0

    def __bool__(self) -> bool:
        return self.weight > 0

    def penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """``weight * R`` for this micro-batch's fp32 logits ``[B]`` and ``[B']``."""
        reg = F.relu(real_logits - self.fake_ema).pow(2).mean()
        reg = reg + F.relu(self.real_ema - fake_logits).pow(2).mean()
        return self.weight * reg

    def update(self, d_real: float, d_fake: float) -> None:
        """Move the anchors towards the step's mean outputs on real and fake images."""
        decay = self.decay if self.updates >= self.start else 0.0
        self.real_ema = decay * self.real_ema + (1 - decay) * float(d_real)
        self.fake_ema = decay * self.fake_ema + (1 - decay) * float(d_fake)
        self.updates += 1

    def state_dict(self) -> dict[str, float | int]:
        return {"real_ema": self.real_ema, "fake_ema": self.fake_ema, "updates": self.updates}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.real_ema, self.fake_ema = float(state["real_ema"]), float(state["fake_ema"])
        self.updates = int(state["updates"])
