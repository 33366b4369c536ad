"""Datasets for training: an image folder, an ``.npz`` of images, or built-in shape scenes.

Every dataset yields ``(image, label)`` with ``image`` a ``float32 [3, R, R]`` tensor in
``[-1, 1]`` (largest centred square, antialiased resize) and ``label`` an int (collated to
``int64``), and has the attributes ``num_classes`` (0 = unlabeled, labels all 0) and
``class_names`` (``list[str]``, index = label, or ``None``; see :func:`class_names_of`).
:func:`make_dataset` picks the dataset from a source; the trainer builds its ``DataLoader``
(workers, sampler, seeded order) on top. All datasets are picklable for worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from ylg.data.folder_dataset import ImageFolderDataset, find_images
from ylg.data.images import IMAGE_EXTENSIONS, load_image, verify_image
from ylg.data.npz_dataset import NpzDataset
from ylg.data.shapes import SHAPE_NAMES, ShapesDataset
from ylg.data.zip_dataset import ZipDataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "SHAPE_NAMES",
    "ImageFolderDataset",
    "NpzDataset",
    "ShapesDataset",
    "ZipDataset",
    "class_names_of",
    "find_images",
    "load_image",
    "make_dataset",
    "verify_image",
]


def class_names_of(dataset) -> list[str] | None:
    """The class names of ``dataset`` (index = label), or ``None`` when it has none.

    Reads ``dataset.class_names``; for :class:`ShapesDataset` built directly (not through
    :func:`make_dataset`) they are the first ``num_classes`` of :data:`SHAPE_NAMES`. A
    dataset that is unlabeled (``num_classes == 0``) has none.
    """
    if int(getattr(dataset, "num_classes", 0) or 0) == 0:
        return None
    names = getattr(dataset, "class_names", None)
    if names is None and isinstance(dataset, ShapesDataset):
        names = SHAPE_NAMES[: dataset.num_classes]
    return [str(n) for n in names] if names is not None else None


def make_dataset(
    source: str | os.PathLike | None,
    resolution: int,
    *,
    seed: int = 0,
    num_classes: int | None = None,
    style: str = "scenes",
) -> Dataset:
    """The dataset for ``source``, yielding ``(float32 [3, R, R] in [-1, 1], int label)``.

    Args:
        source: ``None`` for the built-in procedural shapes (:class:`ShapesDataset`, 10
            classes, 10,000 scenes, no download); a directory for :class:`ImageFolderDataset`
            (class subfolders = labels, or flat = unlabeled); a ``.npz`` file for
            :class:`NpzDataset`; a ``.zip`` for :class:`ZipDataset`.
        resolution: output side ``R``.
        seed: selects the built-in scenes (file datasets have a fixed, sorted order; their
            shuffling is the sampler's job).
        num_classes: optional: the number of classes the model will have. Labels must be below
            it (``ValueError`` before training otherwise), ``0`` ignores labels; for the
            built-in dataset it picks how many shape kinds are classes.
        style: the built-in dataset's style (``"scenes"`` or ``"simple"``, see
            :class:`ShapesDataset`); ignored for file sources.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: a file that is neither a folder, ``.npz`` nor ``.zip``, no images, labels out of
            range, or a bad ``resolution``.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    if source is None:
        shapes = ShapesDataset(
            resolution,
            seed=seed,
            num_classes=10 if num_classes is None else num_classes,
            style=style,
        )
        shapes.class_names = class_names_of(shapes)
        return shapes
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"data source {str(path)!r} does not exist (give an image folder, a .npz or .zip "
            "file, or no source for the built-in shapes)"
        )
    if path.is_dir():
        return ImageFolderDataset(path, resolution, num_classes=num_classes)
    if path.suffix.lower() == ".npz":
        return NpzDataset(path, resolution, num_classes=num_classes)
    if path.suffix.lower() == ".zip":
        return ZipDataset(path, resolution, num_classes=num_classes)
    raise ValueError(
        f"data source {str(path)!r} is a file but not a .npz or .zip; expected an image "
        "folder, a .npz of uint8 images or a .zip of image files (see `ylg data`)"
    )
