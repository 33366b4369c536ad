"""``ylg data cifar10``: CIFAR-10 from the official python tarball, labels and class names.

The tarball (``cifar-10-python.tar.gz``, 163 MB, from Alex Krizhevsky's page) holds
``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5`` (the 50,000 training images),
``test_batch`` (10,000) and ``batches.meta`` (the 10 class names): Python pickles of dicts
with ``data`` = uint8 ``[10000, 3072]`` (each row the red, then green, then blue 32 x 32
plane, row-major) and ``labels`` = 10,000 ints.

The pickles are read with a restricted unpickler that only builds plain containers and numpy
arrays (no other code can run from the file). Without ``archive``, the tarball is downloaded
once from :data:`URL` into the cache and its MD5 checked against :data:`MD5`; a given
``archive`` whose MD5 differs from the official one is used with a warning (the
summary says so).
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ylg.data.items import Item, Source
from ylg.data.sources import default_cache_dir
from ylg.runtime.files import atomic_path, file_digest

__all__ = ["MD5", "SPLITS", "URL", "cifar10_source", "download_cifar10", "read_cifar10"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
SPLITS = ("train", "test", "all")
_FOLDER = "cifar-10-batches-py"
_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_TEST = ["test_batch"]

# The only globals the official pickles need (numpy arrays are pickled through these;
# protocol-2 pickles written by Python 3 also build bytes with _codecs.encode).
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a CIFAR-10 batch (only plain data and "
            "numpy arrays are allowed)"
        )


def _load_batch(data: bytes, name: str) -> dict:
    try:
        batch = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{name} is not a CIFAR-10 python batch: {err}") from err
    if not isinstance(batch, dict):
        raise ValueError(f"{name} is not a CIFAR-10 python batch (a {type(batch).__name__})")
    # Python 2 pickles: bytes keys; normalise to str
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def download_cifar10(cache_dir: str | os.PathLike, progress: bool = True) -> Path:
    """The official tarball in ``CACHE/cifar10/``, downloaded from :data:`URL` if missing.

    The download goes to a temporary name and is renamed only once its MD5 is right.

    Raises:
        ValueError: the downloaded (or cached) file's MD5 is not :data:`MD5`.
    """
    from tqdm.auto import tqdm

    folder = Path(cache_dir) / "cifar10"
    path = folder / "cifar-10-python.tar.gz"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with urllib.request.urlopen(URL, timeout=60) as response, open(tmp, "wb") as f:
                size = int(response.headers.get("Content-Length", 0)) or None
                with tqdm(
                    total=size, unit="B", unit_scale=True, desc="cifar-10", disable=not progress
                ) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        f.write(block)
                        bar.update(len(block))
            digest = file_digest(tmp, "md5")
            if digest != MD5:
                raise ValueError(f"downloaded {URL} has MD5 {digest}, expected {MD5}")
    digest = file_digest(path, "md5")
    if digest != MD5:
        raise ValueError(f"{path} has MD5 {digest}, expected {MD5} (delete it to download again)")
    return path


def read_cifar10(archive: str | os.PathLike, split: str = "train"):
    """``(images uint8 [N, 32, 32, 3], labels int64 [N], class names)`` of ``split``.

    Raises:
        FileNotFoundError: ``archive`` does not exist.
        ValueError: a bad ``split``, or the archive is not the official python tarball.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    archive = Path(archive)
    if not archive.exists():
        raise FileNotFoundError(f"CIFAR-10 archive {str(archive)!r} does not exist")
    wanted = {"train": _TRAIN, "test": _TEST, "all": _TRAIN + _TEST}[split]
    members = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in [*wanted, "batches.meta"]:
                    members[base] = tar.extractfile(member).read()
    except tarfile.TarError as err:
        raise ValueError(f"cannot read CIFAR-10 archive {str(archive)!r}: {err}") from err
    missing = [n for n in [*wanted, "batches.meta"] if n not in members]
    if missing:
        raise ValueError(
            f"{str(archive)!r} is not the CIFAR-10 python tarball: {_FOLDER}/{missing[0]} "
            f"is missing (get it from {URL})"
        )
    meta = _load_batch(members["batches.meta"], "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    images, labels = [], []
    for name in wanted:
        batch = _load_batch(members[name], name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{name}: data has shape {data.shape}, expected [N, 3072]")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # [N, 32, 32, 3]
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels), names


def _items(images: np.ndarray, labels: np.ndarray) -> Iterator[Item]:
    for i, (pixels, label) in enumerate(zip(images, labels)):
        yield Item(f"#{i}", lambda pixels=pixels: Image.fromarray(pixels, "RGB"), int(label))


def cifar10_source(
    archive: str | os.PathLike | None = None,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Source:
    """CIFAR-10 ``split`` as items with its 10 class names (``airplane`` ... ``truck``).

    Args:
        archive: the official ``cifar-10-python.tar.gz``; ``None`` downloads it into
            ``cache_dir`` (MD5-checked).
        split: ``"train"`` (50,000), ``"test"`` (10,000) or ``"all"``.
        cache_dir: for the download, in its ``cifar10/`` (default: ``$YLG_CACHE``, else
            ``~/.cache/ylg``; :func:`ylg.runtime.cache.cache_dir`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if archive is None:
        archive = download_cifar10(cache_dir or default_cache_dir(), progress=progress)
    elif Path(archive).exists() and file_digest(archive, "md5") != MD5:
        warnings.warn(
            f"{archive} is not the official CIFAR-10 tarball (MD5 differs from {MD5}); "
            "reading it anyway",
            stacklevel=2,
        )
    images, labels, names = read_cifar10(archive, split)
    return Source(items=_items(images, labels), total=len(images), class_names=names)
