"""YLG-SAGAN: the generator and discriminator of every row of the paper's Table 1.

- :class:`Generator` / :class:`Discriminator`: SAGAN (tensorflow-gan's example, the code the
  YLG paper modified) at 32, 64, 128 or 256 pixels, conditional or not, with one attention
  layer chosen by name;
- :mod:`ylg.models.variants`: the attention variants (``none``, ``sagan``, ``sagan8``,
  ``ylg``, ``ylg-noesa``, ``ylg-strided``, ``ylg-hilbert``, ``ylg-colocate``);
- :mod:`ylg.models.layers`: SN layers, conditional batch norm, residual blocks.
"""

from ylg.models.discriminator import DISCRIMINATOR_ARCHS, Discriminator, DiscriminatorArch
from ylg.models.generator import GENERATOR_ARCHS, RESOLUTIONS, Generator, GeneratorArch
from ylg.models.variants import VARIANTS, attention_kwargs

__all__ = [
    "DISCRIMINATOR_ARCHS",
    "GENERATOR_ARCHS",
    "RESOLUTIONS",
    "VARIANTS",
    "Discriminator",
    "DiscriminatorArch",
    "Generator",
    "GeneratorArch",
    "attention_kwargs",
]
