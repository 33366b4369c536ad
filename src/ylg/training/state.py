"""What a training run holds while it runs, and how it is set up before the first step.

:func:`setup_device` (processes, device, autocast), :func:`open_data` (dataset, its classes,
the global batch sampler and the real batches of this process), :func:`build_networks`
(G, D, EMA, optimizers) and :func:`prepare_networks` (DDP wrappers, torch.compile, the loss
object) are the set-up phases of :func:`ylg.training.loop.train`, in this order; the order
matters for the random streams (``torch.manual_seed(config.seed)`` comes after the data
loader, a resumed run's RNG state after the networks).
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ylg.data import class_names_of, make_dataset
from ylg.models.loading import build_models
from ylg.runtime.run_lock import RunLock
from ylg.training import distributed as dist
from ylg.training.augment import Augment
from ylg.training.config import TrainConfig
from ylg.training.lecam import LeCam
from ylg.training.loss import HingeLoss
from ylg.training.precision import autocast_factory, resolve_precision
from ylg.training.sampler import GlobalBatchSampler


@dataclass
class Context:
    """Where this process runs: device, rank among ``world`` processes, autocast."""

    device: torch.device
    rank: int
    world: int
    parts: int  # micro-batches per global batch: world * accumulate
    created_group: bool  # this run started the process group (and shuts it down)
    precision: str = "fp32"  # resolved: fp32 or bf16
    autocast: Callable | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class Data:
    """The training data of this process: the dataset, its labels, its real batches."""

    dataset: Any
    custom: bool  # given to train() rather than made from config.data
    num_classes: int  # 0: unconditional
    class_names: list[str] | None
    next_real: Callable[[], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class Networks:
    """G and D with their optimizers and EMA; the training wrappers once prepared."""

    G: nn.Module
    D: nn.Module
    ema: AveragedModel | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    G_train: nn.Module | None = None  # DDP (and compiled) wrappers that backward goes through
    D_train: nn.Module | None = None
    loss: HingeLoss | None = None
    spectral_norms: list[nn.Module] = field(default_factory=list)
    lecam: LeCam = field(default_factory=lambda: LeCam(0.0))  # its anchors are saved

    @property
    def G_sample(self) -> nn.Module:
        """The generator that samples and evaluations use: the EMA one when kept."""
        return self.G if self.ema is None else self.ema.module


@dataclass
class Run:
    """Everything a running ``train`` holds; the phases of the loop take it."""

    config: TrainConfig
    run_dir: Path
    ctx: Context
    data: Data
    nets: Networks
    extra: dict  # saved with each checkpoint: time (s trained before this process), best_fid
    t_start: float = 0.0  # time.time() when this process began its steps
    lock: RunLock | None = None  # the run folder's lock (rank 0), released when train ends

    def elapsed(self, now: float) -> float:
        """Seconds of training of the whole run, earlier processes included."""
        return self.extra["time"] + (now - self.t_start)


def to_device(t: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if t is None else t.to(device, non_blocking=True)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def setup_device(config: TrainConfig) -> Context:
    """Join (or start) the process group, pick the device, check the batch splits evenly."""
    created_group = not dist.is_initialized()
    device = dist.init(config.device)
    rank, world = dist.rank(), dist.world_size()
    parts = world * config.accumulate
    if config.batch_size % parts:
        raise ValueError(
            f"batch_size={config.batch_size} is not divisible by world_size * accumulate = "
            f"{world} * {config.accumulate}"
        )
    precision = resolve_precision(config.precision, device)
    ctx = Context(device, rank, world, parts, created_group, precision)
    ctx.autocast = autocast_factory(precision, device)
    if ctx.cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return ctx


def _ignore_stop_signals(worker_id: int) -> None:
    """Data workers ignore Ctrl-C / SIGTERM sent to the whole process group: the main process
    still needs them to finish its step and save; they exit when it does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def open_data(
    config: TrainConfig,
    ctx: Context,
    run_dir: Path,
    *,
    start_step: int,
    checkpoint: dict | None,
    dataset=None,
) -> Data:
    """The dataset (``config.data`` unless one is given), ``classes.json`` beside
    config.json, and this process's share of each global batch from ``start_step`` on."""
    custom = dataset is not None
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
    if ctx.main:  # beside config.json: the names of the labels, for grids and `generate --class`
        (run_dir / "classes.json").write_text(
            json.dumps({"num_classes": num_classes, "class_names": class_names}, indent=1) + "\n"
        )
    if checkpoint is not None and checkpoint["num_classes"] != num_classes:
        raise ValueError(
            f"the data has {num_classes} classes but the checkpoint was trained with "
            f"{checkpoint['num_classes']}"
        )
    sampler = GlobalBatchSampler(
        len(dataset),
        config.batch_size,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world,
        accumulate=config.accumulate,
        start_batch=start_step * config.d_steps,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.workers,
        pin_memory=ctx.cuda,
        persistent_workers=config.workers > 0,
        worker_init_fn=_ignore_stop_signals if config.workers > 0 else None,
    )
    batches = iter(loader)

    def next_real():
        x, y = next(batches)
        return to_device(x, ctx.device), (to_device(y, ctx.device) if num_classes > 0 else None)

    return Data(dataset, custom, num_classes, class_names, next_real)


def build_networks(config: TrainConfig, num_classes: int, ctx: Context) -> Networks:
    """G and D (the same initial weights on every process), the EMA copy of G, Adam for each."""
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    G, D = build_models(config, num_classes, ctx.device)
    if config.sync_bn and ctx.world > 1 and ctx.cuda:
        G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
    ema = None
    if config.ema:
        ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        ema.module.eval()
        set_requires_grad(ema, False)
    betas = (config.beta1, config.beta2)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.g_lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.d_lr, betas=betas)
    return Networks(G, D, ema, opt_G, opt_D, lecam=LeCam(config.lecam))


def _spectral_norms(*modules: nn.Module) -> list[nn.Module]:
    return [m for mod in modules for m in mod.modules() if isinstance(m, _SpectralNorm)]


def prepare_networks(nets: Networks, config: TrainConfig, ctx: Context) -> None:
    """Wrap G and D for DDP (and torch.compile), make the loss object, set training mode."""
    nets.G_train, nets.D_train = dist.wrap(nets.G, ctx.device), dist.wrap(nets.D, ctx.device)
    G_fwd, D_fwd = nets.G, nets.D
    if config.compile:
        nets.G_train, nets.D_train = torch.compile(nets.G_train), torch.compile(nets.D_train)
        G_fwd, D_fwd = torch.compile(nets.G), torch.compile(nets.D)
    nets.loss = HingeLoss(
        G_fwd,
        D_fwd,
        G_train=nets.G_train,
        D_train=nets.D_train,
        autocast=ctx.autocast,
        augment=Augment(config.augment, config.resolution),
        lecam=nets.lecam,
    )
    nets.spectral_norms = _spectral_norms(nets.G, nets.D)
    nets.G.train()
    nets.D.train()


@contextlib.contextmanager
def frozen_power_iteration(sns: list[nn.Module], frozen: bool):
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


class StopFlag:
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
