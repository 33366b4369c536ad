"""Table 1 as a function: the same SAGAN with only its attention changed, over seeds.

``ablate(out, variants=..., seeds=..., preset=..., options=...)`` trains one ordinary run
folder per (variant, seed) and writes the comparison table and FID curves::

    DIR/
      ablation.json          what the last invocation asked for (preset, options, variants, seeds)
      fid-reference.npz      FID/KID reference statistics: computed once, used by every run
      <variant>-seed<seed>/  an ordinary `ylg train` run folder (config.json, stats.jsonl, ...)
      table.md, table.csv    per variant: best FID (and its step), final FID, KID, IS, steps/s,
      runs.csv               peak memory, mean +- std over seeds; runs.csv: the same per run
      curves.png             FID against step per variant (seeds thin, their mean thick)

Every run has the same config but ``attention`` and ``seed``; the seed fixes the initial
weights, the data order and the latents (:mod:`ylg.training.sampler`), so the runs of one seed
see the same batches. Running the same call again resumes unfinished runs and skips finished
ones; a larger ``steps`` continues them. Runs go one at a time in this process, or ``jobs`` at
once as ``python -m ylg train`` processes on one GPU; :func:`commands` gives one ``torchrun``
command per run for a cluster's own scheduler.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ylg.training.config import TrainConfig, resolve

__all__ = [
    "REFERENCE",
    "TABLE1",
    "AblationResult",
    "Plan",
    "ablate",
    "commands",
    "load_plan",
    "plan",
    "report",
    "save_plan",
]

TABLE1 = ("sagan", "sagan8", "ylg", "ylg-noesa", "ylg-strided")  # the paper's Table 1 rows
REFERENCE = "fid-reference.npz"
SPEC = "ablation.json"
SPEC_FORMAT = "ylg-ablation-1"
# Options that may differ from an existing run's config.json without changing what it computes
# (``steps``: raising it continues the run).
MAY_CHANGE = (
    "steps",
    "device",
    "workers",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "keep_checkpoints",
)
SET_BY_ABLATE = ("attention", "seed", "eval_ref")


@dataclass(frozen=True)
class Run:
    """One (variant, seed) of an ablation and its training config."""

    variant: str
    seed: int
    run_dir: Path
    config: TrainConfig

    @property
    def name(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class Plan:
    """The runs of an ablation, seed-major (all variants of the first seed first)."""

    out: Path
    preset: str
    options: dict[str, Any]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: tuple[Run, ...]

    @property
    def reference(self) -> Path:
        return self.out / REFERENCE

    def spec(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "preset": self.preset,
            "options": self.options,
            "variants": list(self.variants),
            "seeds": list(self.seeds),
        }


@dataclass
class AblationResult:
    out: Path
    trained: list[str] = field(default_factory=list)  # runs that trained this time
    skipped: list[str] = field(default_factory=list)  # already finished
    failed: dict[str, str] = field(default_factory=dict)  # run -> why (non-finite loss, ...)
    interrupted: bool = False
    table: Path | None = None
    curves: Path | None = None


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def plan(
    out: str | os.PathLike,
    *,
    variants: Sequence[str] = TABLE1,
    seeds: Sequence[int] = (0, 1),
    preset: str = "demo",
    options: dict[str, Any] | None = None,
) -> Plan:
    """The runs of an ablation: ``preset`` + ``options`` for every run, then each run's
    ``attention`` (variant), ``seed`` and ``eval_ref`` (``out/fid-reference.npz``).

    Raises ValueError for unknown or repeated variants, repeated or negative seeds, options
    that the ablation sets itself, or no periodic evaluation (``eval_every`` must be > 0).
    """
    from ylg.models.variants import VARIANTS

    out = Path(out).expanduser().resolve()
    variants = tuple(variants)
    seeds = tuple(seeds)
    options = dict(options or {})
    if not variants:
        raise ValueError("variants is empty; give at least one of " + ", ".join(VARIANTS))
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variant(s) {', '.join(bad)}; valid: {', '.join(VARIANTS)}")
    if len(set(variants)) != len(variants):
        raise ValueError(f"variants {list(variants)} has repeats")
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    if any(int(s) != s or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {list(seeds)} must be distinct integers >= 0")
    fixed = [k for k in SET_BY_ABLATE if k in options]
    if fixed:
        raise ValueError(
            f"option(s) {', '.join(fixed)} are set by the ablation itself (--variants, --seeds "
            f"and {out / REFERENCE}); remove them"
        )
    if options.get("data") is not None:
        options["data"] = str(Path(options["data"]).expanduser().resolve())
    base = resolve(preset, options)  # validates the options once
    if base.eval_every < 1:
        raise ValueError(
            f"eval_every={base.eval_every}: an ablation needs periodic FID; set --eval-every K > 0"
        )
    runs = tuple(
        Run(
            variant=v,
            seed=int(s),
            run_dir=out / run_name(v, s),
            config=resolve(
                preset,
                {**options, "attention": v, "seed": int(s), "eval_ref": str(out / REFERENCE)},
            ),
        )
        for s in seeds
        for v in variants
    )
    return Plan(out, preset, options, variants, tuple(int(s) for s in seeds), runs)


# ----------------------------------------------------------------------------------------
# State of a run folder.


def checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The step of ``run_dir/latest.pt`` (memory-mapped, not read whole), or None."""
    import torch

    path = Path(run_dir) / "latest.pt"
    if not path.is_file():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return int(ckpt["step"])


