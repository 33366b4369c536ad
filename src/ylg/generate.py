"""Images from a trained generator: the truncation trick, grids, latent interpolation GIFs.

Library side of ``ylg generate``::

    from ylg.generate import generate, parse_seeds
    paths = generate("runs/demo", "out", n=16, classes=[3], grid=True, interpolate=24)
    paths = generate("runs/demo", "out", seeds=parse_seeds("0-7,12"), classes=["star"])

``n`` images come from one seed (``seed``); ``seeds`` gives one image per seed, drawn from
that seed alone (StyleGAN's ``--seeds``), so a seed's image does not depend on the other
seeds. The interpolation GIF is enlarged with nearest neighbour (every pixel a ``K x K``
block) to at least :data:`GIF_MIN_WIDTH` pixels wide, for viewing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ylg.models.pretrained import load_models
from ylg.runtime.device import resolve_device
from ylg.viz.grids import save_gif, save_grid, save_image, to_uint8

#: the interpolation GIF is enlarged (nearest neighbour) to at least this width by default
GIF_MIN_WIDTH = 256


def parse_seeds(text: str) -> list[int]:
    """Seeds from StyleGAN-style ranges: ``"0-63"``, ``"0-7,12,20-23"`` (ends included).

    Raises ValueError naming the bad part: an empty range (``5-2``), a non-number, a
    negative seed, a repeated seed."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        start, dash, end = part.partition("-")
        if not (start.isdigit() and (not dash or end.isdigit())):
            raise ValueError(
                f"seeds {text!r}: {part!r} is not a seed or a range START-END of seeds >= 0 "
                "(e.g. 0-63 or 0-7,12,20-23)"
            )
        lo, hi = int(start), int(end) if dash else int(start)
        if lo > hi:
            raise ValueError(
                f"seeds {text!r}: the range {part!r} is empty (start > end); write START-END "
                f"with START <= END, e.g. {hi}-{lo}"
            )
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) < len(seeds):
        from collections import Counter

        repeated = sorted(s for s, count in Counter(seeds).items() if count > 1)
        raise ValueError(f"seeds {text!r}: seed(s) {repeated[:10]} given more than once")
    return seeds


def resolve_classes(
    classes: list[int | str] | None, class_names: list[str] | None, num_classes: int
) -> list[int] | None:
    """Class labels from names (the checkpoint's ``class_names``) or numbers.

    Numbers are checked later against ``num_classes``; an unknown name is a ValueError that
    lists the valid names."""
    if not classes:
        return None
    out = []
    for c in classes:
        if isinstance(c, int):
            out.append(c)
            continue
        if c.strip().lstrip("-").isdigit():
            out.append(int(c))
        elif num_classes == 0:
            raise ValueError(f"class {c!r} given but the generator is unconditional")
        elif not class_names:
            raise ValueError(
                f"class {c!r}: this checkpoint has no class names; give a number "
                f"0..{num_classes - 1}"
            )
        elif c in class_names:
            out.append(class_names.index(c))
        else:
            raise ValueError(
                f"class {c!r} is not a class of this checkpoint; valid: "
                f"{', '.join(class_names)} (or 0..{num_classes - 1})"
            )
    return out


