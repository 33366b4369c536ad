"""The inversion objectives, one function per method, and the object that prepares them.

Notation: ``x`` the target images, ``G(z)`` the reconstructions, ``f = D0`` the
discriminator up to (not including) its attention layer, ``S_h`` head ``h``'s saliency map of
the *target* (:func:`ylg.attention.analysis.saliency_maps`) projected by nearest neighbour to
``f``'s spatial size and rescaled to spatial mean 1, ``S'`` the mean over heads. Every loss is per
sample (shape ``[N]``) and a mean over channels and positions, so that a uniform saliency
reproduces the ``features`` loss exactly (and ``saliency-heads`` gives ``heads`` times it):

- ``pixel``:              mean (G(z) - x)^2                      (Bora et al.; the baseline)
- ``features``:           mean (f(G(z)) - f(x))^2
- ``saliency``:           mean (S' * (f(G(z)) - f(x)))^2          (the paper's Eq. 2)
- ``saliency-heads``:     sum_h mean (S_h * (f(G(z)) - f(x)))^2   (Eq. 3, the default)
- ``generator-saliency``: mean (S'_img * (G(z) - x))^2            (Eq. 4; S' upsampled to
  the image by nearest neighbour)
- ``original``:           sum_{h in 0..3} ||T_h * (f(G(z)) - f(x))||_2, the authors' code
  (``inverse_image.py``): heads 0-3 (the RTL heads), ``T_h`` the ``code``-normalised map
  projected by nearest neighbour *without* rescaling, unsquared L2 norms. In the original
  ``tf.norm`` runs over the whole batch, i.e. over all restarts of the one image, so the
  restarts are coupled: the optimised scalar is ``sum_h sqrt(sum_r ||T_h * d_r||^2)`` over an
  image's restarts ``r`` (:meth:`Objective.objective`); the per-restart loss used to pick a
  restart (which the original does not do: it saves all 8) is ``sum_h ||T_h * d_r||``.

The saliency is that of the real image and is computed once, without gradients (or given:
the benchmark's controls pass uniform, shuffled or another D's maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ylg.attention.analysis import (
    attention_masks,
    attention_probs,
    project_saliency,
    saliency_from_probs,
    select_heads,
)

__all__ = [
    "METHODS",
    "Objective",
    "check_method",
    "features_loss",
    "generator_saliency_loss",
    "original_head_norms",
    "pixel_loss",
    "saliency_heads_loss",
    "saliency_loss",
]


def pixel_loss(fake: Tensor, target: Tensor) -> Tensor:
    """``[N, 3, R, R]`` x2 -> ``[N]``: mean squared pixel error."""
    return (fake - target).pow(2).flatten(1).mean(dim=1)


def features_loss(fake_features: Tensor, target_features: Tensor) -> Tensor:
    """``[N, C, h, w]`` x2 -> ``[N]``: mean squared error of D0 features."""
    return (fake_features - target_features).pow(2).flatten(1).mean(dim=1)


def saliency_loss(fake_features: Tensor, target_features: Tensor, weight: Tensor) -> Tensor:
    """Eq. 2: features ``[N, C, h, w]``, ``weight`` ``S'`` ``[N, 1, h, w]`` -> ``[N]``."""
    diff = (fake_features - target_features) * weight  # [N, C, h, w]
    return diff.pow(2).flatten(1).mean(dim=1)


def saliency_heads_loss(fake_features: Tensor, target_features: Tensor, weights: Tensor) -> Tensor:
    """Eq. 3: features ``[N, C, h, w]``, ``weights`` ``S_h`` ``[N, heads, h, w]`` -> ``[N]``.

    ``sum_h mean_{c,i,j} (S_h[i,j] * d[c,i,j])^2``, computed as
    ``sum_{i,j} (sum_h S_h^2)[i,j] * (sum_c d^2)[i,j] / (C h w)`` without materialising
    ``[N, heads, C, h, w]``.
    """
    c, h, w = fake_features.shape[1:]
    sq = (fake_features - target_features).pow(2).sum(dim=1)  # [N, h, w]
    head_weight = weights.pow(2).sum(dim=1)  # [N, h, w]
    return (head_weight * sq).flatten(1).sum(dim=1) / (c * h * w)


