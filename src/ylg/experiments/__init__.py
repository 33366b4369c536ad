"""Experiments over ordinary training runs: the Table 1 ablation (variants x seeds), its
table and its FID curves. See docs/experiments.md.

    from ylg.experiments import ablate
    ablate("runs/table1", variants=["sagan", "ylg"], seeds=[0, 1], preset="demo",
           options={"steps": 400, "eval_every": 100, "eval_n": 500})

- :mod:`~ylg.experiments.spec`: the plan of an ablation (its runs) and the spec saved with it;
- :mod:`~ylg.experiments.reference`: the FID reference statistics every run shares;
- :mod:`~ylg.experiments.launch`: running the runs (here, as processes, as torchrun commands);
- :mod:`~ylg.experiments.ablation`: :func:`ablate` and :func:`report`, which use the three;
- :mod:`~ylg.experiments.table`, :mod:`~ylg.experiments.curves`: the results.

The names below are loaded on first use, so ``import ylg.experiments`` (and ``ylg --help``)
imports no torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "TABLE1": "spec",
    "AblationResult": "spec",
    "Plan": "spec",
    "load_plan": "spec",
    "plan": "spec",
    "save_plan": "spec",
    "commands": "launch",
    "ablate": "ablation",
    "report": "ablation",
    "plot_curves": "curves",
    "summarize": "table",
    "write_tables": "table",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
