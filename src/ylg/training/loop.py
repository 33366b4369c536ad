"""The training loop of YLG-SAGAN, in named phases.

``train(config, run_dir)`` runs on one CPU, one GPU, or as one of many processes launched
by ``torchrun`` (DDP); see docs/training.md for the semantics of batches, BatchNorm and
spectral norm across processes and accumulation rounds.

One step is :func:`d_step` (``d_steps`` updates of D), :func:`g_step` (one update of G) and
:func:`update_ema`; then :func:`gather_stats` (mean over processes, stop on non-finite
losses or signals) and :func:`maintenance` (log row, snapshot, evaluation, checkpoint).
The losses are the loss object's phases (:class:`ylg.training.loss.HingeLoss`); set-up is
:func:`setup` (:mod:`ylg.training.state`, :mod:`ylg.training.resume`); snapshots,
evaluation and checkpoints have their own modules (``snapshots``, ``evaluation``,
``checkpointing``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ylg.runtime.checkpoint import LATEST
from ylg.runtime.run_lock import RunLock
from ylg.training import distributed as dist
from ylg.training.augment import AugmentDraw
from ylg.training.checkpointing import keep_best, save_checkpoint
from ylg.training.config import TrainConfig
from ylg.training.evaluation import Evaluator
from ylg.training.resume import ARCHITECTURE_FIELDS, open_checkpoint, restore
from ylg.training.sampler import chunk, latents, stream
from ylg.training.snapshots import FIXED, FixedLatents, fixed_latents, write_snapshot
from ylg.training.state import (
    Run,
    StopFlag,
    build_networks,
    frozen_power_iteration,
    open_data,
    prepare_networks,
    set_requires_grad,
    setup_device,
    to_device,
)
from ylg.training.stats import StatsWriter, clear_logs, peak_memory_mb, reset_peak_memory
from ylg.training.warm_start import warm_start

__all__ = [
    "ARCHITECTURE_FIELDS",
    "FIXED",
    "G_PHASE",
    "NonFiniteLossError",
    "TrainResult",
    "d_step",
    "g_step",
    "gather_stats",
    "maintenance",
    "setup",
    "train",
    "update_ema",
]

G_PHASE = 1_000_000  # latent-stream id of the G phase (D steps use 0 .. d_steps-1)
AUGMENT_SALT = 104_729  # augmentation draws: stream(seed, step, phase, AUGMENT_SALT)

Accumulate = Callable[[dict, float], None]  # add(stats, weight): into the step's stats


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stopped without writing a checkpoint."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    stopped: str  # "finished" or "signal"
    best_fid: float | None = None


# ----------------------------------------------------------------------------------------
# Set-up.


def setup(
    config: TrainConfig, run_dir: Path, *, resume: bool, resume_from, dataset=None
) -> tuple[Run, int, Path | None]:
    """Device, checkpoint to resume, data, networks: ``(run, start step, checkpoint path)``."""
    ctx = setup_device(config)
    lock = RunLock(run_dir, enabled=ctx.main).acquire()  # rank 0 owns the folder
    try:
        dist.barrier()
        ckpt, existing = open_checkpoint(
            config, run_dir, resume=resume, resume_from=resume_from, main=ctx.main
        )
        start_step = int(ckpt["step"]) if ckpt else 0
        data = open_data(
            config, ctx, run_dir, start_step=start_step, checkpoint=ckpt, dataset=dataset
        )
        if ctx.main:  # after the data opened: a bad dataset leaves no config.json behind
            if ckpt is None:  # a fresh start owns its folder's logs (a crashed try's go)
                clear_logs(run_dir)
            config.save(run_dir / "config.json")
        nets = build_networks(config, data.num_classes, ctx)
        extra = {"time": 0.0, "best_fid": None}
        if ckpt is None and config.init_from:
            extra["init"] = warm_start(nets, config, data.num_classes)
        if ckpt is not None:
            restore(nets, ckpt, extra, stats_path=run_dir / "stats.jsonl" if ctx.main else None)
        del ckpt
        prepare_networks(nets, config, ctx)
    except BaseException:
        lock.release()
        raise
    return Run(config, run_dir, ctx, data, nets, extra, lock=lock), start_step, existing


# ----------------------------------------------------------------------------------------
# The phases of one step.


def _micro_batch(run: Run, z_all, y_all, a: int):
    """This process's share of accumulation round ``a`` of a global batch of latents."""
    part, parts, device = a * run.ctx.world + run.ctx.rank, run.ctx.parts, run.ctx.device
    return to_device(chunk(z_all, part, parts), device), to_device(
        chunk(y_all, part, parts), device
    )


