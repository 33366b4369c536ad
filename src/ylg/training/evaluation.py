"""Evaluation during training: FID / IS / KID of the (EMA) generator, against reference
statistics of the training data (given, cached in the run folder, or in the shared cache).

The metrics are looked up as attributes of :mod:`ylg.metrics` (``metrics.load_inception``,
...), so tests can swap in a tiny Inception.
"""

from __future__ import annotations

from ylg import metrics  # module attributes, so tests can swap in a tiny Inception
from ylg.metrics.evaluate import default_metrics
from ylg.training.state import Run


class Evaluator:
    """Evaluates a run's generator; loads Inception on the first call. Rank 0 only."""

    def __init__(self, run: Run):
        self.run = run
        self._inception = None

    @property
    def inception(self):
        if self._inception is None:
            self._inception = metrics.load_inception(device=self.run.ctx.device, progress=False)
        return self._inception

    def reference(self):
        """Reference statistics of the training data: ``eval_ref`` when given (e.g. one file
        shared by every run of an ablation), else computed from the data and cached."""
        config, device, dataset = self.run.config, self.run.ctx.device, self.run.data.dataset
        inception = self.inception
        n_ref = min(len(dataset), config.eval_ref_n)
        if config.eval_ref:
            return metrics.ReferenceStats.load(
                config.eval_ref, resolution=config.resolution, extractor=inception.extractor_id
            )
        if self.run.data.custom or (config.data is None and config.shapes_style != "scenes"):
            # not (only) named by config.data: cache in the run folder
            ref_path = self.run.run_dir / "fid-reference.npz"
            if ref_path.exists():
                return metrics.ReferenceStats.load(ref_path)
            reference = metrics.compute_reference_stats(
                dataset, n=n_ref, device=device, inception=inception, progress=False
            )
            reference.save(ref_path)
            return reference
        # shared disk cache keyed by data source, resolution, n and Inception weights
        return metrics.reference_stats(
            config.data,
            config.resolution,
            n=n_ref,
            device=device,
            inception=inception,
            progress=False,
        )

    def __call__(self) -> dict[str, float]:
        """FID, IS (with a classifier head) and KID (when the reference keeps features)."""
        inception = self.inception
        reference = self.reference()
        result = metrics.evaluate_generator(
            self.run.nets.G_sample,
            n=self.run.config.eval_n,
            reference=reference,
            metrics=default_metrics(inception) + (() if reference.features is None else ("kid",)),
            device=self.run.ctx.device,
            seed=self.run.config.seed,
            inception=inception,
            progress=False,
        )
        return {k: float(v) for k, v in result.items()}
