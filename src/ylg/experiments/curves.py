"""FID against training step per variant, like the paper's Figure 4: each seed a thin line,
the mean over seeds a thick one (at the steps every seed has evaluated)."""

from __future__ import annotations

import statistics
from pathlib import Path

from ylg.experiments.table import RunSummary, summarize


def mean_curve(runs: list[RunSummary]) -> list[tuple[int, float]]:
    """``(step, mean FID)`` at the steps where every run in ``runs`` has an FID."""
    curves = [dict(r.curve) for r in runs if r.curve]
    if not curves or len(curves) < len(runs):
        return []
    common = sorted(set.intersection(*(set(c) for c in curves)))
    return [(s, statistics.fmean(c[s] for c in curves)) for s in common]


def plot_curves(the_plan, path: str | Path | None = None) -> Path:
    """Write the curves of an ablation plan to ``path`` (default ``DIR/curves.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, _ = summarize(the_plan)
    path = Path(path) if path is not None else the_plan.out / "curves.png"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(rows):
        color = colors[i % len(colors)]
        for r in row.runs:
            if r.curve:
                xs, ys = zip(*r.curve)
                ax.plot(xs, ys, color=color, linewidth=0.8, alpha=0.45)
        mean = mean_curve(row.runs)
        if mean:
            xs, ys = zip(*mean)
            ax.plot(
                xs, ys, color=color, linewidth=2.4, marker="o", markersize=3.5,
                label=f"{row.variant} (mean of {len(row.runs)})",
            )  # fmt: skip
        elif any(r.curve for r in row.runs):
            ax.plot([], [], color=color, linewidth=2.4, label=f"{row.variant} (no common steps)")
    config = the_plan.runs[0].config
    ax.set_xlabel("generator step")
    ax.set_ylabel(f"FID ({config.eval_n} samples)")
    ax.set_title(f"FID during training, seeds {', '.join(map(str, the_plan.seeds))}", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