@contextlib.contextmanager
def _accumulation_round(run: Run, module: torch.nn.Module, a: int):
    """Round ``a``: DDP syncs gradients only in the last round; spectral norm does its power
    iteration only in the first."""
    last = a == run.config.accumulate - 1
    no_sync = module.no_sync if (run.ctx.world > 1 and not last) else contextlib.nullcontext
    with no_sync(), frozen_power_iteration(run.nets.spectral_norms, frozen=a > 0):
        yield


def _augment_draws(run: Run, step: int, phase: int, groups: int) -> list | None:
    """This process's augmentation draw for each accumulation round of a phase, cut from the
    draw of the whole global batch (``groups`` images per batch element: 2 in the D phase,
    reals then fakes; 1 in the G phase); None when not augmenting."""
    augment, config = run.nets.loss.augment, run.config
    if augment is None:
        return None
    B, ctx = config.batch_size, run.ctx
    whole = augment.draw(groups * B, stream(config.seed, step, phase, AUGMENT_SALT))
    m = B // ctx.parts
    out = []
    for a in range(config.accumulate):
        part = a * ctx.world + ctx.rank
        pieces = [whole.slice(g * B + part * m, g * B + (part + 1) * m) for g in range(groups)]
        out.append(pieces[0] if groups == 1 else AugmentDraw.cat(*pieces))
    return out


def d_step(run: Run, step: int, add: Accumulate) -> None:
    """Discriminator phase(s): ``d_steps`` updates of D, each on a fresh global batch."""
    config, nets = run.config, run.nets
    set_requires_grad(nets.G, False)
    set_requires_grad(nets.D, True)
    for k in range(config.d_steps):
        nets.opt_D.zero_grad(set_to_none=True)
        z_all, y_all = latents(
            config.seed, step, k, config.batch_size, config.z_dim, run.data.num_classes
        )
        draws = _augment_draws(run, step, k, 2)
        for a in range(config.accumulate):
            real, real_y = run.data.next_real()
            z, fy = _micro_batch(run, z_all, y_all, a)
            draw = None if draws is None else draws[a]
            with _accumulation_round(run, nets.D_train, a):
                loss, stats = nets.loss.d_phase(real, real_y, z, fy, draw)
                (loss / config.accumulate).backward()
            add(stats, 1.0 / (config.accumulate * config.d_steps))
        nets.opt_D.step()


def g_step(run: Run, step: int, add: Accumulate) -> None:
    """Generator phase: one update of G on a global batch of latents (stream ``G_PHASE``)."""
    config, nets = run.config, run.nets
    set_requires_grad(nets.D, False)
    set_requires_grad(nets.G, True)
    nets.opt_G.zero_grad(set_to_none=True)
    z_all, y_all = latents(
        config.seed, step, G_PHASE, config.batch_size, config.z_dim, run.data.num_classes
    )
    draws = _augment_draws(run, step, G_PHASE, 1)
    for a in range(config.accumulate):
        z, fy = _micro_batch(run, z_all, y_all, a)
        with _accumulation_round(run, nets.G_train, a):
            loss, stats = nets.loss.g_phase(z, fy, None if draws is None else draws[a])
            (loss / config.accumulate).backward()
        add(stats, 1.0 / config.accumulate)
    nets.opt_G.step()
    set_requires_grad(nets.D, True)


