"""FID/KID reference statistics of an ablation: computed once, shared by every run.

They come through ylg's statistics cache (:func:`ylg.metrics.reference_stats`, keyed by the
data files, the resolution, ``n``, the seed and the Inception weights), so a second ablation or
a training run on the same data and sizes reuses them instead of recomputing; the ablation
folder keeps its own copy (``fid-reference.npz``) that every run reads."""

from __future__ import annotations

from pathlib import Path

from ylg import metrics
from ylg.data import make_dataset
from ylg.experiments.spec import Plan
from ylg.runtime.device import resolve_device
from ylg.training.config import TrainConfig

__all__ = ["ensure_reference", "reference_size"]


def _source_name(data: str | None) -> str:
    # as ylg.metrics.reference_stats names its source
    return "built-in procedural dataset" if data is None else str(Path(data).resolve())


def reference_size(config: TrainConfig) -> int:
    """How many real images the reference uses: ``eval_ref_n``, capped by the data."""
    return min(len(make_dataset(config.data, config.resolution, seed=0)), config.eval_ref_n)


def ensure_reference(the_plan: Plan, *, progress: bool = True) -> Path:
    """Compute ``DIR/fid-reference.npz`` unless it is there; check that it is for this data,
    resolution and ``eval_ref_n``."""
    config = the_plan.runs[0].config
    path = the_plan.reference
    n = reference_size(config)
    source = _source_name(config.data)
    if path.is_file():
        ref = metrics.ReferenceStats.load(path, resolution=config.resolution)
        if ref.n != n or ref.source != source:
            raise ValueError(
                f"{path} holds statistics of {ref.n} images of {ref.source}, but this ablation "
                f"asks for {n} of {source}; use another --out (or delete the file if no run "
                "has used it yet)"
            )
        return path
    device = str(resolve_device(config.device))
    print(f"ylg ablate: reference statistics of {n} images of {source} -> {path} (cached)",
          flush=True)  # fmt: skip
    inception = metrics.load_inception(device=device, progress=progress)
    stats = metrics.reference_stats(
        config.data,
        config.resolution,
        n=n,
        device=device,
        inception=inception,
        cache=True,
        progress=progress,
    )
    return stats.save(path)
