"""``device="auto"`` and device strings, resolved in one place for every command."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_HELP", "resolve_device"]

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; other values as given.

    ValueError names the value when it is not a torch device, or asks for CUDA where there
    is none."""
    import torch  # here, not at the top: `ylg --help` imports this module and must stay fast

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device {device!r} is not a torch device ({err}); use {DEVICE_HELP}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use cpu")
    return dev
