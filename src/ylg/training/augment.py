"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentation of what D sees.

On small data D memorises the few real images it sees again and again. DiffAugment applies
the same family of random, differentiable transforms to every image D looks at: the real
and the fake images of the D phase, and the fakes of the G phase (augmenting only the reals
would teach G to produce augmented images). The gradient flows through the transform to G.

The three policies, on images in [-1, 1] (the definitions of the DiffAugment paper and its
reference code; ranges are theirs):

- ``color``: brightness ``x + b``, b ~ U[-0.5, 0.5); saturation
  ``(x - mean_c) * s + mean_c``, s ~ U[0, 2) (mean over channels, per pixel); contrast
  ``(x - mean) * c + mean``, c ~ U[0.5, 1.5) (mean over the whole image); in that order;
- ``translation``: shift by integers ``(dy, dx)`` each ~ U{-r, ..., r}, r = round(size / 8);
  ``out[y, x] = in[y - dy, x - dx]``, 0 where that falls outside the image;
- ``cutout``: zero a square of side ``k = round(size / 2)``, rows and columns
  ``[c - k // 2, c - k // 2 + k)`` clipped to the image, with ``(cy, cx)`` each
  ~ U{0, ..., size - size % 2} (the reference code's range).

Every random number is drawn on the CPU for the whole *global* batch from a generator seeded
by ``(seed, step, phase)`` (like the latents, :func:`ylg.training.sampler.latents`), and each
process takes its micro-batch's slice: a run is deterministic per seed, resumes exactly, and
W processes equal one process with W accumulation rounds.

Colour and emoji: emoji classes partly differ by colour (flags, food, hearts), and
``color``'s saturation range (0 to 2x) turns a red heart grey. The small-data recipe uses
``translation,cutout``; ``color`` is available for data whose classes do not hinge on colour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["POLICIES", "Augment", "AugmentDraw", "parse_policy"]

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")``; ``""``, ``"none"`` or None ->
    ``()``; unknown names are an error that lists the valid ones."""
    if policy is None:
        return ()
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [n.strip() for n in names if n.strip() and n.strip() != "none"]
    bad = [n for n in names if n not in POLICIES]
    if bad:
        raise ValueError(
            f"augment policy {', '.join(map(repr, bad))} is not one of {', '.join(POLICIES)} "
            "(comma-separated, e.g. translation,cutout; empty or none for no augmentation)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"augment policy {policy!r} names an op twice")
    return tuple(names)


@dataclass(frozen=True)
class AugmentDraw:
    """The random parameters for ``n`` images (each a CPU tensor ``[n]``; absent ops None)."""

    brightness: Tensor | None = None
    saturation: Tensor | None = None
    contrast: Tensor | None = None
    shift: Tensor | None = None  # [n, 2] long: (dy, dx)
    cutout: Tensor | None = None  # [n, 2] long: centre (cy, cx)

    def __len__(self) -> int:
        for t in (self.brightness, self.shift, self.cutout):
            if t is not None:
                return t.shape[0]
        return 0

    def slice(self, start: int, stop: int) -> AugmentDraw:
        """The parameters of images ``start .. stop - 1``."""
        cut = {k: (None if v is None else v[start:stop]) for k, v in vars(self).items()}
        return AugmentDraw(**cut)

    @staticmethod
    def cat(first: AugmentDraw, second: AugmentDraw) -> AugmentDraw:
        """The parameters of ``first``'s images, then ``second``'s."""
        a, b = vars(first), vars(second)
        return AugmentDraw(**{k: None if a[k] is None else torch.cat([a[k], b[k]]) for k in a})


class Augment:
    """DiffAugment with a fixed policy for ``size`` x ``size`` images.

    ``draw(n, generator)`` draws the parameters of ``n`` images; ``apply(x, draw)`` transforms
    ``x [n, C, size, size]`` (differentiably); ``Augment(())`` is the identity.
    """

    def __init__(self, policy: str | Iterable[str] | None, size: int):
        self.policy = parse_policy(policy)
        self.size = int(size)
        self.shift_max = int(self.size * TRANSLATION_RATIO + 0.5)
        self.cut = int(self.size * CUTOUT_RATIO + 0.5)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __repr__(self) -> str:
        return f"Augment({','.join(self.policy) or 'none'!r}, size={self.size})"

    # -- drawing ---------------------------------------------------------------------------
    def draw(self, n: int, generator: torch.Generator) -> AugmentDraw:
        """Parameters for ``n`` images, drawn on the CPU from ``generator`` in a fixed order."""
        g, out = generator, {}
        if "color" in self.policy:
            out["brightness"] = torch.rand(n, generator=g) - 0.5
            out["saturation"] = torch.rand(n, generator=g) * 2.0
            out["contrast"] = torch.rand(n, generator=g) + 0.5
        if "translation" in self.policy:
            r = self.shift_max
            out["shift"] = torch.randint(-r, r + 1, (n, 2), generator=g)
        if "cutout" in self.policy:
            hi = self.size + (1 - self.size % 2)
            out["cutout"] = torch.randint(0, hi, (n, 2), generator=g)
        return AugmentDraw(**out)

    # -- applying --------------------------------------------------------------------------
    def apply(self, x: Tensor, draw: AugmentDraw) -> Tensor:
        """``x [n, C, H, W]`` transformed by ``draw`` (its ``n`` images, in policy order)."""
        if not self.policy:
            return x
        if len(draw) != x.shape[0]:
            raise ValueError(f"{len(draw)} augmentation draws for a batch of {x.shape[0]}")
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"images of {tuple(x.shape[-2:])}, augmenter for {self.size} px")
        for op in self.policy:
            x = getattr(self, f"_{op}")(x, draw)
        return x

    def _color(self, x: Tensor, d: AugmentDraw) -> Tensor:
        def per_image(t: Tensor) -> Tensor:  # [n] -> [n, 1, 1, 1] on x's device and dtype
            return t.to(x.device, x.dtype).view(-1, 1, 1, 1)

        x = x + per_image(d.brightness)
        mean_c = x.mean(dim=1, keepdim=True)  # [n, 1, H, W]
        x = (x - mean_c) * per_image(d.saturation) + mean_c
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # [n, 1, 1, 1]
        return (x - mean) * per_image(d.contrast) + mean

    def _translation(self, x: Tensor, d: AugmentDraw) -> Tensor:
        n, _, h, w = x.shape
        shift = d.shift.to(x.device)
        rows = torch.arange(h, device=x.device)[None] - shift[:, :1]  # [n, H]: source row
        cols = torch.arange(w, device=x.device)[None] - shift[:, 1:]  # [n, W]: source col
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None]
        batch = torch.arange(n, device=x.device)[:, None, None]
        moved = x.permute(0, 2, 3, 1)[  # [n, H, W, C]
            batch, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]
        ]
        moved = moved * inside[..., None].to(x.dtype)  # zero where the source is outside
        return moved.permute(0, 3, 1, 2)  # [n, C, H, W]

    def _cutout(self, x: Tensor, d: AugmentDraw) -> Tensor:
        _, _, h, w = x.shape
        start = d.cutout.to(x.device) - self.cut // 2  # [n, 2]: first row / col of the square
        r = torch.arange(h, device=x.device)[None]
        c = torch.arange(w, device=x.device)[None]
        in_rows = (r >= start[:, :1]) & (r < start[:, :1] + self.cut)  # [n, H]
        in_cols = (c >= start[:, 1:]) & (c < start[:, 1:] + self.cut)  # [n, W]
        keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [n, H, W]
        return x * keep[:, None].to(x.dtype)