def gif_scale_for(width: int, min_width: int = GIF_MIN_WIDTH) -> int:
    """The smallest integer factor that makes ``width`` at least ``min_width``."""
    return max(1, -(-min_width // width))


def upscale_nearest(images: Tensor, k: int) -> Tensor:
    """``[..., H, W]`` -> ``[..., H*k, W*k]``: every pixel repeated as a ``k x k`` block."""
    if k < 1:
        raise ValueError(f"scale {k} must be an integer >= 1")
    return images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


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
def sample_seeds(
    G: nn.Module,
    seeds: list[int],
    *,
    classes: list[int] | None = None,
    truncation: float | None = 2.0,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor | None]:
    """One image per seed ``[len(seeds), 3, R, R]`` in [-1, 1] (on the CPU), and the labels.

    Seed ``s`` draws its latent (then, without ``classes``, its class) from
    ``torch.Generator().manual_seed(s)`` alone, and its image is computed alone (batch 1;
    batched convolutions round differently), so it is bit for bit the same whatever the
    other seeds. Labels cycle through ``classes`` by position when given."""
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    num_classes = int(getattr(G, "num_classes", 0))
    pool = _labels(G, len(seeds), classes, None) if classes else None
    images, labels = [], []
    for i, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        z = truncated_normal((1, G.z_dim), truncation, g)  # [1, z_dim]
        if num_classes == 0:
            y = None
        else:
            y = pool[i : i + 1] if pool is not None else _labels(G, 1, None, g)
            labels.append(y)
        images.append(G(z.to(device), None if y is None else y.to(device)).float().cpu())
    return torch.cat(images).clamp(-1, 1), (torch.cat(labels) if labels else None)


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
    seeds: list[int] | None = None,
    classes: list[int | str] | None = None,
    truncation: float | None = 2.0,
    grid: bool = False,
    interpolate: int = 0,
    gif_scale: int | None = None,
    seed: int = 0,
    use_ema: bool = True,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> list[Path]:
    """Write images (or one grid) and optionally an interpolation GIF from a checkpoint.

    Args:
        source: run directory (its latest checkpoint), checkpoint file, or the name of a
            shipped model (:data:`ylg.models.pretrained.PRETRAINED`).
        out: output folder (created).
        n: number of images, all drawn from ``seed``.
        seeds: instead of ``n``: one image per seed (``seed0007.png``; see
            :func:`sample_seeds`, :func:`parse_seeds`).
        classes: classes to cycle through (conditional models), as numbers or the
            checkpoint's class names (``"star"``); default random.
        truncation: resample latent entries above this magnitude (None: no truncation);
            the original code's default is 2.0.
        grid: write one ``grid.png`` instead of ``n`` files.
        interpolate: if > 0, also write ``interpolation.gif`` with that many frames per
            segment between latents (keyframes drawn from ``seed``).
        gif_scale: enlarge the GIF this many times, nearest neighbour; default the smallest
            factor that makes it at least :data:`GIF_MIN_WIDTH` pixels wide.
        device: where G runs: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:N"``.
    Returns:
        The written paths.
    """
    if gif_scale is not None and gif_scale < 1:
        raise ValueError(f"gif_scale={gif_scale} must be an integer >= 1")
    if seeds is None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n={n!r} must be an integer >= 1")  # before anything is written
    device = resolve_device(device)
    models = load_models(source, device=device, use_ema=use_ema)
    G = models.G
    classes = resolve_classes(classes, models.class_names, int(getattr(G, "num_classes", 0)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if seeds is not None:
        images, labels = sample_seeds(
            G, seeds, classes=classes, truncation=truncation, device=device
        )
        names = [f"seed{s:04d}" for s in seeds]
    else:
        images, labels = sample(
            G,
            n,
            classes=classes,
            truncation=truncation,
            seed=seed,
            batch_size=batch_size,
            device=device,
        )
        names = [f"{i:05d}" for i in range(len(images))]
    paths: list[Path] = []
    if grid:
        paths.append(save_grid(images, out / "grid.png"))
    else:
        for i, img in enumerate(images):
            tag = "" if labels is None else f"-class{int(labels[i])}"
            paths.append(save_image(img, out / f"{names[i]}{tag}.png"))
    if interpolate:
        frames = interpolation_frames(
            G, interpolate, classes=classes, truncation=truncation, seed=seed, device=device
        )
        k = gif_scale if gif_scale is not None else gif_scale_for(frames.shape[-1])
        paths.append(save_gif(upscale_nearest(to_uint8(frames), k), out / "interpolation.gif"))
    return paths