@torch.no_grad()
def update_ema(run: Run, step: int) -> None:
    """EMA of G's weights (a copy before ``ema_start``); buffers are copied, not averaged."""
    ema, G = run.nets.ema, run.nets.G
    if ema is None:
        return
    if step < run.config.ema_start:
        for pe, p in zip(ema.module.parameters(), G.parameters()):
            pe.copy_(p)
    else:
        ema.update_parameters(G)
    # Buffers are copied, not averaged: spectral norm's u, v must stay unit vectors, and BN
    # running statistics follow the live generator.
    for be, b in zip(ema.module.buffers(), G.buffers()):
        be.copy_(b)


def _accumulate(into: dict, stats: dict, weight: float) -> None:
    for k, v in stats.items():
        into[k] = into.get(k, 0.0) + v.float() * weight


def gather_stats(
    run: Run, step_stats: dict[str, torch.Tensor], stop_requested: bool
) -> tuple[dict[str, float], bool]:
    """The step's stats, averaged over processes, and whether any process asked to stop."""
    device = run.ctx.device
    keys = sorted(step_stats)
    packed = torch.stack(
        [step_stats[k] for k in keys] + [torch.tensor(float(stop_requested), device=device)]
    )
    packed = dist.all_reduce_mean(packed.detach().to(device))
    values = packed.cpu().tolist()
    stop_now = values.pop() > 0
    return dict(zip(keys, values)), stop_now


def _non_finite_error(current: dict, step: int, last_ckpt: Path | None):
    bad = {k: v for k, v in current.items() if "loss" in k and not math.isfinite(v)}
    if not bad:
        return None
    where = f"{last_ckpt}" if last_ckpt else "none written yet"
    return NonFiniteLossError(
        f"non-finite loss at step {step}: "
        + ", ".join(f"{k}={v}" for k, v in bad.items())
        + f"; stopped without saving; last good checkpoint: {where}"
    )


# ----------------------------------------------------------------------------------------
# Maintenance: logging, snapshots, evaluation, checkpoints.


class _Tick:
    """Stats averaged over the steps since the last log row, and the speed."""

    def __init__(self, step: int):
        self.t, self.step, self.sums, self.count = time.time(), step, {}, 0

    def add(self, current: dict[str, float]) -> None:
        for k, v in current.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def row(self, run: Run, step: int) -> dict[str, float]:
        now = time.time()
        row = {k: v / self.count for k, v in self.sums.items()}
        row["steps_per_s"] = (step - self.step) / max(now - self.t, 1e-9)
        row["time"] = run.elapsed(now)
        row["peak_mem_mb"] = peak_memory_mb(run.ctx.device)
        self.t, self.step, self.sums, self.count = now, step, {}, 0
        return row


@dataclass
class _Outputs:
    """Where maintenance writes: stats rows, the progress bar, snapshots, evaluations."""

    writer: StatsWriter
    bar: tqdm
    tick: _Tick
    fixed: FixedLatents
    evaluator: Evaluator


def evaluate(run: Run, step: int, out: _Outputs) -> None:
    """FID / IS / KID into stats.jsonl, best.pt kept by FID (rank 0); all ranks wait."""
    if run.ctx.main:
        result = out.evaluator()
        keep_best(run, step, result.get("fid"))
        out.writer.scalars(step, result)
        reset_peak_memory(run.ctx.device)  # peak_mem_mb: of training, not of Inception
    dist.barrier()


