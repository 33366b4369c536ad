"""``invert``: find latents whose generated images match given images.

For every target image, ``restarts`` latents (and, for a conditional G without a known
label, each of D's ``top_k`` classes) are optimised together in one batch: the batch is
``[images x candidate classes x restarts]``, one forward and backward per step. Each latent
starts from a standard normal truncated at 2 standard deviations and is moved by Adam, with
or without Lookahead (k = 5, alpha = 0.5), on the loss of the chosen method (see
:mod:`ylg.inversion.losses`). The losses of different latents are independent (except in
``original``, whose norms span an image's restarts as in the authors' code), and Adam acts
per coordinate, so batching images changes nothing but speed. After the last step the
restart with the lowest final loss is kept for each image.

Defaults depend on the method (:data:`METHOD_DEFAULTS`): ``original`` runs the authors'
settings (Adam lr 0.07, 1000 steps, 8 restarts, no Lookahead: their code builds Lookahead
ops but never runs them in the loop); ylg's methods run Adam lr 0.05 with Lookahead, 1500
steps, 4 restarts.

G and D run in eval mode with their parameters frozen: batch-norm statistics and the
spectral-norm power iterations are not updated (both only update in training mode), and the
models' modes and ``requires_grad`` flags are restored afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ylg.inversion.descent import (
    ESTIMATE_STEPS,
    RunTimeEstimate,
    autocast_for,
    invert_chunks,
    module_device,
    optimiser,
)
from ylg.inversion.latents import starting_points
from ylg.inversion.losses import check_method

__all__ = ["METHOD_DEFAULTS", "InversionResult", "frozen", "invert"]

#: per method: optimiser steps, Adam learning rate, restarts, Lookahead on/off
METHOD_DEFAULTS: dict[str, dict] = {
    **{
        m: {"steps": 1500, "lr": 0.05, "restarts": 4, "lookahead": True}
        for m in ("pixel", "features", "saliency", "saliency-heads", "generator-saliency")
    },
    "original": {"steps": 1000, "lr": 0.07, "restarts": 8, "lookahead": False},
}


@dataclass
class InversionResult:
    """What :func:`invert` found, per image (all tensors on the CPU).

    Attributes:
        latents: ``[B, z_dim]`` the best latent of each image.
        labels: ``[B]`` the class used (given, or the best of the searched ones); ``None``
            for an unconditional G.
        reconstructions: ``[B, 3, R, R]`` ``G(latents, labels)`` in ``[-1, 1]``.
        losses: ``[B]`` the final loss of the best restart.
        history: ``[B, restarts_total, steps + 1]`` the loss of every restart after
            ``t = 0 .. steps`` updates (``restarts_total = restarts * classes searched``).
        restart_labels: ``[B, restarts_total]`` the class each restart used, or ``None``.
        best: ``[B]`` index of the kept restart in ``history``.
        saliency: ``[B, heads, hk, wk]`` the targets' saliency maps (saliency methods only).
        method: the loss used.
        seconds: wall time of the whole inversion.
        settings: the resolved ``steps``, ``lr``, ``restarts``, ``lookahead``.
    """

    latents: Tensor
    labels: Tensor | None
    reconstructions: Tensor
    losses: Tensor
    history: Tensor
    restart_labels: Tensor | None
    best: Tensor
    saliency: Tensor | None
    method: str
    seconds: float
    settings: dict = field(default_factory=dict)


@contextlib.contextmanager
def frozen(*models: nn.Module) -> Iterator[None]:
    """Eval mode, no parameter gradients and cached spectral-norm weights, then restore."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    grads = [(p, p.requires_grad) for model in models for p in model.parameters()]
    try:
        for model in models:
            model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        # The parametrised (spectrally normalised) weights do not change during an
        # inversion: compute each once instead of at every forward.
        with parametrize.cached():
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={value!r}")


def _resolve_settings(
    method: str, steps: int | None, lr: float | None, restarts: int | None, lookahead
) -> dict:
    """The method's defaults (:data:`METHOD_DEFAULTS`) where an argument is ``None``."""
    check_method(method)
    defaults = METHOD_DEFAULTS[method]
    return {
        "steps": defaults["steps"] if steps is None else steps,
        "lr": defaults["lr"] if lr is None else lr,
        "restarts": defaults["restarts"] if restarts is None else restarts,
        "lookahead": defaults["lookahead"] if lookahead is None else bool(lookahead),
    }


def _check_inputs(
    G: nn.Module, images: Tensor, saliency: Tensor | None, settings: dict, batch_size: int
) -> None:
    """Errors that name the bad argument, its value and what is allowed."""
    _check_positive("steps", settings["steps"])
    _check_positive("restarts", settings["restarts"])
    _check_positive("batch_size", batch_size)
    lr = settings["lr"]
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got lr={lr!r}")
    if saliency is not None and (saliency.dim() != 4 or saliency.shape[0] != images.shape[0]):
        raise ValueError(
            f"saliency must be [B={images.shape[0]}, M, hk, wk], got {tuple(saliency.shape)}"
        )
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [B, 3, R, R], got {shape}")
    resolution = int(getattr(G, "resolution", images.shape[-1]))
    if images.shape[-2:] != (resolution, resolution):
        raise ValueError(
            f"images are {images.shape[-2]}x{images.shape[-1]} but the generator makes "
            f"{resolution}x{resolution} images; resize them first (ylg.data.load_image)"
        )


