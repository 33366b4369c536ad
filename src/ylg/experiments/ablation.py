"""Table 1 as a function: the same SAGAN with only its attention changed, over seeds.

``ablate(out, variants=..., seeds=..., preset=..., options=...)`` trains one ordinary run
folder per (variant, seed) under ``out`` and writes the comparison table (``table.md``,
``table.csv``, ``runs.csv``) and FID curves (``curves.png``).

The plan and the folder's layout (listed there) are :mod:`ylg.experiments.spec`, the reference
statistics :mod:`~ylg.experiments.reference`, the runners :mod:`~ylg.experiments.launch`.
Running the same call again resumes unfinished runs and skips finished ones; a larger
``steps`` continues them. Runs go one at a time in this process, or ``jobs`` at once as
``python -m ylg train`` processes on one GPU; :func:`~ylg.experiments.launch.commands` gives
one ``torchrun`` command per run for a cluster's own scheduler.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from ylg.experiments.curves import plot_curves
from ylg.experiments.launch import checkpoint_step, train_in_process, train_in_processes
from ylg.experiments.reference import ensure_reference
from ylg.experiments.spec import (
    TABLE1,
    AblationResult,
    Run,
    check_compatible,
    load_plan,
    plan,
    save_plan,
)
from ylg.experiments.table import write_tables
from ylg.runtime.device import resolve_device

__all__ = ["ablate", "report"]


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
    the_plan = plan(out, variants=variants, seeds=seeds, preset=preset, options=options)
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be an integer >= 1")
    device = str(resolve_device(the_plan.runs[0].config.device))
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
            train_in_process(todo, result, progress)
        else:
            train_in_processes(todo, result, the_plan.preset, jobs)
    result.table = write_tables(the_plan)
    result.curves = plot_curves(the_plan)
    return result


def report(out: str | os.PathLike) -> AblationResult:
    """Write the table and curves of the ablation in ``out`` as it stands (no training)."""
    the_plan = load_plan(out)
    return AblationResult(
        out=the_plan.out, table=write_tables(the_plan), curves=plot_curves(the_plan)
    )
