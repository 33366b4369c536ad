"""The training loop of YLG-SAGAN: one function, in commented sections.

``train(config, run_dir)`` runs on one CPU, one GPU, or as one of many processes launched
by ``torchrun`` (DDP); see docs/training.md for the semantics of batches, BatchNorm and
spectral norm across processes and accumulation rounds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ylg import metrics  # module attributes, so tests can swap in a tiny Inception
from ylg.attention.analysis import head_names
from ylg.data import class_names_of, make_dataset
from ylg.metrics.evaluate import default_metrics
from ylg.models.loading import build_models
from ylg.runtime.checkpoint import BEST, LATEST, find_checkpoint, load_checkpoint
from ylg.runtime.files import atomic_path, atomic_torch_save
from ylg.training import distributed as dist
from ylg.training.config import TrainConfig
from ylg.training.loss import HingeLoss
from ylg.training.rng import rng_state, set_rng_state
from ylg.training.sampler import GlobalBatchSampler, chunk, latents
from ylg.training.stats import StatsWriter, peak_memory_mb, reset_peak_memory, truncate_stats
from ylg.viz.grids import make_grid, save_image
from ylg.viz.snapshots import attention_snapshot_figure

# Fields that define the networks; a resumed run must not change them.
ARCHITECTURE_FIELDS = ("resolution", "attention", "g_width", "d_width", "z_dim", "conditional")
G_PHASE = 1_000_000  # latent-stream id of the G phase (D steps use 0 .. d_steps-1)
FIXED = 2_000_000  # latent-stream id of the fixed sample grid


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
# Small helpers.


def _spectral_norms(*modules: nn.Module) -> list[nn.Module]:
    from torch.nn.utils.parametrizations import _SpectralNorm

    return [m for mod in modules for m in mod.modules() if isinstance(m, _SpectralNorm)]


@contextlib.contextmanager
def _frozen_power_iteration(sns: list[nn.Module], frozen: bool):
    """Skip spectral norm's power iteration (use the stored u, v) while ``frozen``.

    Accumulation rounds after the first freeze it, so that each phase of a step does one
    power iteration whatever the number of rounds and processes (each process does the
    same one, on identical weights).
    """
    if not frozen:
        yield
        return
    before = [m.training for m in sns]
    for m in sns:
        m.training = False
    try:
        yield
    finally:
        for m, t in zip(sns, before):
            m.training = t


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _accumulate(into: dict, stats: dict, weight: float) -> None:
    for k, v in stats.items():
        into[k] = into.get(k, 0.0) + v.float() * weight


def _to(t, device):
    return None if t is None else t.to(device, non_blocking=True)


def _ignore_stop_signals(worker_id: int) -> None:
    """Data workers ignore Ctrl-C / SIGTERM sent to the whole process group: the main process
    still needs them to finish its step and save; they exit when it does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _StopFlag:
    """SIGINT / SIGTERM request a clean stop at the end of the current step; a second SIGINT
    interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._old.clear()
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


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

    # -- Distributed setup and device ------------------------------------------------------
    created_group = not dist.is_initialized()
    device = dist.init(config.device)
    rank, world = dist.rank(), dist.world_size()
    main = rank == 0
    parts = world * config.accumulate  # micro-batches per global batch
    if config.batch_size % parts:
        raise ValueError(
            f"batch_size={config.batch_size} is not divisible by world_size * accumulate = "
            f"{world} * {config.accumulate}"
        )
    cuda = device.type == "cuda"
    autocast = (
        functools.partial(torch.autocast, "cuda", dtype=torch.bfloat16)
        if cuda and config.amp
        else None
    )
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # -- Resume or start ------------------------------------------------------------------
    ckpt = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    existing = None
    if resume_from is not None:
        resume, existing = True, Path(resume_from)
        if not existing.is_file():
            raise FileNotFoundError(f"checkpoint file {existing} does not exist")
    else:
        with contextlib.suppress(FileNotFoundError):
            existing = find_checkpoint(run_dir)
    if existing is not None and not resume:
        raise ValueError(
            f"run directory {run_dir} already has a checkpoint ({existing.name}); pass "
            "--resume to continue it or choose another --out"
        )
    if existing is not None:
        ckpt = load_checkpoint(existing, map_location="cpu")
        saved = ckpt["config"]
        changed = [f for f in ARCHITECTURE_FIELDS if saved.get(f) != getattr(config, f)]
        if changed:
            raise ValueError(
                "cannot resume with different model options: "
                + ", ".join(
                    f"{f}={getattr(config, f)!r} (checkpoint: {saved.get(f)!r})" for f in changed
                )
            )
    elif resume and main:
        print(f"ylg train: no checkpoint in {run_dir}; starting a new run", file=sys.stderr)
    start_step = int(ckpt["step"]) if ckpt else 0
    if main:
        config.save(run_dir / "config.json")

    # -- Data ------------------------------------------------------------------------------
    custom_dataset = dataset is not None
    if dataset is None:
        dataset = make_dataset(
            config.data,
            config.resolution,
            seed=config.seed,
            num_classes=None if config.conditional else 0,
            style=config.shapes_style,
        )
    num_classes = int(getattr(dataset, "num_classes", 0)) if config.conditional else 0
    class_names = class_names_of(dataset) if num_classes > 0 else None
    if main:  # beside config.json: the names of the labels, for grids and `generate --class`
        (run_dir / "classes.json").write_text(
            json.dumps({"num_classes": num_classes, "class_names": class_names}, indent=1) + "\n"
        )
    if ckpt is not None and ckpt["num_classes"] != num_classes:
        raise ValueError(
            f"the data has {num_classes} classes but the checkpoint was trained with "
            f"{ckpt['num_classes']}"
        )
    sampler = GlobalBatchSampler(
        len(dataset),
        config.batch_size,
        seed=config.seed,
        rank=rank,
        world_size=world,
        accumulate=config.accumulate,
        start_batch=start_step * config.d_steps,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.workers,
        pin_memory=cuda,
        persistent_workers=config.workers > 0,
        worker_init_fn=_ignore_stop_signals if config.workers > 0 else None,
    )
    data_iter = iter(loader)

    def next_real():
        x, y = next(data_iter)
        return _to(x, device), (_to(y, device) if num_classes > 0 else None)

    # -- Models, EMA, optimizers ----------------------------------------------------------
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    G, D = build_models(config, num_classes, device)
    if config.sync_bn and world > 1 and cuda:
        G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
    ema = None
    if config.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        ema.module.eval()
        _set_requires_grad(ema, False)
    betas = (config.beta1, config.beta2)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.g_lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.d_lr, betas=betas)
    extra = {"time": 0.0, "best_fid": None}
    if ckpt is not None:
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        opt_G.load_state_dict(ckpt["opt_G"])
        opt_D.load_state_dict(ckpt["opt_D"])
        if ema is not None and ckpt.get("G_ema") is not None:
            ema.module.load_state_dict(ckpt["G_ema"])
            ema.n_averaged.fill_(int(ckpt.get("ema_n_averaged", 1)))
        set_rng_state(ckpt["rng"])
        extra.update(ckpt.get("extra", {}))
        if main:
            truncate_stats(run_dir / "stats.jsonl", start_step)
    del ckpt
    G_train, D_train = dist.wrap(G, device), dist.wrap(D, device)
    G_fwd, D_fwd = G, D
    if config.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
        G_fwd, D_fwd = torch.compile(G), torch.compile(D)
    loss_fn = HingeLoss(G_fwd, D_fwd, G_train=G_train, D_train=D_train, autocast=autocast)
    sns = _spectral_norms(G, D)
    G.train()
    D.train()

    # -- Fixed latents for sample grids and attention snapshots ---------------------------
    nrow = 8 if config.resolution <= 64 else 4
    # one row per class up to twice as many rows as columns (the built-in 10 shapes: 10 rows)
    n_fixed = nrow * (num_classes if nrow < num_classes <= 2 * nrow else nrow)
    fixed_z, _ = latents(config.seed, 0, FIXED, n_fixed, config.z_dim, 0)
    fixed_y = (
        (torch.arange(n_fixed) // nrow) % num_classes if num_classes > 0 else None
    )  # one class per row

    writer = StatsWriter(run_dir, enabled=main)

    def save(step: int, path_name: str = LATEST) -> Path | None:
        if not main:
            return None
        ckpt_out = {
            "format": "ylg-train-1",
            "step": step,
            "config": config.to_dict(),
            "num_classes": num_classes,
            "class_names": class_names,
            "world_size": world,
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": None if ema is None else ema.module.state_dict(),
            "ema_n_averaged": 0 if ema is None else int(ema.n_averaged),
            "opt_G": opt_G.state_dict(),
            "opt_D": opt_D.state_dict(),
            "rng": rng_state(),
            "extra": dict(extra, time=extra["time"] + (time.time() - t_start)),
        }
        path = atomic_torch_save(ckpt_out, run_dir / path_name)
        if config.keep_checkpoints and path_name == LATEST:
            with atomic_path(run_dir / f"ckpt-{step:07d}.pt") as tmp:
                shutil.copyfile(path, tmp)
        return path

    @torch.no_grad()
    def snapshot(step: int) -> None:
        """Sample grid of the fixed latents, and attention maps of the first few."""
        if not main:
            return
        Gs = G if ema is None else ema.module
        was_training = Gs.training
        Gs.eval()  # BN running statistics: the same image for the same latent
        z, y = fixed_z.to(device), _to(fixed_y, device)
        images = Gs(z, y).float().cpu()
        row_labels = None
        if class_names is not None and fixed_y is not None:  # one class per row
            row_labels = [
                class_names[c] if c < len(class_names) else str(c) for c in fixed_y[::nrow].tolist()
            ]
        grid = make_grid(images, nrow=nrow, row_labels=row_labels)
        save_image(grid, run_dir / "samples" / f"step-{step:07d}.png")
        writer.image("samples", grid, step)
        if getattr(Gs, "attention", None) is not None:
            k = min(4, n_fixed)
            few, probs = Gs(z[:k], None if y is None else y[:k], return_attention=True)
            pic = attention_snapshot_figure(  # relative maps, head names, one colour bar
                few.float().cpu(),
                probs.float().cpu(),
                head_names=head_names(Gs.attention),
                title=f"G attention, step {step}",
            )
            save_image(pic, run_dir / "attention" / f"step-{step:07d}.png")
            writer.image("attention", pic, step)
        Gs.train(was_training)

    inception_box: list = []  # loaded on first evaluation

    def evaluate(step: int) -> dict[str, float]:
        """FID / IS / KID of the (EMA) generator; best.pt kept by FID. Rank 0 only."""
        if not inception_box:
            inception_box.append(metrics.load_inception(device=device, progress=False))
        inception = inception_box[0]
        n_ref = min(len(dataset), config.eval_ref_n)
        if config.eval_ref:  # given (e.g. one file shared by every run of an ablation)
            reference = metrics.ReferenceStats.load(
                config.eval_ref, resolution=config.resolution, extractor=inception.extractor_id
            )
        elif custom_dataset or (config.data is None and config.shapes_style != "scenes"):
            # not (only) named by config.data: cache in the run folder
            ref_path = run_dir / "fid-reference.npz"
            if ref_path.exists():
                reference = metrics.ReferenceStats.load(ref_path)
            else:
                reference = metrics.compute_reference_stats(
                    dataset, n=n_ref, device=device, inception=inception, progress=False
                )
                reference.save(ref_path)
        else:  # shared disk cache keyed by data source, resolution, n and Inception weights
            reference = metrics.reference_stats(
                config.data,
                config.resolution,
                n=n_ref,
                device=device,
                inception=inception,
                progress=False,
            )
        Gs = G if ema is None else ema.module
        result = metrics.evaluate_generator(
            Gs,
            n=config.eval_n,
            reference=reference,
            metrics=default_metrics(inception) + (() if reference.features is None else ("kid",)),
            device=device,
            seed=config.seed,
            inception=inception,
            progress=False,
        )
        fid = result.get("fid")
        if (
            fid is not None
            and math.isfinite(fid)
            and (extra["best_fid"] is None or fid < extra["best_fid"])
        ):
            extra["best_fid"] = float(fid)
            extra["best_step"] = step
            save(step, BEST)
        return {k: float(v) for k, v in result.items()}

    # -- Main loop ------------------------------------------------------------------------
    from tqdm.auto import tqdm

    step = start_step
    stopped = "finished"
    reset_peak_memory(device)
    last_ckpt: Path | None = existing
    t_start = time.time()
    t_tick, step_tick = time.time(), step
    tick_sums: dict[str, float] = {}
    tick_count = 0
    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not (progress and main),
        unit="step",
        dynamic_ncols=True,
        desc="train",
    )
    with _StopFlag() as stop:
        while step < config.steps:
            step_stats: dict[str, torch.Tensor] = {}
            add = functools.partial(_accumulate, step_stats)

            # -- Discriminator phase(s): d_steps updates, each on a fresh global batch ----
            _set_requires_grad(G, False)
            _set_requires_grad(D, True)
            for k in range(config.d_steps):
                opt_D.zero_grad(set_to_none=True)
                z_all, y_all = latents(
                    config.seed, step, k, config.batch_size, config.z_dim, num_classes
                )
                for a in range(config.accumulate):
                    real, real_y = next_real()
                    part = a * world + rank
                    z, fy = (
                        _to(chunk(z_all, part, parts), device),
                        _to(chunk(y_all, part, parts), device),
                    )
                    sync = a == config.accumulate - 1
                    no_sync = (
                        D_train.no_sync if (world > 1 and not sync) else contextlib.nullcontext
                    )
                    with no_sync(), _frozen_power_iteration(sns, frozen=a > 0):
                        loss, stats = loss_fn.d_phase(real, real_y, z, fy)
                        (loss / config.accumulate).backward()
                    add(stats, 1.0 / (config.accumulate * config.d_steps))
                opt_D.step()

            # -- Generator phase ----------------------------------------------------------
            _set_requires_grad(D, False)
            _set_requires_grad(G, True)
            opt_G.zero_grad(set_to_none=True)
            z_all, y_all = latents(
                config.seed, step, G_PHASE, config.batch_size, config.z_dim, num_classes
            )
            for a in range(config.accumulate):
                part = a * world + rank
                z, fy = (
                    _to(chunk(z_all, part, parts), device),
                    _to(chunk(y_all, part, parts), device),
                )
                sync = a == config.accumulate - 1
                no_sync = G_train.no_sync if (world > 1 and not sync) else contextlib.nullcontext
                with no_sync(), _frozen_power_iteration(sns, frozen=a > 0):
                    loss, stats = loss_fn.g_phase(z, fy)
                    (loss / config.accumulate).backward()
                add(stats, 1.0 / config.accumulate)
            opt_G.step()
            _set_requires_grad(D, True)

            # -- Update EMA ---------------------------------------------------------------
            if ema is not None:
                with torch.no_grad():
                    if step < config.ema_start:
                        for pe, p in zip(ema.module.parameters(), G.parameters()):
                            pe.copy_(p)
                    else:
                        ema.update_parameters(G)
                    # Buffers are copied, not averaged: spectral norm's u, v must stay unit
                    # vectors, and BN running statistics follow the live generator.
                    for be, b in zip(ema.module.buffers(), G.buffers()):
                        be.copy_(b)
            step += 1

            # -- Gather stats across processes; stop on non-finite losses or signals -------
            keys = sorted(step_stats)
            packed = torch.stack(
                [step_stats[k] for k in keys] + [torch.tensor(float(stop.requested), device=device)]
            )
            packed = dist.all_reduce_mean(packed.detach().to(device))
            values = packed.cpu().tolist()
            stop_now = values.pop() > 0
            current = dict(zip(keys, values))
            bad = {k: v for k, v in current.items() if "loss" in k and not math.isfinite(v)}
            if bad:
                bar.close()
                writer.scalars(step, current)
                writer.close()
                where = f"{last_ckpt}" if last_ckpt else "none written yet"
                raise NonFiniteLossError(
                    "non-finite loss at step "
                    f"{step}: "
                    + ", ".join(f"{k}={v}" for k, v in bad.items())
                    + f"; stopped without saving; last good checkpoint: {where}"
                )
            for k, v in current.items():
                tick_sums[k] = tick_sums.get(k, 0.0) + v
            tick_count += 1
            bar.update(1)

            # -- Maintenance: logging, samples, evaluation, checkpoints -------------------
            if step % config.log_every == 0 or step == config.steps or stop_now:
                now = time.time()
                row = {k: v / tick_count for k, v in tick_sums.items()}
                row["steps_per_s"] = (step - step_tick) / max(now - t_tick, 1e-9)
                row["time"] = extra["time"] + (now - t_start)
                row["peak_mem_mb"] = peak_memory_mb(device)
                writer.scalars(step, row)
                bar.set_postfix(
                    loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}", refresh=False
                )
                t_tick, step_tick, tick_sums, tick_count = now, step, {}, 0
            if step % config.sample_every == 0 or step == config.steps:
                snapshot(step)
            if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
                if main:
                    writer.scalars(step, evaluate(step))
                    reset_peak_memory(device)  # peak_mem_mb: of training, not of Inception
                dist.barrier()
            if step % config.checkpoint_every == 0 or step == config.steps or stop_now:
                last_ckpt = save(step) or last_ckpt
                dist.barrier()
            if stop_now:
                stopped = "signal"
                break

    # -- Finish ---------------------------------------------------------------------------
    bar.close()
    writer.close()
    if step == start_step and main and not (run_dir / LATEST).exists():
        last_ckpt = save(step)  # zero-step run: still leave a loadable checkpoint
    if main and last_ckpt is None and (run_dir / LATEST).exists():
        last_ckpt = run_dir / LATEST
    if created_group:
        dist.shutdown()
    return TrainResult(
        run_dir=run_dir,
        step=step,
        checkpoint=last_ckpt,
        stopped=stopped,
        best_fid=extra["best_fid"],
    )
