"""Lookahead (Zhang, Lucas, Hinton, Ba 2019) around any PyTorch optimiser.

PyTorch ships no Lookahead optimiser, so it is written here by hand. The inner ("fast")
optimiser steps as usual; every ``k`` of its steps the "slow" weights move a fraction
``alpha`` of the way towards the fast ones and the fast weights are reset to them::

    slow <- slow + alpha * (fast - slow);  fast <- slow

:func:`ylg.inversion.invert` uses it (k = 5, alpha = 0.5) around Adam by default for ylg's
methods (``lookahead=False`` turns it off). The authors' inversion code builds a Lookahead
(k = 5, alpha = 0.5) but never runs it in its optimisation loop (plain Adam), so the
``original`` method does not use it. The inner optimiser's state (Adam's moments) is kept across
synchronisations, as in the paper's algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Lookahead"]


class Lookahead:
    """Wrap ``optimizer``: ``step()`` runs it, and every ``k`` steps pulls the slow weights.

    Args:
        optimizer: the inner (fast) optimiser, e.g. ``torch.optim.Adam``.
        k: inner steps between synchronisations, ``>= 1``.
        alpha: slow-weight step size, in ``(0, 1]`` (``1`` is the inner optimiser alone).

    The slow weights start as a copy of the parameters at construction time.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got k={k!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got alpha={alpha!r}")
        self.optimizer = optimizer
        self.k = k
        self.alpha = float(alpha)
        self.steps = 0
        self.slow = [
            [p.detach().clone() for p in group["params"]] for group in optimizer.param_groups
        ]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def _synchronise(self) -> None:
        for group, slow_group in zip(self.optimizer.param_groups, self.slow):
            for fast, slow in zip(group["params"], slow_group):
                slow.add_(fast - slow, alpha=self.alpha)  # slow += alpha * (fast - slow)
                fast.copy_(slow)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One inner step; every ``k``-th call also a slow-weight update."""
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            self._synchronise()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "slow": [[s.clone() for s in group] for group in self.slow],
            "steps": self.steps,
            "k": self.k,
            "alpha": self.alpha,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        with torch.no_grad():
            for mine, theirs in zip(self.slow, state["slow"]):
                for s, t in zip(mine, theirs):
                    s.copy_(t)
        self.steps = int(state["steps"])
        self.k = int(state["k"])
        self.alpha = float(state["alpha"])

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"
