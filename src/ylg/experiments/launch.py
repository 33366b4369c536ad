"""Running the runs of an ablation: in this process, as local ``ylg train`` processes, or as
``torchrun`` commands for a cluster's own scheduler."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ylg.experiments.reference import reference_size
from ylg.experiments.spec import AblationResult, Plan, Run
from ylg.runtime.checkpoint import load_checkpoint
from ylg.training import loop
from ylg.training.config import TrainConfig, resolve

__all__ = ["checkpoint_step", "commands", "train_argv", "train_in_process", "train_in_processes"]


def checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The step of ``run_dir/latest.pt`` (memory-mapped, not read whole), or None."""
    path = Path(run_dir) / "latest.pt"
    if not path.is_file():
        return None
    return int(load_checkpoint(path, mmap=True)["step"])


def _option_args(config: TrainConfig, preset: str) -> list[str]:
    """``--set k=v`` for every option where ``config`` differs from the preset."""
    default = resolve(preset).to_dict()
    args: list[str] = []
    for k, v in config.to_dict().items():
        if v == default[k]:
            continue
        text = "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        args += ["--set", f"{k}={text}"]
    return args


def train_argv(run: Run, preset: str) -> list[str]:
    """``ylg train`` arguments (after ``-m ylg``) that continue ``run`` if it has a checkpoint
    now, else start it (``ylg train --resume`` refuses a folder without a checkpoint)."""
    resume = ["--resume"] if checkpoint_step(run.run_dir) is not None else []
    return [
        "train",
        "--preset",
        preset,
        "--out",
        str(run.run_dir),
        *resume,
        "--no-progress",
        *_option_args(run.config, preset),
    ]


def commands(the_plan: Plan, *, nproc_per_node: int = 1) -> list[str]:
    """Shell commands that do the ablation's work on a cluster: first the reference statistics
    (once), then one ``torchrun`` command per run (``--resume`` for the runs that have a
    checkpoint when the commands are printed).
    Run the table with ``ylg ablate ... --table-only`` at the end."""
    config = the_plan.runs[0].config
    data = "builtin" if config.data is None else config.data
    out = [
        shlex.join(
            [
                "ylg",
                "stats",
                data,
                "--resolution",
                str(config.resolution),
                "--n",
                str(reference_size(config)),
                "--out",
                str(the_plan.reference),
            ]
        )  # fmt: skip
    ]
    for run in the_plan.runs:
        out.append(
            shlex.join(
                ["torchrun", "--standalone", f"--nproc-per-node={nproc_per_node}", "-m", "ylg"]
                + train_argv(run, the_plan.preset)
            )
        )
    return out


def train_in_process(todo: list[Run], result: AblationResult, progress: bool) -> None:
    for i, run in enumerate(todo):
        start = checkpoint_step(run.run_dir)
        print(
            f"ylg ablate: [{i + 1}/{len(todo)}] {run.name}: steps {start or 0} -> "
            f"{run.config.steps}",
            flush=True,
        )
        try:
            out = loop.train(run.config, run.run_dir, resume=start is not None, progress=progress)
        except loop.NonFiniteLossError as err:
            print(f"ylg ablate: {run.name} stopped: {err}", file=sys.stderr, flush=True)
            result.failed[run.name] = str(err)
            continue
        if out.stopped == "signal":
            result.interrupted = True
            return
        result.trained.append(run.name)


def train_in_processes(
    todo: list[Run], result: AblationResult, preset: str, jobs: int, poll_s: float = 0.5
) -> None:
    """``jobs`` ``python -m ylg train`` processes at a time, each logging to RUN/train.log.
    SIGINT / SIGTERM stop launching and forward SIGTERM to the running ones (which save)."""
    env = {**os.environ}
    pending = list(todo)
    running: dict[subprocess.Popen, tuple[Run, Any]] = {}
    stop = []

    def handle(signum, frame):
        stop.append(signum)
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while pending or running:
            while pending and not stop and len(running) < jobs:
                run = pending.pop(0)
                run.run_dir.mkdir(parents=True, exist_ok=True)
                log = open(run.run_dir / "train.log", "a")  # noqa: SIM115
                argv = [sys.executable, "-m", "ylg", *train_argv(run, preset)]
                print(f"ylg ablate: started {run.name} (log: {run.run_dir / 'train.log'})")
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[proc] = (run, log)
            for proc in [p for p in running if p.poll() is not None]:
                run, log = running.pop(proc)
                log.close()
                step = checkpoint_step(run.run_dir) or 0
                if proc.returncode == 0 and step >= run.config.steps:
                    result.trained.append(run.name)
                    print(f"ylg ablate: finished {run.name}", flush=True)
                elif proc.returncode == 0 or stop:
                    result.interrupted = True
                else:
                    why = (
                        f"exit status {proc.returncode} at step {step}; see {run.run_dir}/train.log"
                    )
                    result.failed[run.name] = why
                    print(f"ylg ablate: {run.name} failed: {why}", file=sys.stderr, flush=True)
            time.sleep(poll_s if running else 0)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stop:
        result.interrupted = True
