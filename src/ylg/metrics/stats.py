"""Reference statistics of a dataset: computed once, saved as .npz, cached on disk.

A :class:`ReferenceStats` holds what FID needs of the real images (float64 mean and
covariance of the Inception pool features), a random subset of the features themselves (for
KID), and what makes them comparable: the sample count, the image resolution, the feature
extractor (network + weight-file hash) and a description of the source. Loading checks them:
statistics of another resolution or extractor raise an error instead of giving a wrong FID.

The on-disk cache (``$YLG_CACHE/stats``, default ``~/.cache/ylg/stats``) is keyed by a hash of
the source's file listing (paths, sizes, mtimes), the resolution, the sample count, the seed,
the number of kept features and the extractor id, so no change of any of them reuses a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ylg.data import make_dataset
from ylg.metrics.features import FeatureMoments
from ylg.metrics.inception import InceptionV3FID
from ylg.metrics.quantize import to_uint8
from ylg.metrics.weights import extractor_id, load_inception, resolve_weights
from ylg.runtime.cache import cache_dir as runtime_cache_dir
from ylg.runtime.files import atomic_path

FORMAT = "ylg-reference-stats-v1"
WHAT_A_REFERENCE_IS = (
    "a reference is the .npz that `ylg stats DATA --resolution R --out FILE` writes (the "
    "Inception feature mean, covariance and a feature sample of real images); to compare "
    "against images directly, give them with --data"
)
KEEP_FEATURES = 5000


@dataclasses.dataclass
class ReferenceStats:
    """Statistics of a set of real images.

    ``mu`` [D] and ``sigma`` [D, D] float64; ``features`` [K, D] float32 (a random subset,
    for KID) or None; ``n`` images; ``resolution`` R of the [3, R, R] images; ``extractor`` the
    feature network's id; ``source`` a human-readable description of the data.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    resolution: int
    extractor: str
    source: str = ""
    features: np.ndarray | None = None

    def save(self, path: str | os.PathLike) -> Path:
        """Write an .npz (atomically: a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format": np.array(FORMAT),
            "mu": np.asarray(self.mu, np.float64),
            "sigma": np.asarray(self.sigma, np.float64),
            "n": np.array(int(self.n)),
            "resolution": np.array(int(self.resolution)),
            "extractor": np.array(self.extractor),
            "source": np.array(self.source),
        }
        if self.features is not None:
            arrays["features"] = np.asarray(self.features, np.float32)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        resolution: int | None = None,
        extractor: str | None = None,
    ) -> ReferenceStats:
        """Read a file written by :meth:`save`; check ``resolution``/``extractor`` if given."""
        path = Path(path)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "not found"
            raise FileNotFoundError(
                f"reference statistics file {str(path)!r}: {what}; {WHAT_A_REFERENCE_IS}"
            )
        if not zipfile.is_zipfile(path):  # .npz files are zip archives; np.load would talk pickles
            raise ValueError(
                f"{str(path)!r} is not a reference statistics file; {WHAT_A_REFERENCE_IS}"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ValueError(f"cannot read reference statistics {str(path)!r}: {first}") from None
        if str(data.get("format", "")) != FORMAT:
            looks_like_images = any(k in data for k in ("images", "x", "data", "arr_0"))
            hint = " (it holds images: give it with --data)" if looks_like_images else ""
            raise ValueError(
                f"{str(path)!r} is not a ylg reference statistics file (format "
                f"{str(data.get('format', 'missing'))!r}, expected {FORMAT!r}){hint}; "
                f"{WHAT_A_REFERENCE_IS}"
            )
        stats = cls(
            mu=data["mu"],
            sigma=data["sigma"],
            n=int(data["n"]),
            resolution=int(data["resolution"]),
            extractor=str(data["extractor"]),
            source=str(data["source"]),
            features=data.get("features"),
        )
        stats.check(resolution=resolution, extractor=extractor, name=str(path))
        return stats

    def check(
        self,
        *,
        resolution: int | None = None,
        extractor: str | None = None,
        name: str = "reference",
    ) -> None:
        """Raise ValueError if these statistics are not for ``resolution`` / ``extractor``."""
        if resolution is not None and int(resolution) != self.resolution:
            raise ValueError(
                f"statistics {name} are of {self.resolution}x{self.resolution} images, but the "
                f"images to compare are {resolution}x{resolution}; compute statistics at that "
                f"resolution (`ylg stats DATA --resolution {resolution}`)"
            )
        if extractor is not None and extractor != self.extractor:
            raise ValueError(
                f"statistics {name} were made with feature extractor {self.extractor!r}, not the "
                f"loaded {extractor!r}; recompute them with these Inception weights"
            )

    def summary(self) -> dict:
        return {
            "source": self.source,
            "n": self.n,
            "resolution": self.resolution,
            "extractor": self.extractor,
            "kid_features": 0 if self.features is None else int(len(self.features)),
        }


def _image_of(item) -> torch.Tensor:
    return item[0] if isinstance(item, (tuple, list)) else item


def _collate_images(items) -> torch.Tensor:
    return torch.stack([_image_of(item) for item in items])


def compute_reference_stats(
    dataset: Dataset,
    *,
    n: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    inception: InceptionV3FID | None = None,
    seed: int = 0,
    keep_features: int = KEEP_FEATURES,
    source: str = "",
    num_workers: int = 0,
    progress: bool = True,
) -> ReferenceStats:
    """Inception statistics of a dataset of ``(image [3, R, R] in [-1, 1], label)`` items.

    ``n``: use a random subset (seeded by ``seed``) of that many images; None = all.
    Images are quantised to uint8 as a saved PNG would be (:func:`ylg.metrics.to_uint8`).
    ``keep_features`` random rows of the features are kept for KID.
    """
    total = len(dataset)
    if n is None:
        n = total
    if int(n) != n or not 2 <= n <= total:
        raise ValueError(f"n must be an integer in [2, {total}] (the dataset size), got {n!r}")
    n = int(n)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if keep_features < 0:
        raise ValueError(f"keep_features must be >= 0, got {keep_features!r}")
    if inception is None:
        inception = load_inception(device=device)
    inception = inception.to(device).eval()

    gen = torch.Generator().manual_seed(seed)
    if n < total:
        dataset = Subset(dataset, torch.randperm(total, generator=gen)[:n].tolist())
    # Rows kept for KID: a random subset, so that a class-sorted dataset is not cut by class.
    k = min(keep_features, n)
    slot = torch.full((n,), -1, dtype=torch.long)
    slot[torch.randperm(n, generator=gen)[:k]] = torch.arange(k)
    kept = None  # [k, D] float32, allocated once D is known

    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=_collate_images,
    )  # fmt: skip
    moments = FeatureMoments()
    resolution = None
    pos = 0
    bar = tqdm(total=n, desc="reference stats", unit="img", disable=not progress)
    with bar, torch.no_grad():
        for images in loader:  # [B, 3, R, R] float in [-1, 1]
            if images.dim() != 4 or images.shape[2] != images.shape[3]:
                raise ValueError(f"dataset images must be [3, R, R], got {tuple(images.shape[1:])}")
            if resolution is None:
                resolution = int(images.shape[-1])
            pool, _ = inception(to_uint8(images))  # [B, 2048]
            moments.update(pool)
            if kept is None:
                kept = torch.zeros(k, pool.shape[1], dtype=torch.float32)
            sel = slot[pos : pos + len(pool)]  # [B], -1 = not kept
            kept[sel[sel >= 0]] = pool.float().cpu()[sel >= 0]
            pos += len(pool)
            bar.update(len(pool))
    mu, sigma = moments.mean_cov()
    if n < len(mu):
        warnings.warn(
            f"reference statistics from {n} images, fewer than the feature dimension "
            f"{len(mu)}: the covariance is singular and FID against them is biased",
            stacklevel=2,
        )
    return ReferenceStats(
        mu=mu,
        sigma=sigma,
        n=n,
        resolution=resolution,
        extractor=inception.extractor_id,
        source=source,
        features=kept.numpy() if k else None,
    )


# --- the disk cache ------------------------------------------------------------------------


def cache_dir() -> Path:
    """``stats/`` in the cache folder (:func:`ylg.runtime.cache.cache_dir`)."""
    return runtime_cache_dir("stats")


def source_fingerprint(source: str | os.PathLike | None) -> str:
    """Identity of a data source: the built-in set, or the paths, sizes and mtimes of its files."""
    if source is None:
        return "builtin"
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"data source {str(source)!r} not found")
    h = hashlib.sha256(str(path).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"\n{f.relative_to(path.parent)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return f"{path}#{h.hexdigest()[:16]}"


def cache_key(
    source: str | os.PathLike | None,
    resolution: int,
    *,
    n: int | None,
    seed: int,
    keep_features: int,
    extractor: str,
) -> str:
    fields = {
        "format": FORMAT,
        "source": source_fingerprint(source),
        "resolution": int(resolution),
        "n": n,
        "seed": seed,
        "keep_features": keep_features,
        "extractor": extractor,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def reference_stats(
    source: str | os.PathLike | None,
    resolution: int,
    *,
    n: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    inception: InceptionV3FID | None = None,
    weights: str | os.PathLike | None = None,
    seed: int = 0,
    keep_features: int = KEEP_FEATURES,
    cache: bool = True,
    num_workers: int = 0,
    progress: bool = True,
) -> ReferenceStats:
    """Statistics of ``ylg.data.make_dataset(source, resolution)``, from the disk cache if there.

    ``source=None`` is the built-in procedural dataset. ``weights`` (or ``inception``) picks the
    Inception weights; the cache key includes their hash.
    """
    ext = (
        inception.extractor_id if inception is not None else extractor_id(resolve_weights(weights))
    )
    key = cache_key(source, resolution, n=n, seed=seed, keep_features=keep_features, extractor=ext)
    path = cache_dir() / f"{key}.npz"
    if cache and path.is_file():
        return ReferenceStats.load(path, resolution=resolution, extractor=ext)

    dataset = make_dataset(source, resolution, seed=seed)
    if inception is None:
        inception = load_inception(weights, device=device)
    name = (
        "built-in procedural dataset"
        if source is None
        else str(Path(source).expanduser().resolve())
    )
    stats = compute_reference_stats(
        dataset,
        n=n,
        batch_size=batch_size,
        device=device,
        inception=inception,
        seed=seed,
        keep_features=keep_features,
        source=name,
        num_workers=num_workers,
        progress=progress,
    )
    if cache:
        stats.save(path)
    return stats