def maintenance(
    run: Run, step: int, stop_now: bool, out: _Outputs, last_ckpt: Path | None
) -> Path | None:
    """After a step: log row, snapshot, evaluation and checkpoint, each when due (the last
    step does all; a stop request logs and checkpoints). Returns the last checkpoint."""
    config = run.config
    last = step == config.steps
    if step % config.log_every == 0 or last or stop_now:
        row = out.tick.row(run, step)
        out.writer.scalars(step, row)
        out.bar.set_postfix(
            loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}", refresh=False
        )
    if step % config.sample_every == 0 or last:
        write_snapshot(run, out.fixed, out.writer, step)
    if config.eval_every and (step % config.eval_every == 0 or last):
        evaluate(run, step, out)
    if step % config.checkpoint_every == 0 or last or stop_now:
        last_ckpt = save_checkpoint(run, step) or last_ckpt
        dist.barrier()
    return last_ckpt


# ----------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    resume_from: str | os.PathLike | None = None,
    progress: bool = True,
    dataset=None,
) -> TrainResult:
    """Train G and D as ``config`` says, writing everything into ``run_dir``.

    Args:
        config: resolved options (see :mod:`ylg.training.config`).
        run_dir: run folder: config.json, stats.jsonl, tensorboard/, samples/, attention/,
            latest.pt (and ckpt-<step>.pt, best.pt).
        resume: continue from ``run_dir``'s latest checkpoint if there is one.
        resume_from: continue from this checkpoint file instead (implies ``resume``), e.g.
            an older ``ckpt-<step>.pt`` of ``run_dir`` (the run goes on from its step and
            ``stats.jsonl`` drops the later rows) or of another run (into ``run_dir``).
        progress: show a tqdm progress bar (rank 0).
        dataset: use this dataset instead of ``make_dataset(config.data, ...)``.

    Returns:
        A :class:`TrainResult`. Raises :class:`NonFiniteLossError` if a loss becomes NaN/inf.
    """
    config.validate()
    run_dir = Path(run_dir)
    run, step, last_ckpt = setup(
        config, run_dir, resume=resume, resume_from=resume_from, dataset=dataset
    )
    try:
        return _run(run, step, last_ckpt, progress)
    finally:
        run.lock.release()


def _run(run: Run, step: int, last_ckpt: Path | None, progress: bool) -> TrainResult:
    """The steps of :func:`train` from ``step`` on, then the finish."""
    config, run_dir = run.config, run.run_dir
    start_step, main, stopped = step, run.ctx.main, "finished"
    fixed = fixed_latents(config.seed, config.resolution, config.z_dim, run.data.num_classes)
    writer = StatsWriter(run_dir, enabled=main)
    reset_peak_memory(run.ctx.device)
    run.t_start = time.time()
    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not (progress and main),
        unit="step",
        dynamic_ncols=True,
        desc="train",
    )
    out = _Outputs(writer, bar, _Tick(step), fixed, Evaluator(run))
    with StopFlag() as stop:
        while step < config.steps:
            step_stats: dict[str, torch.Tensor] = {}
            add = functools.partial(_accumulate, step_stats)
            d_step(run, step, add)
            g_step(run, step, add)
            update_ema(run, step)
            step += 1
            current, stop_now = gather_stats(run, step_stats, stop.requested)
            if (error := _non_finite_error(current, step, last_ckpt)) is not None:
                bar.close()
                writer.scalars(step, current)
                writer.close()
                raise error
            if run.nets.lecam:
                run.nets.lecam.update(current["d_real"], current["d_fake"])
            out.tick.add(current)
            bar.update(1)
            last_ckpt = maintenance(run, step, stop_now, out, last_ckpt)
            if stop_now:
                stopped = "signal"
                break

    # -- Finish ---------------------------------------------------------------------------
    bar.close()
    writer.close()
    if step == start_step and main and not (run_dir / LATEST).exists():
        last_ckpt = save_checkpoint(run, step)  # zero-step run: still leave a loadable one
    if main and last_ckpt is None and (run_dir / LATEST).exists():
        last_ckpt = run_dir / LATEST
    if run.ctx.created_group:
        dist.shutdown()
    return TrainResult(run_dir, step, last_ckpt, stopped, best_fid=run.extra["best_fid"])
