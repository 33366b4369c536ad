"""Argument checks of the attention entry points: each error names the argument, the value and
what is allowed (no ylg imports: every other file of the floor may use them)."""

from __future__ import annotations

import torch


def check_int(name: str, value, low: int) -> int:
    """``value`` as an ``int >= low`` (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    return value


def check_grid(name: str, grid) -> tuple[int, int]:
    """``grid`` as ``(rows, cols)``, both integers >= 1."""
    try:
        rows, cols = grid
    except (TypeError, ValueError):
        rows = cols = None
    for v in (rows, cols):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a pair of integers (rows, cols) >= 1, got {grid!r}")
    return int(rows), int(cols)


def check_grids(grid, key_grid) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(grid, key_grid)``; ``key_grid=None`` is the query grid; the query grid must be an
    integer multiple of the key grid per side (pooled keys)."""
    grid = check_grid("grid", grid)
    key_grid = grid if key_grid is None else check_grid("key_grid", key_grid)
    if grid[0] % key_grid[0] or grid[1] % key_grid[1]:
        raise ValueError(
            f"grid={grid} must be an integer multiple of key_grid={key_grid} per side "
            f"(pooled keys: key_grid = grid / pool factor)"
        )
    return grid, key_grid


def check_qkv(q, k, v) -> None:
    """q, k, v are 4-D floating tensors of one dtype with a head dimension >= 1."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor, got dtype {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [B, heads, N, D], got {tuple(t.shape)}")
        if t.shape[-1] < 1:
            raise ValueError(f"{name} has head dimension {t.shape[-1]}; it must be >= 1")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(
            f"q, k and v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype} "
            "(cast them, or run under torch.autocast)"
        )


def check_device(device) -> torch.device:
    """``device`` as a ``torch.device``."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a torch device (e.g. cpu, cuda, cuda:0)"
        ) from None


__all__ = ["check_device", "check_grid", "check_grids", "check_int", "check_qkv"]