def generator_saliency_loss(fake: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Eq. 4: images ``[N, 3, R, R]``, ``weight`` (``S'`` at image size) ``[N, 1, R, R]``
    -> ``[N]``."""
    return ((fake - target) * weight).pow(2).flatten(1).mean(dim=1)


def original_head_norms(fake_features: Tensor, target_features: Tensor, weights: Tensor) -> Tensor:
    """The original's terms before the root: features ``[N, C, h, w]``, ``weights`` ``T_h``
    ``[N, heads, h, w]`` -> ``[N, heads]`` squared norms ``||T_h * d||^2`` (summed over
    channels and positions), computed as ``sum_{i,j} T_h[i,j]^2 (sum_c d^2)[i,j]``."""
    sq = (fake_features - target_features).pow(2).sum(dim=1)  # [N, h, w]
    return (weights.pow(2) * sq[:, None]).flatten(2).sum(dim=2)  # [N, heads]


#: method name -> (needs D0 features, needs D's attention saliency)
METHODS: dict[str, tuple[bool, bool]] = {
    "pixel": (False, False),
    "features": (True, False),
    "saliency": (True, True),
    "saliency-heads": (True, True),
    "generator-saliency": (False, True),
    "original": (True, True),
}

#: the heads the original inversion uses: 0-3, the RTL heads of the ``ylg`` layout (heads
#: 4-7 are LTR), in the authors' code and in ylg's head order alike.
ORIGINAL_HEADS = (0, 1, 2, 3)


def original_heads(attention: nn.Module) -> tuple[int, ...]:
    """The heads ``original`` uses by default: the RTL heads of the layer's layout (exactly
    :data:`ORIGINAL_HEADS` for the ``ylg`` layout); heads 0-3 for an explicit mask tensor.

    Raises ``ValueError`` when the layout has no RTL head (e.g. ``dense``): pass ``heads``.
    """
    specs = getattr(attention, "_specs", None)
    if specs is None:
        n = int(getattr(attention, "heads", 0))
        if n < 4:
            raise ValueError(f"method 'original' uses heads 0-3 but the layer has {n} heads")
        return ORIGINAL_HEADS
    rtl = tuple(h for h, spec in enumerate(specs) if spec != "dense" and spec[0] == "rtl")
    if not rtl:
        raise ValueError(
            "method 'original' uses the RTL heads (0-3 of the 'ylg' layout), but this "
            f"discriminator's heads are {list(specs)}; pass heads=... to choose others"
        )
    return rtl


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not known; valid: {', '.join(METHODS)}")
    return method


@dataclass
class Objective:
    """A method's loss against fixed targets: ``objective(fake [N, 3, R, R]) -> [N]``.

    Build with :meth:`prepare`; target features and saliency weights are computed once there
    (no gradients) and reused at every step. ``group`` is the number of consecutive latents
    that belong to one target (its restarts); only ``original`` couples them.
    """

    method: str
    D: nn.Module | None
    target: Tensor  # [N, 3, R, R]
    target_features: Tensor | None = None  # [N, C, h, w]
    weight: Tensor | None = None  # [N, 1 or heads, h, w] or [N, 1, R, R]
    saliency: Tensor | None = None  # [N, heads, hk, wk], the maps used (before projection)
    group: int = 1

    @classmethod
    @torch.no_grad()
    def prepare(
        cls,
        method: str,
        D: nn.Module | None,
        target: Tensor,
        *,
        normalization: str | None = None,
        heads: Sequence[int] | None = None,
        saliency: Tensor | None = None,
    ) -> Objective:
        """Target features and weights of ``method``.

        Args:
            normalization: of the saliency maps (:mod:`ylg.attention.analysis`); default
                ``code`` for ``original``, ``paper`` for the others.
            heads: heads whose maps are used; default :func:`original_heads` (the RTL
                heads: 0-3 of the ``ylg`` layout) for ``original``, all for the others.
            saliency: ``[N, M, hk, wk]`` maps to use instead of D's (controls: uniform,
                shuffled, another discriminator's); ``normalization`` and ``heads`` are then
                not applied.
        """
        check_method(method)
        needs_features, needs_saliency = METHODS[method]
        if (needs_features or needs_saliency) and D is None:
            raise ValueError(f"method {method!r} needs a discriminator, got D=None")
        if needs_features and not hasattr(D, "features"):
            raise ValueError(
                f"method {method!r} needs D.features(x); {type(D).__name__} has no such method"
            )
        obj = cls(method=method, D=D, target=target)
        if not (needs_features or needs_saliency):
            return obj
        if needs_saliency and saliency is None and getattr(D, "attention", None) is None:
            raise ValueError(
                f"method {method!r} needs a discriminator with an attention layer, but this "
                "checkpoint has none (attention variant 'none'); use 'pixel' or 'features'"
            )
        features = D.features(target)  # [N, C, h, w]
        if needs_features:
            obj.target_features = features
        if not needs_saliency:
            return obj
        if saliency is None:
            if normalization is None:
                normalization = "code" if method == "original" else "paper"
            if heads is None and method == "original":
                heads = original_heads(D.attention)
            probs, key_grid = attention_probs(D, features)  # [N, heads, Nq, Nk]
            masks = None
            if normalization != "paper":
                masks = attention_masks(D.attention, probs, tuple(features.shape[-2:]))
            maps = saliency_from_probs(probs, key_grid, normalization, masks)
            saliency = select_heads(maps, heads)  # [N, heads', hk, wk]
        elif saliency.dim() != 4 or saliency.shape[0] != target.shape[0]:
            raise ValueError(
                f"saliency must be [N={target.shape[0]}, M, hk, wk], got {tuple(saliency.shape)}"
            )
        obj.saliency = saliency.float().to(features.device)
        if method == "original":
            obj.weight = project_saliency(obj.saliency, features.shape[-2:], mean_one=False)
        elif method == "saliency-heads":
            obj.weight = project_saliency(obj.saliency, features.shape[-2:])
        else:
            size = features.shape[-2:] if method == "saliency" else target.shape[-2:]
            mean_map = obj.saliency.mean(dim=1, keepdim=True)  # [N, 1, hk, wk]
            obj.weight = project_saliency(mean_map, size)
        return obj

    def repeat(self, times: int) -> Objective:
        """The same objective with every target repeated ``times`` times (restarts)."""

        def rep(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.repeat_interleave(times, dim=0)

        return Objective(
            self.method,
            self.D,
            rep(self.target),
            rep(self.target_features),
            rep(self.weight),
            rep(self.saliency),
            group=self.group * times,
        )

    def losses(self, fake: Tensor) -> tuple[Tensor, Tensor]:
        """``fake [N, 3, R, R]`` -> (per-latent losses ``[N]``, the scalar to descend).

        The scalar is the sum of the per-latent losses (each latent's gradient is that of its
        own loss), except for ``original``, whose norms span each target's ``group`` of
        restarts as in the authors' code.
        """
        if self.method != "original":
            loss = self(fake)
            return loss, loss.sum()
        sq = original_head_norms(self.D.features(fake), self.target_features, self.weight)
        per_latent = sq.clamp_min(1e-30).sqrt().sum(dim=1)  # [N]
        n, heads = sq.shape
        grouped = sq.view(n // self.group, self.group, heads).sum(dim=1)  # [images, heads]
        return per_latent, grouped.clamp_min(1e-30).sqrt().sum()

    def __call__(self, fake: Tensor) -> Tensor:
        m = self.method
        if m == "pixel":
            return pixel_loss(fake, self.target)
        if m == "generator-saliency":
            return generator_saliency_loss(fake, self.target, self.weight)
        fake_features = self.D.features(fake)  # [N, C, h, w]
        if m == "features":
            return features_loss(fake_features, self.target_features)
        if m == "saliency":
            return saliency_loss(fake_features, self.target_features, self.weight)
        if m == "original":
            sq = original_head_norms(fake_features, self.target_features, self.weight)
            return sq.clamp_min(1e-30).sqrt().sum(dim=1)
        return saliency_heads_loss(fake_features, self.target_features, self.weight)
