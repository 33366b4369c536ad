"""The ablation table: per run and per variant, from the runs' ``stats.jsonl``.

Per run: the best FID over its evaluations and the step of it (the paper reports the best FID
seen during training), the final FID (last evaluation), KID and IS at the best-FID step, the
median ``steps_per_s`` of its log rows (the median leaves out the intervals that include an
evaluation or the start-up), and the largest ``peak_mem_mb``. Per variant: mean and sample
standard deviation (``ddof=1``) of each over the seeds that have an evaluation.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ylg.runtime.files import atomic_write_text
from ylg.training.stats import read_stats

# (column, header in table.md, scale for table.md, decimals)
METRICS = (
    ("best_fid", "best FID", 1.0, 2),
    ("final_fid", "final FID", 1.0, 2),
    ("kid", "KID x1e3 (at best)", 1e3, 2),
    ("is", "IS (at best)", 1.0, 2),
    ("steps_per_s", "steps/s", 1.0, 3),
    ("peak_mem_mb", "peak mem (MiB)", 1.0, 0),
)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


@dataclass
class RunSummary:
    """What the table needs of one run folder."""

    name: str
    variant: str
    seed: int
    steps: int  # the target
    step: int  # last logged step
    finished: bool
    diverged: bool
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, fid)
    best_fid: float | None = None
    best_step: int | None = None
    final_fid: float | None = None
    final_step: int | None = None
    kid: float | None = None
    is_: float | None = None
    steps_per_s: float | None = None
    peak_mem_mb: float | None = None

    def value(self, key: str) -> float | None:
        return self.is_ if key == "is" else getattr(self, key)


def summarize_run(run_dir: str | os.PathLike, variant: str, seed: int, steps: int) -> RunSummary:
    """Summary of one run folder from its ``stats.jsonl`` (a missing one: nothing logged)."""
    run_dir = Path(run_dir)
    rows = read_stats(run_dir / "stats.jsonl")
    last = rows[-1] if rows else {}
    diverged = any(
        "loss" in k and isinstance(v, str) and v in ("nan", "inf", "-inf") for k, v in last.items()
    )
    step = int(last.get("step", 0))
    s = RunSummary(
        name=run_dir.name,
        variant=variant,
        seed=seed,
        steps=steps,
        step=step,
        finished=step >= steps and not diverged,
        diverged=diverged,
    )
    evals = [r for r in rows if _num(r.get("fid")) is not None]
    s.curve = [(int(r["step"]), float(r["fid"])) for r in evals]
    if evals:
        best = min(evals, key=lambda r: (r["fid"], r["step"]))  # earliest of equal FIDs
        s.best_fid, s.best_step = float(best["fid"]), int(best["step"])
        s.final_fid, s.final_step = float(evals[-1]["fid"]), int(evals[-1]["step"])
        s.kid, s.is_ = _num(best.get("kid")), _num(best.get("is"))
    speeds = [v for r in rows if (v := _num(r.get("steps_per_s"))) is not None]
    s.steps_per_s = statistics.median(speeds) if speeds else None
    mems = [v for r in rows if (v := _num(r.get("peak_mem_mb"))) is not None]
    s.peak_mem_mb = max(mems) if mems else None
    return s


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than 2 values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass
class VariantRow:
    variant: str
    runs: list[RunSummary]
    stats: dict[str, tuple[float | None, float | None]]  # key -> (mean, std)
    best_step: tuple[float | None, float | None]


def summarize(the_plan) -> tuple[list[VariantRow], list[RunSummary]]:
    """Per-variant rows (in the plan's order) and per-run summaries of an ablation plan."""
    runs = [summarize_run(r.run_dir, r.variant, r.seed, r.config.steps) for r in the_plan.runs]
    rows = []
    for v in the_plan.variants:
        mine = [r for r in runs if r.variant == v]
        stats = {
            key: mean_std([x for r in mine if (x := r.value(key)) is not None])
            for key, *_ in METRICS
        }
        steps = mean_std([float(r.best_step) for r in mine if r.best_step is not None])
        rows.append(VariantRow(v, mine, stats, steps))
    return rows, runs


def _fmt(mean: float | None, std: float | None, scale: float, digits: int) -> str:
    if mean is None:
        return "—"
    text = f"{mean * scale:.{digits}f}"
    return text if std is None else f"{text} ± {std * scale:.{digits}f}"


def format_markdown(rows: list[VariantRow], the_plan) -> str:
    config = the_plan.runs[0].config
    lines = [
        f"Ablation in {the_plan.out}: preset {the_plan.preset}, data "
        f"{config.data or 'built-in'}, {config.resolution}x{config.resolution}, "
        f"{config.steps} steps, batch {config.batch_size}, widths G {config.g_width} / "
        f"D {config.d_width}, FID every {config.eval_every} steps on {config.eval_n} samples "
        f"against {the_plan.reference.name}. Mean ± std over seeds "
        f"{', '.join(map(str, the_plan.seeds))}.",
        "",
        "| variant | runs done | "
        + " | ".join(h for _, h, *_ in METRICS[:1])
        + " | best step | "
        + " | ".join(h for _, h, *_ in METRICS[1:])
        + " |",
        "|---|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for row in rows:
        done = sum(r.finished for r in row.runs)
        cells = [_fmt(*row.stats[k], scale, d) for k, _, scale, d in METRICS]
        steps = "/".join(str(r.best_step) if r.best_step is not None else "—" for r in row.runs)
        diverged = sum(r.diverged for r in row.runs)
        note = f" ({diverged} diverged)" if diverged else ""
        lines.append(
            f"| {row.variant} | {done}/{len(row.runs)}{note} | {cells[0]} | {steps} | "
            + " | ".join(cells[1:])
            + " |"
        )
    return "\n".join(lines) + "\n"


def _csv_text(header: list[str], body: list[list]) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for line in body:
        w.writerow(["" if v is None else v for v in line])
    return buf.getvalue()


def write_tables(the_plan) -> Path:
    """Write ``table.md``, ``table.csv`` (per variant) and ``runs.csv`` (per run) into the
    ablation folder; return the path of ``table.md``."""
    rows, runs = summarize(the_plan)
    out = the_plan.out
    out.mkdir(parents=True, exist_ok=True)
    header = ["variant", "runs", "runs_finished", "best_step_mean", "best_step_std"]
    for key, *_ in METRICS:
        header += [f"{key}_mean", f"{key}_std"]
    body = []
    for row in rows:
        line = [row.variant, len(row.runs), sum(r.finished for r in row.runs), *row.best_step]
        for key, *_ in METRICS:
            line += list(row.stats[key])
        body.append(line)
    atomic_write_text(out / "table.csv", _csv_text(header, body))
    run_header = ["run", "variant", "seed", "steps", "step", "finished", "diverged",
                  "best_step", "final_step"] + [k for k, *_ in METRICS]  # fmt: skip
    run_body = [
        [
            r.name,
            r.variant,
            r.seed,
            r.steps,
            r.step,
            r.finished,
            r.diverged,
            r.best_step,
            r.final_step,
        ]
        + [r.value(k) for k, *_ in METRICS]  # fmt: skip
        for r in runs
    ]
    atomic_write_text(out / "runs.csv", _csv_text(run_header, run_body))
    return atomic_write_text(out / "table.md", format_markdown(rows, the_plan))
