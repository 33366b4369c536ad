"""Figures of what an attention layer looks at: saliency overlays, query points, head masks.

All functions take CPU or GPU tensors, return a matplotlib ``Figure`` (Agg-safe; nothing is
shown) and have a ``save_*`` twin writing a PNG. Token grids are square and in raster order,
as in :class:`ylg.attention.YLGAttention2d` (query grid = the layer's input, key grid = half
of it when it pools).

- :func:`saliency_figure`: the image, then per head its saliency map over the image (the
  paper's Figures 5 / 8); which normalisation is up to the caller
  (:func:`ylg.attention.analysis.saliency_from_probs`); ``ylg attention``, the inversion
  outputs and the trainer's snapshots use ``relative`` (1 = the head attends uniformly
  within its mask), so a map shows the model, not the mask;
- :func:`query_attention_figure`: for chosen query points, each head's attention over the
  keys drawn over the image, relative to the uniform share of that query's row by default,
  the query marked (Figure 6);
- :func:`head_masks_figure`: each head's boolean mask ``[Nq, Nk]``.

Heat maps are drawn on one colour scale shared by all panels of a figure (0 to the largest
value unless ``vmax`` is given), with a colour bar, and panels are titled with the head's
name (``0: RTL step 0``, see :func:`ylg.attention.analysis.head_names`) when given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "figure_to_uint8",
    "head_masks_figure",
    "query_attention_figure",
    "query_cell",
    "query_maps",
    "saliency_figure",
    "save_figure",
    "square_side",
]


def square_side(n: int, what: str) -> int:
    """The side of a square grid of ``n`` tokens; ValueError naming ``what`` otherwise."""
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{what}={n} tokens do not form a square grid")
    return side


def _image_hwc(image: Tensor):
    """``[3, H, W]`` in [-1, 1] -> numpy ``[H, W, 3]`` in [0, 1]."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, H, W], got shape {tuple(image.shape)}")
    return ((image.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def _upsample(maps: Tensor, size: int) -> Tensor:
    """``[M, h, w]`` -> ``[M, size, size]`` by nearest neighbour (cells stay visible)."""
    return F.interpolate(maps[None].float(), size=(size, size), mode="nearest")[0]


def _new_figure(rows: int, cols: int, panel: float = 1.8):
    # A bare Figure (no pyplot): no global backend state, no windows, safe in threads.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel * cols, panel * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _overlay(ax, image_hwc, heat, vmax: float, alpha: float = 0.6, cmap: str = "inferno"):
    """Grayscale image with ``heat [H, W]`` on top, colour scale ``[0, vmax]``; returns the
    heat's AxesImage (for a colour bar)."""
    gray = image_hwc.mean(axis=2)
    ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
    return ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0, vmax=vmax)


def _titles(heads: int, head_names: Sequence[str] | None) -> list[str]:
    if head_names is None:
        return [f"head {h}" for h in range(heads)]
    if len(head_names) != heads:
        raise ValueError(f"head_names has {len(head_names)} names for {heads} heads")
    return list(head_names)


def _colorbar(fig, mappable, axes, label: str | None) -> None:
    bar = fig.colorbar(mappable, ax=list(axes), shrink=0.8, pad=0.01)
    if label:
        bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)


def saliency_figure(
    image: Tensor,
    saliency: Tensor,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    *,
    head_names: Sequence[str] | None = None,
    vmax: float | None = None,
    colorbar_label: str | None = "attention / uniform share",
):
    """The image and one overlay per head, on one colour scale, with a colour bar.

    Args:
        image: ``[3, R, R]`` in [-1, 1].
        saliency: ``[heads, hk, wk]`` (e.g. :func:`ylg.attention.analysis.saliency_maps` of one
            image), or a stack of layers ``[L, heads, hk, wk]`` drawn as ``L`` rows
            (``labels`` names the rows).
        head_names: panel titles (default ``head h``).
        vmax: top of the colour scale (default: the largest value drawn).
        colorbar_label: what the values are (the default fits ``relative`` maps).
    """
    if saliency.dim() == 3:
        saliency = saliency[None]
    if saliency.dim() != 4:
        raise ValueError(
            f"saliency must be [heads, hk, wk] or [L, heads, hk, wk], got {tuple(saliency.shape)}"
        )
    rows, heads = saliency.shape[:2]
    titles = _titles(heads, head_names)
    img = _image_hwc(image)
    size = img.shape[0]
    sal = saliency.detach().float().cpu()
    top = float(sal.max()) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0
    fig, axes = _new_figure(rows, heads + 1)
    mappable = None
    for r in range(rows):
        up = _upsample(sal[r], size).numpy()  # [heads, R, R]
        axes[r, 0].imshow(img)
        axes[r, 0].set_title(labels[r] if labels else "image", fontsize=8)
        for h in range(heads):
            mappable = _overlay(axes[r, h + 1], img, up[h], top)
            axes[r, h + 1].set_title(titles[h], fontsize=8)
    _colorbar(fig, mappable, axes[:, 1:].flat, colorbar_label)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def query_cell(point: tuple[int, int], image_size: int, grid: int) -> tuple[int, int]:
    """The query grid cell ``(row, col)`` holding image pixel ``point = (row, col)``."""
    r, c = point
    if not (0 <= r < image_size and 0 <= c < image_size):
        raise ValueError(
            f"query point ({r}, {c}) is outside the {image_size}x{image_size} image; rows and "
            f"columns must be in 0..{image_size - 1}"
        )
    return r * grid // image_size, c * grid // image_size


