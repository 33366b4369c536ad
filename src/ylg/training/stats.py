"""Run statistics: ``stats.jsonl`` (one JSON object per logged step), TensorBoard, loss plots.

Each row has ``step``, ``time`` (seconds since the run started, summed over resumes) and
the losses under names containing ``loss`` (``loss_d``, ``loss_d_real``, ``loss_d_fake``,
``loss_g``), plus whatever else the loop logs (``d_real``, ``d_fake``, ``steps_per_s``,
``fid``, ...).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from ylg.runtime.files import atomic_write_text


def read_stats(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a ``stats.jsonl`` (missing file: empty list). A torn last line (what a
    kill mid-write leaves) is dropped with a warning; a bad line elsewhere is a ValueError
    naming the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip()]
    rows = []
    for k, (i, line) in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if k == len(lines) - 1:
                warnings.warn(f"{path}: dropped a torn last line {i} ({err})", stacklevel=2)
                break
            raise ValueError(f"{path} line {i} is not JSON ({err})") from None
    return rows


def clear_logs(run_dir: str | os.PathLike) -> None:
    """Remove ``stats.jsonl`` and ``tensorboard/`` of ``run_dir``: a fresh start owns its
    folder's logs (rows of an earlier try that died before its first checkpoint go)."""
    run_dir = Path(run_dir)
    (run_dir / "stats.jsonl").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)


def truncate_stats(path: str | os.PathLike, step: int) -> None:
    """Drop rows after ``step`` (a resumed run re-logs the steps it repeats)."""
    path = Path(path)
    rows = [r for r in read_stats(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


class StatsWriter:
    """Writes ``stats.jsonl`` rows and TensorBoard scalars/images; inert when not enabled
    (the non-zero ranks of a distributed run)."""

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True, tensorboard=True):
        self.enabled = enabled
        self.path = Path(run_dir) / "stats.jsonl"
        self._file = open(self.path, "a") if enabled else None  # noqa: SIM115
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard missing: the jsonl is enough
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: _json_float(v) for k, v in values.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if k != "time":
                    self._tb.add_scalar(k, v, step)

    def image(self, tag: str, image: torch.Tensor, step: int) -> None:
        """``image``: uint8 ``[3, H, W]``."""
        if self.enabled and self._tb is not None:
            self._tb.add_image(tag, image, step)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak for :func:`peak_memory_mb` (CUDA: the allocator's peak; CPU on Linux:
    the process's peak RSS, through ``/proc/self/clear_refs``; elsewhere: no-op)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB since the last :func:`reset_peak_memory`: on CUDA the bytes torch
    allocated on ``device``; on CPU the process's peak resident set (everything: Python, torch,
    data, models)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _json_float(v: float) -> float | str:
    v = float(v)
    return v if math.isfinite(v) else str(v)  # JSON has no nan/inf


def plot_stats(stats_path: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Plot every ``*loss*`` column of ``stats.jsonl`` against ``step`` into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_stats(stats_path)
    if not rows:
        raise ValueError(f"{stats_path} has no rows to plot")
    keys = sorted({k for r in rows for k in r if "loss" in k})
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=k, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("hinge loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
