"""The plan of an ablation: which runs, with which options, and the spec saved beside them.

An ablation folder (``ylg ablate --out DIR``)::

    DIR/
      ablation.json          what the last invocation asked for (preset, options, variants, seeds)
      fid-reference.npz      FID/KID reference statistics: computed once, used by every run
      <variant>-seed<seed>/  an ordinary `ylg train` run folder (config.json, stats.jsonl, ...)
      table.md, table.csv    per variant: best FID (and its step), final FID, KID, IS, steps/s,
      runs.csv               peak memory, mean +- std over seeds; runs.csv: the same per run
      curves.png             FID against step per variant (seeds thin, their mean thick)

Every run has the same config but ``attention`` and ``seed``; the seed fixes the initial
weights, the data order and the latents (:mod:`ylg.training.sampler`), so the runs of one seed
see the same batches. This module imports no torch (``ylg ablate --help`` reads it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ylg.runtime.files import atomic_write_text
from ylg.training.config import TrainConfig, resolve

__all__ = [
    "MAY_CHANGE",
    "REFERENCE",
    "TABLE1",
    "AblationResult",
    "Plan",
    "Run",
    "check_compatible",
    "load_plan",
    "plan",
    "run_name",
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
    # imported here: `ylg ablate --help` reads TABLE1 from this module without torch
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


def save_plan(the_plan: Plan) -> None:
    """Write ``DIR/ablation.json`` (what :func:`load_plan` and ``--table-only`` read)."""
    atomic_write_text(the_plan.out / SPEC, json.dumps(the_plan.spec(), indent=2) + "\n")


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
