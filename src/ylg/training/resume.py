"""Resuming a run: which checkpoint, which options, and restoring the state it holds.

The rule (the same for ``ylg train --resume``, ``ylg demo`` and Python code): a resumed run
uses the options saved with it (the checkpoint's, or ``config.json`` in its folder) plus the
options given now; the model options (:data:`ARCHITECTURE_FIELDS`) cannot change.

    from ylg.training.resume import resume_plan, resume_config
    file, run_dir = resume_plan("runs/x/ckpt-0000500.pt", None)   # go back to step 500
    config, saved_in = resume_config({"steps": 2000}, checkpoint=file, run_dir=run_dir)
    train(config, run_dir, resume=True, resume_from=file)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from ylg.runtime.checkpoint import find_checkpoint, load_checkpoint
from ylg.training.config import TrainConfig, resolve
from ylg.training.rng import set_rng_state
from ylg.training.state import Networks
from ylg.training.stats import truncate_stats

# Fields that define the networks; a resumed run must not change them.
ARCHITECTURE_FIELDS = ("resolution", "attention", "g_width", "d_width", "z_dim", "conditional")

PathLike = str | os.PathLike


def resume_plan(
    resume: bool | PathLike | None, out: PathLike | None
) -> tuple[Path | None, Path | None]:
    """``(checkpoint file, run folder)`` of a resume request: ``(None, None)`` for a new run
    (``resume=None``), ``(None, out)`` to continue ``out`` from its latest checkpoint
    (``resume=True``), ``(file, folder)`` to continue from a chosen checkpoint file or run
    folder (into the file's own folder, or ``out``). A missing checkpoint is an error that
    names the path: a typo must not start a new run."""
    if resume is None:
        return None, None
    if resume is True:
        if out is None:
            raise ValueError(
                "--resume needs --out (the run folder to continue) or a checkpoint: "
                "--resume runs/x/latest.pt"
            )
        try:
            find_checkpoint(Path(out))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"--resume: no checkpoint (latest.pt or ckpt-*.pt) in {out}; check the "
                "folder name, or drop --resume to start a new run"
            ) from None
        return None, Path(out)
    given = Path(resume)
    if not given.exists():
        raise FileNotFoundError(
            f"--resume {given}: no such checkpoint file or run folder; check the name, or "
            "drop --resume to start a new run"
        )
    try:
        file = find_checkpoint(given)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--resume {given}: no checkpoint (latest.pt or ckpt-*.pt) in this folder"
        ) from None
    out = Path(out) if out else file.parent
    if out.resolve() != file.parent.resolve():
        try:
            theirs = find_checkpoint(out)
        except FileNotFoundError:
            theirs = None
        if theirs is not None:
            raise ValueError(
                f"--out {out} already has a checkpoint ({theirs.name}) of another run; "
                f"resuming {file} there would mix two runs: choose a new --out"
            )
    return file, out


def saved_config(
    overrides: dict, *, checkpoint: PathLike | None = None, run_dir: PathLike | None = None
) -> tuple[TrainConfig, Path] | None:
    """The options saved with a run plus ``overrides``, and where they were read: the
    ``checkpoint`` file's when given, else ``run_dir/config.json``; ``None`` when neither
    holds any (a new run)."""
    if checkpoint is not None:
        saved, where = load_checkpoint(checkpoint, mmap=True)["config"], Path(checkpoint)
    elif run_dir is not None and (Path(run_dir) / "config.json").is_file():
        where = Path(run_dir) / "config.json"
        saved = json.loads(where.read_text())
    else:
        return None
    return TrainConfig.from_dict({**saved, **overrides}).validate(), where


def resume_config(
    preset: str,
    overrides: dict,
    *,
    resume: bool | PathLike | None = None,
    out: PathLike | None = None,
) -> tuple[TrainConfig, Path | None]:
    """The options of a run: on resume, the saved ones plus ``overrides``
    (:func:`saved_config`); otherwise (or when a run folder has no config.json yet)
    ``preset`` plus ``overrides``. Returns ``(config, where the saved options were read or
    None)``. ``resume`` and ``out`` as in :func:`resume_plan`."""
    if resume is None or resume is True:  # a new run, or out's config.json
        file, run_dir = None, (Path(out) if resume and out else None)
    else:
        file, run_dir = resume_plan(resume, out)
    found = saved_config(overrides, checkpoint=file, run_dir=run_dir)
    if found is None:
        return resolve(preset, overrides), None
    return found


def open_checkpoint(
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool,
    resume_from: PathLike | None,
    main: bool,
) -> tuple[dict | None, Path | None]:
    """The checkpoint ``train`` continues from, loaded on the CPU, and its path; ``(None,
    None)`` for a new run. Refuses to overwrite a run without ``resume`` and to change the
    model options (:data:`ARCHITECTURE_FIELDS`)."""
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
    if existing is None:
        if resume and main:
            print(f"ylg train: no checkpoint in {run_dir}; starting a new run", file=sys.stderr)
        return None, None
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
    return ckpt, existing


def restore(nets: Networks, ckpt: dict, extra: dict, *, stats_path: Path | None) -> None:
    """Load the checkpoint's weights, optimizer states, EMA, RNG state and ``extra``
    (time, best FID) into a freshly built run; drop the rows of ``stats_path`` (rank 0's
    stats.jsonl, else None) after the checkpoint's step."""
    nets.G.load_state_dict(ckpt["G"])
    nets.D.load_state_dict(ckpt["D"])
    nets.opt_G.load_state_dict(ckpt["opt_G"])
    nets.opt_D.load_state_dict(ckpt["opt_D"])
    if nets.ema is not None and ckpt.get("G_ema") is not None:
        nets.ema.module.load_state_dict(ckpt["G_ema"])
        nets.ema.n_averaged.fill_(int(ckpt.get("ema_n_averaged", 1)))
    if "lecam" in ckpt:
        nets.lecam.load_state_dict(ckpt["lecam"])
    set_rng_state(ckpt["rng"])
    extra.update(ckpt.get("extra", {}))
    if stats_path is not None:
        truncate_stats(stats_path, int(ckpt["step"]))
