"""Experiments over ordinary training runs: the Table 1 ablation (variants x seeds), its
table and its FID curves. See docs/experiments.md.

    from ylg.experiments import ablate
    ablate("runs/table1", variants=["sagan", "ylg"], seeds=[0, 1], preset="demo",
           options={"steps": 400, "eval_every": 100, "eval_n": 500})

``ablate.py`` imports no torch at import time; the table and curves modules are imported
lazily.
"""

from __future__ import annotations

import importlib

from ylg.experiments.ablate import (
    TABLE1,
    AblationResult,
    Plan,
    ablate,
    commands,
    load_plan,
    plan,
    report,
    save_plan,
)

_LAZY = {"plot_curves": "curves", "summarize": "table", "write_tables": "table"}

__all__ = [
    "TABLE1",
    "AblationResult",
    "Plan",
    "ablate",
    "commands",
    "load_plan",
    "plan",
    "plot_curves",
    "report",
    "save_plan",
    "summarize",
    "write_tables",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
