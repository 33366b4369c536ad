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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ylg.inversion.lookahead import Lookahead
from ylg.inversion.losses import Objective, check_method

__all__ = ["METHOD_DEFAULTS", "InversionResult", "frozen", "initial_latents", "invert"]

#: per method: optimiser steps, Adam learning rate, restarts, Lookahead on/off
METHOD_DEFAULTS: dict[str, dict] = {
    **{
        m: {"steps": 1500, "lr": 0.05, "restarts": 4, "lookahead": True}
        for m in ("pixel", "features", "saliency", "saliency-heads", "generator-saliency")
    },
    "original": {"steps": 1000, "lr": 0.07, "restarts": 8, "lookahead": False},
}

#: steps timed (after a first, warm-up step) before ``on_estimate`` is called
ESTIMATE_STEPS = 5


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


def initial_latents(n: int, z_dim: int, seed: int, truncation: float = 2.0) -> Tensor:
    """``[n, z_dim]`` standard normal samples truncated to ``[-truncation, truncation]``,
    drawn on the CPU from a generator seeded with ``seed`` (reproducible on any device)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.empty(n, z_dim)
    torch.nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation, generator=generator)
    return z


def _device(module: nn.Module) -> torch.device:
    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _candidate_labels(
    G: nn.Module, D: nn.Module | None, images: Tensor, labels, top_k: int
) -> Tensor | None:
    """``[B, K]`` classes to try per image (``K = 1`` when given), or ``None``."""
    b = images.shape[0]
    num_classes = int(getattr(G, "num_classes", 0))
    if num_classes == 0:
        if labels is not None:
            raise ValueError(
                "labels were given but the generator is unconditional (num_classes=0); "
                "pass labels=None"
            )
        return None
    if labels is None:
        if D is None or not hasattr(D, "class_scores"):
            raise ValueError(
                "the class is unknown (labels=None) and no discriminator with class_scores "
                "was given to search for it; pass labels"
            )
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got top_k={top_k!r}")
        with torch.no_grad():
            scores = D.class_scores(images)  # [B, num_classes]
        return scores.topk(min(top_k, num_classes), dim=1).indices  # [B, K]
    labels = torch.as_tensor(labels, device=images.device)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.dim() == 0:
        labels = labels.expand(b)
    if labels.shape != (b,):
        raise ValueError(f"labels must be an int or have shape [{b}], got {tuple(labels.shape)}")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ValueError(
            f"class {int(bad[0])} is out of range: the model has {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )
    return labels.long()[:, None]  # [B, 1]


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={value!r}")


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
    check_method(method)
    defaults = METHOD_DEFAULTS[method]
    steps = defaults["steps"] if steps is None else steps
    lr = defaults["lr"] if lr is None else lr
    restarts = defaults["restarts"] if restarts is None else restarts
    lookahead = defaults["lookahead"] if lookahead is None else bool(lookahead)
    _check_positive("steps", steps)
    _check_positive("restarts", restarts)
    _check_positive("batch_size", batch_size)
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
    start = time.perf_counter()
    device = _device(G)
    images = images.to(device=device, dtype=torch.float32)
    b = images.shape[0]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if amp and device.type == "cuda"
        else contextlib.nullcontext()
    )

    with frozen(*([G] if D is None else [G, D])):
        candidates = _candidate_labels(G, D, images, labels, top_k)  # [B, K] or None
        per_class = 1 if candidates is None else candidates.shape[1]
        total = per_class * restarts  # latents per image
        z_all = initial_latents(b * total, int(G.z_dim), seed, truncation)  # [B*T, z_dim]
        z_all = z_all.view(b, total, -1)
        y_all = None
        if candidates is not None:
            y_all = candidates.repeat_interleave(restarts, dim=1)  # [B, T]

        history = torch.empty(b, total, steps + 1)
        finals = torch.empty(b, total)
        latents = torch.empty_like(z_all)  # final latents [B, T, z_dim]
        saliency_used: list[Tensor] = []
        chunks = [(i, min(i + batch_size, b)) for i in range(0, b, batch_size)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps * len(chunks), desc=f"invert ({method})", unit="step")
        try:
            clock = time.perf_counter()
            for index, (lo, hi) in enumerate(chunks):
                n = (hi - lo) * total
                objective = Objective.prepare(
                    method,
                    D,
                    images[lo:hi],
                    normalization=normalization,
                    heads=heads,
                    saliency=None if saliency is None else saliency[lo:hi],
                )
                if objective.saliency is not None:
                    saliency_used.append(objective.saliency.cpu())
                objective = objective.repeat(total)  # targets [n, ...], image-major
                y = None if y_all is None else y_all[lo:hi].reshape(n)  # [n]
                z = nn.Parameter(z_all[lo:hi].reshape(n, -1).to(device))  # [n, z_dim]
                opt = torch.optim.Adam([z], lr=lr)
                if lookahead:
                    opt = Lookahead(opt, k=lookahead_k, alpha=lookahead_alpha)
                losses = torch.empty(steps + 1, n, device=device)
                for t in range(steps):
                    if index == 0 and t == 1:
                        clock = time.perf_counter()  # after the warm-up step
                    opt.zero_grad()
                    with autocast:
                        loss, scalar = objective.losses(G(z, y))  # [n], []
                    # A sum keeps every latent's gradient equal to that of its own loss.
                    scalar.float().backward()
                    opt.step()
                    losses[t] = loss.detach().float()
                    if (
                        on_estimate is not None
                        and index == 0
                        and t == ESTIMATE_STEPS
                        and steps > 2 * ESTIMATE_STEPS
                    ):
                        losses[t].sum().item()  # wait for the device
                        per_step = (time.perf_counter() - clock) / ESTIMATE_STEPS
                        on_estimate(
                            time.perf_counter() - start + per_step * (steps * len(chunks) - t)
                        )
                    if bar is not None:
                        bar.update(1)
                        if t % 25 == 0 or t == steps - 1:
                            bar.set_postfix(loss=f"{losses[t].min().item():.4g}")
                with torch.no_grad(), autocast:
                    losses[steps] = objective(G(z, y)).float()  # [n]
                history[lo:hi] = losses.T.reshape(hi - lo, total, steps + 1).cpu()
                finals[lo:hi] = history[lo:hi, :, -1]
                latents[lo:hi] = z.detach().reshape(hi - lo, total, -1).cpu()
        finally:
            if bar is not None:
                bar.close()

        best = finals.argmin(dim=1)  # [B]
        rows = torch.arange(b)
        best_z = latents[rows, best]  # [B, z_dim]
        best_y = None if y_all is None else y_all.cpu()[rows, best]  # [B]
        with torch.no_grad():
            recon = torch.cat(
                [
                    G(
                        best_z[lo:hi].to(device),
                        None if best_y is None else best_y[lo:hi].to(device),
                    ).cpu()
                    for lo, hi in chunks
                ]
            )
    return InversionResult(
        latents=best_z,
        labels=best_y,
        reconstructions=recon.float(),
        losses=finals[rows, best],
        history=history,
        restart_labels=None if y_all is None else y_all.cpu(),
        best=best,
        saliency=torch.cat(saliency_used) if saliency_used else None,
        method=method,
        seconds=time.perf_counter() - start,
        settings={"steps": steps, "lr": lr, "restarts": restarts, "lookahead": lookahead},
    )