def check_compatible(run: Run) -> None:
    """ValueError if ``run.run_dir`` holds a run with other options than ``run.config``
    (beyond :data:`MAY_CHANGE`): an ablation compares runs with identical settings."""
    saved_path = run.run_dir / "config.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    want = run.config.to_dict()
    changed = [k for k in want if k not in MAY_CHANGE and saved.get(k) != want[k]]
    if changed:
        raise ValueError(
            f"{run.run_dir} was run with other options: "
            + ", ".join(f"{k}={saved.get(k)!r} (now {want[k]!r})" for k in changed)
            + "; only "
            + ", ".join(MAY_CHANGE)
            + " may change between invocations; use another --out for other settings"
        )


# ----------------------------------------------------------------------------------------
# Reference statistics: once per ablation, shared by every run.


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _source_name(data: str | None) -> str:
    # as ylg.metrics.reference_stats names its source
    return "built-in procedural dataset" if data is None else str(Path(data).resolve())


def reference_size(config: TrainConfig) -> int:
    """How many real images the reference uses: ``eval_ref_n``, capped by the data."""
    from ylg.data import make_dataset

    return min(len(make_dataset(config.data, config.resolution, seed=0)), config.eval_ref_n)


def ensure_reference(the_plan: Plan, *, progress: bool = True) -> Path:
    """Compute ``DIR/fid-reference.npz`` unless it is there; check that it is for this data,
    resolution and ``eval_ref_n``."""
    from ylg.metrics import ReferenceStats, load_inception, reference_stats

    config = the_plan.runs[0].config
    path = the_plan.reference
    n = reference_size(config)
    source = _source_name(config.data)
    if path.is_file():
        ref = ReferenceStats.load(path, resolution=config.resolution)
        if ref.n != n or ref.source != source:
            raise ValueError(
                f"{path} holds statistics of {ref.n} images of {ref.source}, but this ablation "
                f"asks for {n} of {source}; use another --out (or delete the file if no run "
                "has used it yet)"
            )
        return path
    device = _device(config.device)
    print(f"ylg ablate: reference statistics of {n} images of {source} -> {path}", flush=True)
    inception = load_inception(device=device, progress=progress)
    stats = reference_stats(
        config.data,
        config.resolution,
        n=n,
        device=device,
        inception=inception,
        cache=False,
        progress=progress,
    )
    return stats.save(path)


# ----------------------------------------------------------------------------------------
# Commands: one per run, for a cluster (torchrun) or for local worker processes.


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


def save_plan(the_plan: Plan) -> None:
    """Write ``DIR/ablation.json`` (what :func:`load_plan` and ``--table-only`` read)."""
    the_plan.out.mkdir(parents=True, exist_ok=True)
    tmp = the_plan.out / f".{SPEC}.tmp"
    tmp.write_text(json.dumps(the_plan.spec(), indent=2) + "\n")
    os.replace(tmp, the_plan.out / SPEC)