def query_maps(probs: Tensor, cells: Sequence[tuple[int, int]]) -> Tensor:
    """Rows of ``probs [heads, Nq, Nk]`` for query cells -> ``[len(cells), heads, hk, wk]``."""
    heads, nq, nk = probs.shape
    gq = square_side(nq, "Nq")
    gk = square_side(nk, "Nk")
    index = torch.tensor([r * gq + c for r, c in cells], device=probs.device)
    rows = probs.index_select(1, index).transpose(0, 1)  # [P, heads, Nk]
    return rows.reshape(len(cells), heads, gk, gk).float()


def query_attention_figure(
    image: Tensor,
    probs: Tensor,
    points: Sequence[tuple[int, int]],
    title: str | None = None,
    *,
    head_names: Sequence[str] | None = None,
    relative: bool = True,
    vmax: float | None = None,
):
    """For every query point (image pixel ``(row, col)``) a row: the image with the point,
    then each head's attention over the keys, the query marked by a cyan cross.

    Args:
        image: ``[3, R, R]`` in [-1, 1].
        probs: ``[heads, Nq, Nk]`` attention probabilities of this image.
        points: pixel coordinates in the ``R x R`` image.
        relative: draw ``p[q, k] * n_q`` (``n_q`` the keys the query may attend, its non-zero
            probabilities): 1 = the uniform share of the query's row; else the probabilities.
        head_names, vmax: as in :func:`saliency_figure`.
    """
    if probs.dim() != 3:
        raise ValueError(f"probs must be [heads, Nq, Nk], got shape {tuple(probs.shape)}")
    if not points:
        raise ValueError("points must name at least one query point (row, col)")
    img = _image_hwc(image)
    size = img.shape[0]
    heads, nq, _ = probs.shape
    titles = _titles(heads, head_names)
    gq = square_side(nq, "Nq")
    cells = [query_cell(p, size, gq) for p in points]
    p = probs.detach().float().cpu()
    if relative:
        p = p * (p != 0).sum(dim=-1, keepdim=True)  # [heads, Nq, Nk] x n_q
    maps = query_maps(p, cells)  # [P, heads, gk, gk]
    top = float(maps.max()) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0
    fig, axes = _new_figure(len(points), heads + 1)
    cell_px = size / gq
    mappable = None
    for i, ((r, c), (qr, qc)) in enumerate(zip(points, cells)):
        centre = ((qc + 0.5) * cell_px - 0.5, (qr + 0.5) * cell_px - 0.5)  # (x, y)
        axes[i, 0].imshow(img)
        axes[i, 0].set_title(f"query ({r}, {c})", fontsize=8)
        up = _upsample(maps[i], size).numpy()  # [heads, R, R]
        for j, ax in enumerate(axes[i]):
            if j > 0:
                mappable = _overlay(ax, img, up[j - 1], top)
                ax.set_title(titles[j - 1], fontsize=8)
            ax.plot(*centre, marker="x", color="cyan", markersize=7, markeredgewidth=2)
    _colorbar(
        fig,
        mappable,
        axes[:, 1:].flat,
        "attention / uniform share of the row" if relative else "attention probability",
    )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def head_masks_figure(masks: Tensor, title: str | None = None):
    """Each head's boolean mask ``[heads, Nq, Nk]`` (query rows, key columns, raster order;
    allowed = dark), with the fraction of allowed pairs in the panel title."""
    if masks.dim() != 3:
        raise ValueError(f"masks must be [heads, Nq, Nk], got shape {tuple(masks.shape)}")
    heads, nq, nk = masks.shape
    cols = min(heads, 4)
    rows = math.ceil(heads / cols)
    fig, axes = _new_figure(rows, cols, panel=2.4)
    m = masks.detach().cpu().bool()
    for h in range(rows * cols):
        ax = axes.flat[h]
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(m[h].float().numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto",
                  interpolation="nearest")  # fmt: skip
        density = m[h].float().mean().item()
        ax.set_title(f"head {h}: {density:.1%} of {nq}x{nk}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def figure_to_uint8(fig, dpi: int = 100) -> Tensor:
    """Render a matplotlib figure to a uint8 image ``[3, H, W]`` (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8)
    w, h = canvas.get_width_height()
    return rgba.view(h, w, 4)[..., :3].permute(2, 0, 1).contiguous()


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
