"""Attention figures of a checkpoint (``ylg attention``): what G's and D's heads look at.

With ``seed``, G generates an image from a truncated-normal latent and both G's attention
(while generating) and D's attention (on the result) are drawn. With ``image``, D's
attention on the real image is drawn; G's attention needs a latent, so it is drawn only when
``invert_steps > 0`` (the image is first inverted, and G's attention is the one it uses to
generate the reconstruction).

Files, for each network ``n`` in ``g``, ``d`` that has an attention layer::

    OUT/image.png         the image (OUT/reconstruction.png too after an inversion)
    OUT/n_saliency.png    per-head saliency over the image (Figures 5 / 8)
    OUT/n_queries.png     per query point, each head's attention over the image (Figure 6)
    OUT/n_masks.png       each head's mask [Nq, Nk]
    OUT/attention.json    what was drawn: sizes, query points and cells, class, sources

The maps use the ``relative`` normalisation by default (1 = the head attends uniformly within
its mask; see :mod:`ylg.attention.analysis`), one colour scale per figure with a colour bar,
and panels named by head (``0: RTL step 0``, ...).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ylg.attention.analysis import NORMALIZATIONS, head_names, saliency_from_probs
from ylg.data import load_image
from ylg.inversion.invert import frozen, invert
from ylg.inversion.latents import initial_latents
from ylg.models.pretrained import load_models
from ylg.runtime.device import resolve_device
from ylg.viz.attention import (
    head_masks_figure,
    query_attention_figure,
    query_cell,
    saliency_figure,
    save_figure,
)
from ylg.viz.grids import save_image

__all__ = ["attention_figures", "default_queries"]


def default_queries(resolution: int) -> list[tuple[int, int]]:
    """The centre and three other points spread over an ``R x R`` image."""
    r = resolution
    return [(r // 2, r // 2), (r // 4, r // 4), (r // 4, 3 * r // 4), (3 * r // 4, r // 4)]


def _draw(
    prefix: str,
    name: str,
    layer: nn.Module,
    image: Tensor,
    probs: Tensor,
    grid: int,
    queries: Sequence[tuple[int, int]],
    out: Path,
    normalization: str = "relative",
) -> tuple[list[Path], dict]:
    """Saliency, query and mask figures of one attention layer: ``probs [heads, Nq, Nk]``."""
    heads, nq, nk = probs.shape
    gk = math.isqrt(nk)
    masks = layer.masks(grid, grid)  # [heads, Nq, Nk]
    sal = saliency_from_probs(probs[None], (gk, gk), normalization, masks)[0]  # [heads, gk, gk]
    names = head_names(layer, heads)
    what = {
        "relative": "attention / uniform share within the mask",
        "code": "summed attention / queries that may see the key",
        "paper": "mean attention over all queries",
    }[normalization]
    paths = [
        save_figure(
            saliency_figure(
                image,
                sal,
                title=f"{name}: saliency per head ({normalization}: {what})",
                head_names=names,
                colorbar_label=what,
            ),
            out / f"{prefix}_saliency.png",
        ),
        save_figure(
            query_attention_figure(
                image, probs, queries, title=f"{name}: attention of queries", head_names=names
            ),
            out / f"{prefix}_queries.png",
        ),
        save_figure(
            head_masks_figure(layer.masks(grid, grid), title=f"{name}: head masks"),
            out / f"{prefix}_masks.png",
        ),
    ]
    info = {
        "heads": heads,
        "query_grid": [grid, grid],
        "key_grid": [gk, gk],
        "query_cells": [list(query_cell(q, image.shape[-1], grid)) for q in queries],
        "head_names": names,
        "normalization": normalization,
    }
    return paths, info


def attention_figures(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    image: str | os.PathLike | None = None,
    seed: int | None = None,
    label: int | None = None,
    queries: Sequence[tuple[int, int]] | None = None,
    invert_steps: int = 0,
    invert_method: str | None = None,
    device: str | torch.device = "auto",
    use_ema: bool = True,
    normalization: str = "relative",
) -> list[Path]:
    """Draw the attention figures described in the module doc; returns the written paths.

    Exactly one of ``image`` (a file) and ``seed`` is required. ``label``: the class for G
    (a seeded random class when ``None`` and G is conditional; with ``image`` it is the class
    of the inversion, searched when ``None``). ``queries``: image pixels ``(row, col)``,
    default :func:`default_queries`. ``normalization`` of the saliency maps: ``relative``
    (default), ``code`` or ``paper`` (see :mod:`ylg.attention.analysis`).

    Raises:
        ValueError: neither or both of ``image`` / ``seed``, no attention layer in the
            checkpoint, class or query point out of range, unreadable image.
        FileNotFoundError: missing checkpoint or image.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization={normalization!r} is not known; valid: {', '.join(NORMALIZATIONS)}"
        )
    if (image is None) == (seed is None):
        raise ValueError("give exactly one of image (a file) and seed (generate with G)")
    dev = resolve_device(device)
    models = load_models(checkpoint, device=dev, use_ema=use_ema)
    G, D = models.G, models.D
    if G.attention is None and D.attention is None:
        raise ValueError(
            f"checkpoint {models.path} has no attention layer (attention variant "
            f"{getattr(G, 'attention_variant', 'none')!r}); nothing to draw"
        )
    R, num_classes = int(G.resolution), int(G.num_classes)
    if label is not None and num_classes == 0:
        raise ValueError(f"class {label} given but the checkpoint's model is unconditional")
    if label is not None and not 0 <= label < num_classes:
        raise ValueError(
            f"class {label} is out of range: the model has {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )
    queries = list(queries) if queries else default_queries(R)
    for r, c in queries:
        if not (0 <= r < R and 0 <= c < R):
            raise ValueError(
                f"query point ({r}, {c}) is outside the {R}x{R} image the model sees; rows "
                f"and columns must be in 0..{R - 1}"
            )
    if invert_steps < 0:
        raise ValueError(f"invert_steps must be >= 0, got {invert_steps}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    info: dict = {"checkpoint": str(models.path), "step": models.step, "queries": queries}

    g_image = g_probs = None
    y = None if label is None else torch.tensor([label], device=dev)
    with frozen(G, D), torch.no_grad():
        if seed is not None:
            z = initial_latents(1, int(G.z_dim), seed).to(dev)  # [1, z_dim]
            if num_classes and y is None:
                gen = torch.Generator().manual_seed(seed)
                y = torch.randint(num_classes, (1,), generator=gen).to(dev)
            if G.attention is not None:
                x, g_probs = G(z, y, return_attention=True)  # [1, 3, R, R], [1, h, Nq, Nk]
            else:
                x = G(z, y)
            g_image = x
            info.update(source="generated", seed=seed)
        else:
            x = load_image(image, R)[None].to(dev)  # [1, 3, R, R]
            info.update(source=str(image))
        written.append(save_image(x[0], out / "image.png"))
        d_probs = None
        if D.attention is not None:
            features = D.features(x)  # [1, C, s, s]
            _, d_probs = D.attention(features, return_attention=True)  # [1, h, Nq, Nk]
            d_grid = features.shape[-1]

    if image is not None and invert_steps > 0 and G.attention is not None:
        method = invert_method or ("saliency-heads" if D.attention is not None else "pixel")
        result = invert(G, D, x, y, method=method, steps=invert_steps, restarts=4, progress=True)
        y = None if result.labels is None else result.labels.to(dev)
        with frozen(G), torch.no_grad():
            g_image, g_probs = G(result.latents.to(dev), y, return_attention=True)
        written.append(save_image(g_image[0], out / "reconstruction.png"))
        info.update(inverted_with=method, invert_steps=invert_steps)
    info["label"] = None if y is None else int(y[0])

    if g_probs is not None:
        paths, info["g"] = _draw(
            "g", "G", G.attention, g_image[0], g_probs[0], G.attention_resolution, queries, out,
            normalization,
        )  # fmt: skip
        written += paths
    elif image is not None and G.attention is not None:
        info["g"] = "not drawn: G's attention needs a latent; pass invert_steps > 0"
    if d_probs is not None:
        paths, info["d"] = _draw(
            "d", "D", D.attention, x[0], d_probs[0], d_grid, queries, out, normalization
        )
        written += paths
    path = out / "attention.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    written.append(path)
    return written
