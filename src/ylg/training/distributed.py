"""torch.distributed helpers that also work in a plain single process (world size 1).

A run launched by ``torchrun`` sees ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its
environment; :func:`init` then joins the process group (``nccl`` on CUDA, ``gloo`` on CPU).
Without those variables every helper here is a cheap no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ylg.runtime.device import resolve_device


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init(device: str = "auto") -> torch.device:
    """Join the process group if launched by torchrun; return this process's device.

    ``device``: ``auto`` (CUDA if available, one GPU per local rank), ``cpu``, ``cuda`` or
    ``cuda:N``.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = resolve_device("auto").type
    if device == "cuda":
        device = f"cuda:{local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available")
        torch.cuda.set_device(dev)
    if env_world_size() > 1 and not is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return dev


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over processes (in place on ``t``, also returned)."""
    if is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world_size()
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    if is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP-wrap ``module`` when running distributed, else return it unchanged.

    ``broadcast_buffers`` keeps rank 0's buffers (BN running statistics, spectral-norm
    power-iteration vectors) on every rank at each forward of the wrapped module.
    """
    if not is_initialized():
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, broadcast_buffers=True)


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()
