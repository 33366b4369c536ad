"""The descent itself: Adam (or Adam in Lookahead) on a chunk of images' latents.

:func:`invert_chunks` runs the chunks of an inversion in turn, each against its own
objective; :func:`descend` is one chunk's step loop (one forward and backward per step for
all the chunk's latents); :class:`RunTimeEstimate` times the first steps to extrapolate the
run time; :func:`progress_bar` is the optional tqdm bar.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ylg.inversion.lookahead import Lookahead
from ylg.inversion.losses import Objective

__all__ = [
    "ESTIMATE_STEPS",
    "RunTimeEstimate",
    "autocast_for",
    "descend",
    "invert_chunk",
    "invert_chunks",
    "module_device",
    "optimiser",
    "progress_bar",
]

#: steps timed (after a first, warm-up step) before ``on_estimate`` is called
ESTIMATE_STEPS = 5


def module_device(module: nn.Module) -> torch.device:
    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


class RunTimeEstimate:
    """Times steps ``1 .. ESTIMATE_STEPS`` of the first chunk (step 0 warms up) and calls
    ``on_estimate`` once with the whole run's time, extrapolated to ``total_steps``."""

    def __init__(self, on_estimate: Callable[[float], None], start: float, total_steps: int):
        self.on_estimate = on_estimate
        self.start = start
        self.total_steps = total_steps
        self.clock = time.perf_counter()

    def step_begins(self, t: int) -> None:
        if t == 1:
            self.clock = time.perf_counter()  # after the warm-up step

    def step_ended(self, t: int, loss: Tensor) -> None:
        if t != ESTIMATE_STEPS:
            return
        loss.sum().item()  # wait for the device
        per_step = (time.perf_counter() - self.clock) / ESTIMATE_STEPS
        self.on_estimate(time.perf_counter() - self.start + per_step * (self.total_steps - t))


@contextlib.contextmanager
def progress_bar(show: bool, total: int, method: str) -> Iterator:
    """A tqdm bar over ``total`` steps, or ``None`` when ``show`` is false."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"invert ({method})", unit="step")
    try:
        yield bar
    finally:
        bar.close()


def descend(
    G: nn.Module,
    objective: Objective,
    z: nn.Parameter,
    y: Tensor | None,
    opt: torch.optim.Optimizer,
    steps: int,
    autocast,
    timer: RunTimeEstimate | None,
    bar,
) -> Tensor:
    """``steps`` optimiser updates of ``z [n, z_dim]`` (in place); returns ``[steps + 1, n]``
    the loss of every latent after ``t = 0 .. steps`` updates."""
    losses = torch.empty(steps + 1, z.shape[0], device=z.device)
    for t in range(steps):
        if timer is not None:
            timer.step_begins(t)
        opt.zero_grad()
        with autocast:
            loss, scalar = objective.losses(G(z, y))  # [n], []
        # A sum keeps every latent's gradient equal to that of its own loss.
        scalar.float().backward()
        opt.step()
        losses[t] = loss.detach().float()
        if timer is not None:
            timer.step_ended(t, losses[t])
        if bar is not None:
            bar.update(1)
            if t % 25 == 0 or t == steps - 1:
                bar.set_postfix(loss=f"{losses[t].min().item():.4g}")
    with torch.no_grad(), autocast:
        losses[steps] = objective(G(z, y)).float()  # [n]
    return losses


def optimiser(
    params: list[Tensor], lr: float, lookahead: bool, k: int, alpha: float
) -> torch.optim.Optimizer:
    """Adam, wrapped in Lookahead (``k``, ``alpha``) when ``lookahead``."""
    opt = torch.optim.Adam(params, lr=lr)
    if lookahead:
        opt = Lookahead(opt, k=k, alpha=alpha)
    return opt


def invert_chunk(
    G: nn.Module,
    objective: Objective,
    z0: Tensor,
    y0: Tensor | None,
    make_optimiser: Callable[[list[Tensor]], torch.optim.Optimizer],
    steps: int,
    autocast,
    timer: RunTimeEstimate | None,
    bar,
) -> tuple[Tensor, Tensor]:
    """Optimise a chunk of images' latents ``z0 [b, T, z_dim]`` (classes ``y0 [b, T]``)
    together against ``objective`` (prepared for the ``b`` images); returns the loss
    history ``[b, T, steps + 1]`` and the final latents ``[b, T, z_dim]``, on the CPU."""
    b, total = z0.shape[:2]
    n = b * total
    objective = objective.repeat(total)  # targets [n, ...], image-major
    y = None if y0 is None else y0.reshape(n)  # [n]
    z = nn.Parameter(z0.reshape(n, -1).to(module_device(G)))  # [n, z_dim]
    opt = make_optimiser([z])
    losses = descend(G, objective, z, y, opt, steps, autocast, timer, bar)
    history = losses.T.reshape(b, total, steps + 1).cpu()
    return history, z.detach().reshape(b, total, -1).cpu()


def autocast_for(amp: bool, device: torch.device):
    """bf16 autocast on CUDA when ``amp``, else a context that does nothing."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def invert_chunks(
    G: nn.Module,
    D: nn.Module | None,
    images: Tensor,
    saliency: Tensor | None,
    z_all: Tensor,
    y_all: Tensor | None,
    chunks: list[tuple[int, int]],
    *,
    method: str,
    normalization: str | None,
    heads: Sequence[int] | None,
    make_optimiser: Callable[[list[Tensor]], torch.optim.Optimizer],
    steps: int,
    autocast,
    timer: RunTimeEstimate | None,
    progress: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Every chunk of images inverted in turn, each against its own objective; returns the
    loss history ``[B, T, steps + 1]``, the final latents ``[B, T, z_dim]`` and the
    targets' saliency maps ``[B, M, hk, wk]`` (``None`` for methods without them)."""
    histories, latents, saliency_used = [], [], []
    with progress_bar(progress, steps * len(chunks), method) as bar:
        for index, (lo, hi) in enumerate(chunks):
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
            history, z = invert_chunk(
                G,
                objective,
                z_all[lo:hi],
                None if y_all is None else y_all[lo:hi],
                make_optimiser,
                steps,
                autocast,
                timer if index == 0 else None,
                bar,
            )
            histories.append(history)
            latents.append(z)
    history = torch.cat(histories)
    maps = torch.cat(saliency_used) if saliency_used else None
    return history, torch.cat(latents), maps
