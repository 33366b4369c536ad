"""Inversion of a generator with the discriminator's attention (the YLG paper, Sec. 6).

``invert(G, D, images, labels, method=...)`` searches latents ``z`` with ``G(z) ~ x`` by
descending a loss in pixel space (``pixel``), in the discriminator's pre-attention feature
space (``features``), or in that feature space weighted by the saliency maps of D's attention
(``saliency``, ``saliency-heads``; ``generator-saliency`` weights pixels instead), or with
the authors' exact objective and optimiser (``original``). ``saliency_maps(D, images,
normalization=...)`` gives those maps; ``Lookahead`` is the optional optimiser wrapper.
See docs/inversion.md.
"""

from ylg.attention.analysis import project_saliency, saliency_maps
from ylg.inversion.invert import InversionResult, invert
from ylg.inversion.latents import initial_latents
from ylg.inversion.lookahead import Lookahead
from ylg.inversion.losses import METHODS, Objective
from ylg.inversion.quality import psnr, reconstruction_quality, ssim

__all__ = [
    "METHODS",
    "InversionResult",
    "Lookahead",
    "Objective",
    "initial_latents",
    "invert",
    "project_saliency",
    "psnr",
    "reconstruction_quality",
    "saliency_maps",
    "ssim",
]