def _reconstruct(
    G: nn.Module, z: Tensor, y: Tensor | None, chunks: list[tuple[int, int]], device
) -> Tensor:
    """``G(z, y)`` chunk by chunk, on the CPU."""
    with torch.no_grad():
        return torch.cat(
            [
                G(z[lo:hi].to(device), None if y is None else y[lo:hi].to(device)).cpu()
                for lo, hi in chunks
            ]
        )


def invert(
    G: nn.Module,
    D: nn.Module | None,
    images: Tensor,
    labels: Tensor | int | None = None,
    method: str = "saliency-heads",
    steps: int | None = None,
    lr: float | None = None,
    restarts: int | None = None,
    *,
    seed: int = 0,
    top_k: int = 3,
    lookahead: bool | None = None,
    lookahead_k: int = 5,
    lookahead_alpha: float = 0.5,
    truncation: float = 2.0,
    batch_size: int = 8,
    normalization: str | None = None,
    heads: Sequence[int] | None = None,
    saliency: Tensor | None = None,
    amp: bool = False,
    progress: bool = False,
    on_estimate: Callable[[float], None] | None = None,
) -> InversionResult:
    """Invert ``images [B, 3, R, R]`` (in ``[-1, 1]``) through ``G``.

    Args:
        G: generator with ``z_dim``, ``num_classes`` and ``forward(z, y)``.
        D: discriminator with ``features`` (and ``attention`` for the saliency methods,
            ``class_scores`` to search classes); may be ``None`` for ``pixel`` with labels.
        labels: ``[B]`` classes, one int for all, or ``None``: for a conditional G, the
            ``top_k`` classes by ``D.class_scores`` are each tried with ``restarts`` latents.
        method: ``pixel``, ``features``, ``saliency``, ``saliency-heads``,
            ``generator-saliency`` or ``original`` (see :mod:`ylg.inversion.losses`).
        steps: optimiser steps; ``lr``: Adam's learning rate; ``restarts``: latents per image
            (and class). ``None``: the method's default (:data:`METHOD_DEFAULTS`).
        seed: seeds the initial latents; the same seed gives the same result.
        lookahead: wrap Adam in Lookahead (``None``: the method's default, on for ylg's
            methods, off for ``original``); ``lookahead_k``, ``lookahead_alpha``: its
            synchronisation period and step.
        truncation: the initial latents' truncation, in standard deviations.
        batch_size: images inverted together (each with all its restarts); the latents are
            drawn for all images first, so the result does not depend on it.
        normalization, heads: of the saliency maps (see :meth:`Objective.prepare`).
        saliency: ``[B, M, hk, wk]`` maps to use instead of D's attention (controls).
        amp: run G and D under bf16 autocast on CUDA (losses and latents stay float32;
            ignored on CPU).
        progress: show a tqdm progress bar.
        on_estimate: called once with the estimated total run time in seconds, measured on
            the first few steps and extrapolated (only when ``steps`` > 10).
    """
    settings = _resolve_settings(method, steps, lr, restarts, lookahead)
    _check_inputs(G, images, saliency, settings, batch_size)
    steps, restarts = settings["steps"], settings["restarts"]
    start = time.perf_counter()
    device = module_device(G)
    images = images.to(device=device, dtype=torch.float32)
    b = images.shape[0]
    autocast = autocast_for(amp, device)
    chunks = [(i, min(i + batch_size, b)) for i in range(0, b, batch_size)]
    make_optimiser = functools.partial(
        optimiser,
        lr=settings["lr"],
        lookahead=settings["lookahead"],
        k=lookahead_k,
        alpha=lookahead_alpha,
    )

    timer = None
    if on_estimate is not None and steps > 2 * ESTIMATE_STEPS:
        timer = RunTimeEstimate(on_estimate, start, steps * len(chunks))

    with frozen(*([G] if D is None else [G, D])):
        z_all, y_all = starting_points(
            G, D, images, labels, top_k=top_k, restarts=restarts, seed=seed, truncation=truncation
        )  # [B, T, z_dim], [B, T] or None
        history, latents, maps = invert_chunks(
            G,
            D,
            images,
            saliency,
            z_all,
            y_all,
            chunks,
            method=method,
            normalization=normalization,
            heads=heads,
            make_optimiser=make_optimiser,
            steps=steps,
            autocast=autocast,
            timer=timer,
            progress=progress,
        )  # [B, T, steps + 1], [B, T, z_dim], [B, M, hk, wk] or None
        finals = history[:, :, -1]  # [B, T]
        best = finals.argmin(dim=1)  # [B]
        rows = torch.arange(b)
        best_z = latents[rows, best]  # [B, z_dim]
        best_y = None if y_all is None else y_all.cpu()[rows, best]  # [B]
        recon = _reconstruct(G, best_z, best_y, chunks, device)
    return InversionResult(
        latents=best_z,
        labels=best_y,
        reconstructions=recon.float(),
        losses=finals[rows, best],
        history=history,
        restart_labels=None if y_all is None else y_all.cpu(),
        best=best,
        saliency=maps,
        method=method,
        seconds=time.perf_counter() - start,
        settings=settings,
    )
