"""FID / IS / KID against reference statistics: of a generator, or of a set of images.

:func:`evaluate_generator`: samples come from a fixed-seed generator (no truncation):
``z ~ N(0, I)`` and, for a class-conditional G, labels uniform over its classes, all drawn up
front so that the samples do not depend on the batch size. Generated images are quantised like
a saved PNG (:func:`ylg.metrics.to_uint8`) and fed to the FID Inception.

:func:`evaluate_images`: FID / KID between two image sets (folders, ``.npz``, anything
``ylg.data.make_dataset`` reads), as torch-fidelity's ``--input1 A --input2 B``: both sides are
reduced to :class:`ReferenceStats` (cached on disk) and compared.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ylg.metrics.bootstrap import bootstrap_fid, bootstrap_kid
from ylg.metrics.features import FeatureMoments
from ylg.metrics.fid import fid_from_statistics, warn_if_undersampled
from ylg.metrics.inception import InceptionV3FID
from ylg.metrics.isc import inception_score
from ylg.metrics.kid import kid_from_features
from ylg.metrics.quantize import to_uint8
from ylg.metrics.stats import ReferenceStats, reference_stats
from ylg.metrics.weights import load_inception, no_is_message

METRICS = ("fid", "is", "kid")


def _param_device(module: nn.Module, fallback: torch.device) -> torch.device:
    for p in module.parameters():
        return p.device
    return fallback


def parse_metrics(metrics) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = tuple(str(m).lower() for m in metrics)
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ValueError(
            f"metrics must be a non-empty subset of {', '.join(METRICS)}; got {metrics}"
        )
    return tuple(dict.fromkeys(metrics))


def evaluate_generator(
    G: nn.Module,
    *,
    n: int,
    reference: ReferenceStats | None,
    metrics=("fid", "is"),
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    inception: InceptionV3FID | None = None,
    is_splits: int = 10,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    bootstrap: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Metrics of ``n`` samples of ``G`` (``G(z [B, z_dim], y [B] | None) -> [B, 3, R, R]``).

    Returns ``{"fid": ..., "is": ..., "is_std": ..., "kid": ..., "kid_std": ...}`` for the
    requested ``metrics`` (any of ``fid``, ``is``, ``kid``). FID and KID need ``reference``
    (its resolution and extractor must match G and the Inception); KID needs its stored
    features and uses subsets of ``min(kid_subset_size, n, stored)`` samples.
    ``bootstrap`` > 0 adds ``fid_ci95`` / ``kid_ci95``: 95% percentile intervals from that many
    resamples of the generated features (:mod:`ylg.metrics.bootstrap`).
    G is run in eval mode and put back in the mode it was in.
    """
    metrics = parse_metrics(metrics)
    if isinstance(G, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        G = G.module
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    n = int(n)
    if "is" in metrics and n < is_splits:
        raise ValueError(f"n={n} is fewer than the {is_splits} Inception Score splits")
    if int(bootstrap) != bootstrap or bootstrap < 0 or bootstrap == 1:
        raise ValueError(f"bootstrap must be 0 (off) or an integer >= 2, got {bootstrap!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    needs_ref = [m for m in metrics if m in ("fid", "kid")]
    if needs_ref and reference is None:
        raise ValueError(f"metrics {', '.join(needs_ref)} need reference statistics; got None")
    if "kid" in metrics and reference.features is None:
        raise ValueError(
            f"KID needs reference features, but the statistics of {reference.source!r} have none "
            "(recompute them with keep_features > 0)"
        )
    z_dim = int(G.z_dim)
    num_classes = int(getattr(G, "num_classes", 0) or 0)
    if inception is None:
        inception = load_inception(device=device)
    inception = inception.to(device).eval()
    if "is" in metrics and not getattr(inception, "has_classifier", True):
        raise ValueError(no_is_message(inception))
    if reference is not None:
        reference.check(resolution=getattr(G, "resolution", None), extractor=inception.extractor_id)

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=gen)  # [n, z_dim]
    y = torch.randint(0, num_classes, (n,), generator=gen) if num_classes > 0 else None  # [n]

    g_device = _param_device(G, torch.device(device))
    was_training = G.training
    G.eval()
    moments = FeatureMoments()
    logits = [] if "is" in metrics else None  # [B, 1008] per batch, on the CPU
    keep_pools = "kid" in metrics or (bootstrap > 0 and "fid" in metrics)
    pools = [] if keep_pools else None  # [B, 2048] per batch, on the CPU
    try:
        bar = tqdm(total=n, desc="evaluate", unit="img", disable=not progress)
        with bar, torch.no_grad():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                yb = None if y is None else y[start:stop].to(g_device)
                images = G(z[start:stop].to(g_device), yb)  # [B, 3, R, R] in [-1, 1]
                if images.dim() != 4 or images.shape[0] != stop - start or images.shape[1] != 3:
                    raise ValueError(
                        f"G must return images [B, 3, R, R], got shape {tuple(images.shape)}"
                    )
                if reference is not None:
                    reference.check(resolution=images.shape[-1], name="reference")
                pool, lg = inception(to_uint8(images))  # [B, 2048], [B, 1008]
                if "fid" in metrics:
                    moments.update(pool)
                if logits is not None:
                    logits.append(lg.float().cpu())
                if pools is not None:
                    pools.append(pool.float().cpu())
                bar.update(stop - start)
    finally:
        G.train(was_training)

    out: dict[str, float] = {}
    if "fid" in metrics:
        mu, sigma = moments.mean_cov()
        out["fid"] = fid_from_statistics(mu, sigma, reference.mu, reference.sigma)
        warn_if_undersampled(min(n, reference.n), len(mu), out["fid"])
    if "is" in metrics:
        out["is"], out["is_std"] = inception_score(torch.cat(logits), splits=is_splits)
    if "kid" in metrics:
        ref_features = np.asarray(reference.features)
        m = min(kid_subset_size, n, len(ref_features))
        out["kid"], out["kid_std"] = kid_from_features(
            torch.cat(pools), ref_features, subsets=kid_subsets, subset_size=m
        )
    if bootstrap > 0 and pools is not None:
        out.update(_intervals(torch.cat(pools), reference, metrics, bootstrap, seed))
    return out


def _intervals(pools: Tensor, reference: ReferenceStats, metrics, n_boot: int, seed: int) -> dict:
    """``fid_ci95`` and ``kid_ci95`` ([low, high]) of the requested metrics."""
    out = {}
    if "fid" in metrics:
        out["fid_ci95"] = bootstrap_fid(pools, reference.mu, reference.sigma, n_boot, seed=seed)[
            "ci"
        ]
    if "kid" in metrics:
        kid = bootstrap_kid(pools, np.asarray(reference.features), n_boot, seed=seed)
        out["kid_ci95"] = kid["ci"]
    return out


def default_metrics(inception: InceptionV3FID) -> tuple[str, ...]:
    """FID and IS, or FID alone when the weights have no classifier (fid-helper's file)."""
    return ("fid", "is") if getattr(inception, "has_classifier", True) else ("fid",)


def compare_statistics(
    stats: ReferenceStats,
    reference: ReferenceStats,
    *,
    metrics=("fid",),
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, float]:
    """FID (from the means and covariances) and KID (from the kept features) of two sets.

    Both must be of one resolution and one extractor. KID uses subsets of
    ``min(kid_subset_size, features kept on either side)`` samples.
    """
    metrics = parse_metrics(metrics)
    if "is" in metrics:
        raise ValueError(
            "the Inception Score is a metric of generated samples (it needs the class logits, "
            "which statistics do not keep); for two image sets use fid and/or kid"
        )
    reference.check(resolution=stats.resolution, extractor=stats.extractor, name="reference")
    out: dict[str, float] = {}
    if "fid" in metrics:
        out["fid"] = fid_from_statistics(stats.mu, stats.sigma, reference.mu, reference.sigma)
        warn_if_undersampled(min(stats.n, reference.n), len(stats.mu), out["fid"])
    if "kid" in metrics:
        for side in (stats, reference):
            if side.features is None:
                raise ValueError(
                    f"KID needs kept features, but the statistics of {side.source!r} have none "
                    "(recompute them with keep_features > 0)"
                )
        m = min(kid_subset_size, len(stats.features), len(reference.features))
        out["kid"], out["kid_std"] = kid_from_features(
            np.asarray(stats.features),
            np.asarray(reference.features),
            subsets=kid_subsets,
            subset_size=m,
        )
    return out


def evaluate_images(
    source,
    resolution: int,
    *,
    reference: ReferenceStats,
    metrics=("fid",),
    n: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    inception: InceptionV3FID | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    cache: bool = True,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[dict[str, float], ReferenceStats]:
    """FID / KID of the images of ``source`` (a folder, ``.npz``, ...) against ``reference``.

    ``source`` is read with ``ylg.data.make_dataset(source, resolution)``; ``n`` picks a random
    subset (seeded by ``seed``; None = all). Its statistics go through the same disk cache as
    :func:`ylg.metrics.reference_stats`. ``reference`` comes from ``reference_stats`` of the
    other set or from a file. Returns ``({"fid": ..., "kid": ..., "kid_std": ...}, stats)``.
    """
    metrics = parse_metrics(metrics)
    if "is" in metrics:
        compare_statistics(reference, reference, metrics=metrics)  # raises the IS message
    if "kid" in metrics and reference.features is None:
        raise ValueError(
            f"KID needs reference features, but the statistics of {reference.source!r} have none "
            "(recompute them with keep_features > 0)"
        )
    reference.check(resolution=resolution, name="reference")
    if inception is not None:
        reference.check(extractor=inception.extractor_id, name="reference")
    stats = reference_stats(
        source,
        resolution,
        n=n,
        batch_size=batch_size,
        device=device,
        inception=inception,
        seed=seed,
        cache=cache,
        num_workers=num_workers,
        progress=progress,
    )
    values = compare_statistics(
        stats,
        reference,
        metrics=metrics,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
    )
    return values, stats
