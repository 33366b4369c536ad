"""ylg: Your Local GAN (Daras et al., 2019) in PyTorch.

2-D local sparse attention with ESA, information flow graphs, YLG-SAGAN models and
training, FID / IS / KID evaluation, and inversion with the discriminator's attention.
"""

__version__ = "0.1.0"