def load_plan(out: str | os.PathLike) -> Plan:
    """The plan of the last invocation on ``out`` (from ``out/ablation.json``)."""
    path = Path(out) / SPEC
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out} is not an ablation folder")
    spec = json.loads(path.read_text())
    if spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"{path} is not a ylg ablation spec (format {SPEC_FORMAT!r})")
    return plan(
        out,
        variants=spec["variants"],
        seeds=spec["seeds"],
        preset=spec["preset"],
        options=spec["options"],
    )


# ----------------------------------------------------------------------------------------
# Running.


def _train_in_process(todo: list[Run], result: AblationResult, progress: bool) -> None:
    from ylg.training.loop import NonFiniteLossError, train

    for i, run in enumerate(todo):
        start = checkpoint_step(run.run_dir)
        print(
            f"ylg ablate: [{i + 1}/{len(todo)}] {run.name}: steps {start or 0} -> "
            f"{run.config.steps}",
            flush=True,
        )
        try:
            out = train(run.config, run.run_dir, resume=start is not None, progress=progress)
        except NonFiniteLossError as err:
            print(f"ylg ablate: {run.name} stopped: {err}", file=sys.stderr, flush=True)
            result.failed[run.name] = str(err)
            continue
        if out.stopped == "signal":
            result.interrupted = True
            return
        result.trained.append(run.name)


def _train_in_processes(
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


def ablate(
    out: str | os.PathLike,
    *,
    variants: Sequence[str] = TABLE1,
    seeds: Sequence[int] = (0, 1),
    preset: str = "demo",
    options: dict[str, Any] | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> AblationResult:
    """Train every (variant, seed) run of the ablation in ``out`` that is not finished, then
    write ``table.md``, ``table.csv``, ``runs.csv`` and ``curves.png``.

    Args:
        out: the ablation folder (created).
        variants: attention variants (:data:`ylg.models.variants.VARIANTS`), default Table 1.
        seeds: one run per variant and seed.
        preset: training preset (:data:`ylg.training.config.PRESETS`).
        options: training options over the preset, the same for every run (``data``,
            ``steps``, ``eval_every`` (required > 0), ``eval_n``, ``eval_ref_n``, widths, ...).
        jobs: runs at once, as separate processes; on the CPU always 1 (with a message).
        progress: progress bars.

    Returns an :class:`AblationResult`; ``interrupted`` when a signal stopped it (call again
    to continue). Runs that stop on a non-finite loss are listed in ``failed``; the others
    still run.
    """
    from ylg.experiments.curves import plot_curves
    from ylg.experiments.table import write_tables

    the_plan = plan(out, variants=variants, seeds=seeds, preset=preset, options=options)
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be an integer >= 1")
    device = _device(the_plan.runs[0].config.device)
    if jobs > 1 and not device.startswith("cuda"):
        print(
            f"ylg ablate: --jobs {jobs} on the CPU: running one job at a time (concurrent runs "
            "would only share the same cores)",
            file=sys.stderr,
        )
        jobs = 1
    result = AblationResult(out=the_plan.out)
    todo: list[Run] = []
    for run in the_plan.runs:
        check_compatible(run)
        step = checkpoint_step(run.run_dir)
        if step is not None and step >= run.config.steps:
            result.skipped.append(run.name)
        else:
            todo.append(run)
    save_plan(the_plan)
    if result.skipped:
        print(f"ylg ablate: finished already, skipped: {', '.join(result.skipped)}", flush=True)
    if todo:
        ensure_reference(the_plan, progress=progress)
        if jobs == 1:
            _train_in_process(todo, result, progress)
        else:
            _train_in_processes(todo, result, the_plan.preset, jobs)
    result.table = write_tables(the_plan)
    result.curves = plot_curves(the_plan)
    return result


def report(out: str | os.PathLike) -> AblationResult:
    """Write the table and curves of the ablation in ``out`` as it stands (no training)."""
    from ylg.experiments.curves import plot_curves
    from ylg.experiments.table import write_tables

    the_plan = load_plan(out)
    return AblationResult(
        out=the_plan.out, table=write_tables(the_plan), curves=plot_curves(the_plan)
    )
