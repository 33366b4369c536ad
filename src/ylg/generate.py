"""Images from a trained generator: the truncation trick, grids, latent interpolation GIFs.

Library side of ``ylg generate``::

    from ylg.generate import generate
    paths = generate("runs/demo", "out", n=16, classes=[3], grid=True, interpolate=24)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn


def truncated_normal(
    shape: tuple[int, ...],
    threshold: float | None = 2.0,
    generator: torch.Generator | None = None,
    max_rounds: int = 1000,
) -> Tensor:
    """N(0, I) samples with every entry of magnitude above ``threshold`` redrawn until none is.

    This is the truncation trick of the original ``generate_images`` (a truncated normal by
    rejection). ``threshold=None`` means no truncation. Drawn on the CPU.
    """
    z = torch.randn(shape, generator=generator)
    if threshold is None:
        return z
    if not threshold > 0:
        raise ValueError(f"truncation threshold must be > 0 (or None), got {threshold}")
    for _ in range(max_rounds):
        bad = z.abs() > threshold
        n_bad = int(bad.sum())
        if n_bad == 0:
            return z
        z[bad] = torch.randn(n_bad, generator=generator)
    raise ValueError(f"truncation threshold {threshold} is too small to sample")


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of latents ``a``, ``b`` ``[D]`` at ``t`` ``[T]`` -> ``[T, D]``."""
    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.arccos((a_n * b_n).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    t = t[:, None]
    if so.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def _labels(G: nn.Module, n: int, classes: list[int] | None, generator) -> Tensor | None:
    num_classes = int(getattr(G, "num_classes", 0))
    if num_classes == 0:
        if classes:
            raise ValueError(f"classes={classes} given but the generator is unconditional")
        return None
    if classes:
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"classes {bad} out of range; valid: 0..{num_classes - 1}")
        pool = torch.tensor(classes)
        return pool[torch.arange(n) % len(pool)]
    return torch.randint(num_classes, (n,), generator=generator)


@torch.no_grad()
def sample(
    G: nn.Module,
    n: int,
    *,
    classes: list[int] | None = None,
    truncation: float | None = 2.0,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor | None]:
    """``n`` images ``[n, 3, R, R]`` in [-1, 1] (on the CPU) and their labels (or None).

    Labels cycle through ``classes`` when given, else are uniform over G's classes.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    g = torch.Generator().manual_seed(seed)
    z = truncated_normal((n, G.z_dim), truncation, g)
    y = _labels(G, n, classes, g)
    out = []
    for i in range(0, n, batch_size):
        zi = z[i : i + batch_size].to(device)
        yi = None if y is None else y[i : i + batch_size].to(device)
        out.append(G(zi, yi).float().cpu())
    return torch.cat(out).clamp(-1, 1), y


@torch.no_grad()
def interpolation_frames(
    G: nn.Module,
    steps: int,
    *,
    keyframes: int = 4,
    classes: list[int] | None = None,
    truncation: float | None = 2.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Frames ``[keyframes * steps, 3, R, R]`` of a looping slerp walk through ``keyframes``
    random latents, with one class (the first of ``classes``, else random) held fixed."""
    if steps < 2:
        raise ValueError(f"interpolation steps={steps} must be >= 2")
    if keyframes < 2:
        raise ValueError(f"keyframes={keyframes} must be >= 2")
    g = torch.Generator().manual_seed(seed)
    keys = truncated_normal((keyframes, G.z_dim), truncation, g)
    y = _labels(G, 1, classes[:1] if classes else None, g)
    t = torch.arange(steps) / steps
    z = torch.cat([slerp(keys[i], keys[(i + 1) % keyframes], t) for i in range(keyframes)])
    frames = []
    for i in range(0, z.shape[0], 64):
        zi = z[i : i + 64].to(device)
        yi = None if y is None else y.expand(zi.shape[0]).to(device)
        frames.append(G(zi, yi).float().cpu())
    return torch.cat(frames).clamp(-1, 1)


def generate(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    n: int = 16,
    classes: list[int] | None = None,
    truncation: float | None = 2.0,
    grid: bool = False,
    interpolate: int = 0,
    seed: int = 0,
    use_ema: bool = True,
    device: str = "cpu",
    batch_size: int = 64,
) -> list[Path]:
    """Write images (or one grid) and optionally an interpolation GIF from a checkpoint.

    Args:
        source: run directory (its latest checkpoint) or checkpoint file.
        out: output folder (created).
        n: number of images.
        classes: class labels to cycle through (conditional models); default uniform.
        truncation: resample latent entries above this magnitude (None: no truncation);
            the original code's default is 2.0.
        grid: write one ``grid.png`` instead of ``n`` files.
        interpolate: if > 0, also write ``interpolation.gif`` with that many frames per
            segment between latents.
    Returns:
        The written paths.
    """
    from ylg.training.checkpoint import load_for_inference
    from ylg.viz.grids import save_gif, save_grid, save_image

    models = load_for_inference(source, device=device, use_ema=use_ema)
    G = models.G
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = sample(
        G,
        n,
        classes=classes,
        truncation=truncation,
        seed=seed,
        batch_size=batch_size,
        device=device,
    )
    paths: list[Path] = []
    if grid:
        paths.append(save_grid(images, out / "grid.png"))
    else:
        for i, img in enumerate(images):
            tag = "" if labels is None else f"-class{int(labels[i])}"
            paths.append(save_image(img, out / f"{i:05d}{tag}.png"))
    if interpolate:
        frames = interpolation_frames(
            G, interpolate, classes=classes, truncation=truncation, seed=seed, device=device
        )
        paths.append(save_gif(frames, out / "interpolation.gif"))
    return paths
