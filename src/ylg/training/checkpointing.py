"""Writing a training checkpoint: ``latest.pt`` (and ``ckpt-<step>.pt``, ``best.pt``).

The file format is :data:`ylg.runtime.checkpoint.FORMAT`: a plain dict of state_dicts, the
resolved config and the RNG state, written atomically (a stopped run never leaves half a
file). Reading it back is :mod:`ylg.runtime.checkpoint` (any floor) and
:func:`ylg.training.resume.restore` (a resumed run).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from ylg.runtime.checkpoint import BEST, FORMAT, LATEST
from ylg.runtime.files import atomic_path, atomic_torch_save
from ylg.training.rng import rng_state
from ylg.training.state import Run


def checkpoint_dict(run: Run, step: int) -> dict:
    """The checkpoint of ``run`` after ``step`` steps."""
    nets = run.nets
    return {
        "format": FORMAT,
        "step": step,
        "config": run.config.to_dict(),
        "num_classes": run.data.num_classes,
        "class_names": run.data.class_names,
        "world_size": run.ctx.world,
        "precision": run.ctx.precision,
        "G": nets.G.state_dict(),
        "D": nets.D.state_dict(),
        "G_ema": None if nets.ema is None else nets.ema.module.state_dict(),
        "ema_n_averaged": 0 if nets.ema is None else int(nets.ema.n_averaged),
        "opt_G": nets.opt_G.state_dict(),
        "opt_D": nets.opt_D.state_dict(),
        "lecam": nets.lecam.state_dict(),
        "rng": rng_state(),
        "extra": dict(run.extra, time=run.elapsed(time.time())),
    }


def save_checkpoint(run: Run, step: int, name: str = LATEST) -> Path | None:
    """Write ``run_dir/name`` (rank 0; other ranks return None). With ``keep_checkpoints``,
    ``latest.pt`` is also copied to ``ckpt-<step>.pt``."""
    if not run.ctx.main:
        return None
    path = atomic_torch_save(checkpoint_dict(run, step), run.run_dir / name)
    if run.config.keep_checkpoints and name == LATEST:
        with atomic_path(run.run_dir / f"ckpt-{step:07d}.pt") as tmp:
            shutil.copyfile(path, tmp)
    return path


def keep_best(run: Run, step: int, fid: float | None) -> bool:
    """Write ``best.pt`` when ``fid`` is the run's best so far; True if it was."""
    best = run.extra["best_fid"]
    if fid is None or not math.isfinite(fid) or (best is not None and fid >= best):
        return False
    run.extra["best_fid"] = float(fid)
    run.extra["best_step"] = step
    save_checkpoint(run, step, BEST)
    return True
