"""The hinge loss of SAGAN / YLG-SAGAN, as a D phase and a G phase.

    L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z, y'), y'))]
    L_G = -E[D(G(z, y'), y')]

The loss object knows which module receives gradients in each phase: in the D phase the
generator runs under ``no_grad`` and the (possibly DDP-wrapped) discriminator is trained; in the
G phase the (possibly DDP-wrapped) generator is trained through the plain discriminator, whose
parameters the caller has frozen. Real and fake images go through D in one concatenated batch,
so that each phase is exactly one forward of the trained module (what DDP expects).

With an augmenter (:class:`ylg.training.augment.Augment`), every image D sees is augmented:
reals and fakes in the D phase, fakes in the G phase, each with the draw the caller passes.
With LeCam (:class:`ylg.training.lecam.LeCam`), its penalty is added to D's loss.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ylg.training.augment import Augment, AugmentDraw
from ylg.training.lecam import LeCam


class HingeLoss:
    """Hinge loss phases.

    Args:
        G, D: the plain generator and discriminator.
        G_train, D_train: what to call when that network is the one being trained (a DDP
            wrapper, a compiled module); default ``G`` / ``D``.
        autocast: a context-manager factory wrapped around the forwards (bf16), or None
            for full precision.
        augment: DiffAugment applied to what D sees (None or an empty policy: none).
        lecam: LeCam regulariser of D (None or weight 0: none).
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        *,
        G_train: nn.Module | None = None,
        D_train: nn.Module | None = None,
        autocast=None,
        augment: Augment | None = None,
        lecam: LeCam | None = None,
    ):
        self.G, self.D = G, D
        self.augment = augment if augment else None
        self.lecam = lecam if lecam else None
        self.G_train = G if G_train is None else G_train
        self.D_train = D if D_train is None else D_train
        self.autocast = autocast or contextlib.nullcontext

    def _augmented(self, x: Tensor, draw: AugmentDraw | None) -> Tensor:
        if self.augment is None:
            return x
        if draw is None:
            raise ValueError("an augmenting loss needs the draw of each batch")
        return self.augment.apply(x, draw)

    def d_phase(
        self,
        real: Tensor,
        real_y: Tensor | None,
        z: Tensor,
        fake_y: Tensor | None,
        draw: AugmentDraw | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """D loss on real images ``[B, 3, R, R]`` and fakes from ``z [B', z_dim]``; ``draw``:
        the augmentation of the ``B + B'`` images (reals first) when augmenting."""
        with torch.no_grad(), self.autocast():
            fake = self.G(z, fake_y)
        x = torch.cat([real, fake.to(real.dtype)])  # [B + B', 3, R, R]
        x = self._augmented(x, draw)
        y = None if real_y is None else torch.cat([real_y, fake_y])
        with self.autocast():
            logits = self.D_train(x, y).float()  # [B + B']
        real_logits, fake_logits = logits.split([real.shape[0], fake.shape[0]])
        loss_real = F.relu(1.0 - real_logits).mean()
        loss_fake = F.relu(1.0 + fake_logits).mean()
        loss = loss_real + loss_fake
        stats = {}
        if self.lecam is not None:
            reg = self.lecam.penalty(real_logits, fake_logits)
            loss = loss + reg
            stats["lecam"] = reg.detach()
        stats |= {
            "loss_d": loss.detach(),
            "loss_d_real": loss_real.detach(),
            "loss_d_fake": loss_fake.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
        }
        return loss, stats

    def g_phase(
        self, z: Tensor, fake_y: Tensor | None, draw: AugmentDraw | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """G loss for fakes from ``z [B, z_dim]`` with labels ``fake_y [B]`` (or None);
        ``draw``: their augmentation when augmenting."""
        with self.autocast():
            fake = self.G_train(z, fake_y)
            logits = self.D(self._augmented(fake, draw), fake_y).float()  # [B]
        loss = -logits.mean()
        return loss, {"loss_g": loss.detach()}
