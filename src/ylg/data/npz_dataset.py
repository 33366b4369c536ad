"""Images stored as a uint8 array in an ``.npz`` file, with optional labels.

Accepted contents (``np.savez`` / ``np.savez_compressed``, no pickled objects):

- images under ``images`` (or ``x``, ``data``, ``arr_0``): ``uint8`` of shape ``[N, H, W, C]``
  (channels last, C in 1, 3, 4), ``[N, C, H, W]`` (channels first) or ``[N, H, W]``
  (grayscale). Any ``H x W``: items get the same centre crop and antialiased resize as files.
- labels, optional, under ``labels`` (or ``y``, ``targets``, ``arr_1``): integers ``[N]`` (or
  ``[N, 1]``), all ``>= 0``.
- ``num_classes``, optional scalar: otherwise ``len(class_names)`` if stored, else
  ``max(labels) + 1``.
- ``class_names``, optional str ``[C]``: the name of each label (what ``ylg data`` writes);
  ``styles`` int ``[N]`` and ``style_names`` str ``[S]``, optional: a second field (the
  emoji dataset's artwork style). Exposed as attributes, not yielded.

The arrays are read into memory once; the dataset pickles with them for worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ylg.data.images import pil_to_tensor, uint8_to_tensor

__all__ = ["NpzDataset"]

IMAGE_KEYS = ("images", "x", "data", "arr_0")
LABEL_KEYS = ("labels", "y", "targets", "arr_1")


def _channels_last(images: np.ndarray, path: str) -> np.ndarray:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` -> ``[N, H, W, C]`` (a view)."""
    if images.ndim == 3:
        return images[..., None]  # [N, H, W, 1]
    if images.ndim == 4:
        if images.shape[-1] in (1, 3, 4):
            return images
        if images.shape[1] in (1, 3, 4):
            return images.transpose(0, 2, 3, 1)  # [N, C, H, W] -> [N, H, W, C]
    raise ValueError(
        f"images in {path!r} have shape {tuple(images.shape)}; expected [N, H, W], "
        "[N, H, W, C] or [N, C, H, W] with C in (1, 3, 4)"
    )


class NpzDataset(Dataset):
    """An ``.npz`` of uint8 images as ``(float32 [3, R, R] in [-1, 1], int label)`` items.

    Args:
        path: the ``.npz`` file (see the module docstring for its contents).
        resolution: output side ``R``.
        num_classes: if given, every label must be below it (``ValueError`` otherwise) and it
            becomes ``self.num_classes``; ``0`` ignores stored labels.

    Attributes:
        images: ``uint8 [N, H, W, C]`` array.
        labels: ``int64 [N]`` array (zeros when unlabeled).
        num_classes: number of classes, 0 when the file has no labels.
        class_names: ``list[str]`` stored under ``class_names``, or ``None``.
        styles: ``int64 [N]`` stored under ``styles``, or ``None``.
        style_names: ``list[str]`` stored under ``style_names``, or ``None``.
    """

    def __init__(
        self, path: str | os.PathLike, resolution: int, *, num_classes: int | None = None
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"npz file {str(path)!r} does not exist")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        self.path = str(path)
        self.resolution = resolution
        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read npz file {self.path!r}: {err}") from err
        with archive:
            keys = list(archive.keys())
            image_key = next((k for k in IMAGE_KEYS if k in keys), None)
            if image_key is None:
                raise ValueError(
                    f"npz file {self.path!r} has no image array: keys are {keys}, expected "
                    f"one of {list(IMAGE_KEYS)}"
                )
            images = archive[image_key]
            label_key = next((k for k in LABEL_KEYS if k in keys and k != image_key), None)
            labels = archive[label_key] if label_key is not None else None
            stored_classes = archive["num_classes"] if "num_classes" in keys else None
            class_names = archive["class_names"] if "class_names" in keys else None
            styles = archive["styles"] if "styles" in keys else None
            style_names = archive["style_names"] if "style_names" in keys else None

        if images.dtype != np.uint8:
            raise ValueError(
                f"images in {self.path!r} have dtype {images.dtype}; expected uint8 in [0, 255]"
            )
        self.images = _channels_last(images, self.path)
        n = len(self.images)
        if n == 0:
            raise ValueError(f"npz file {self.path!r} contains no images")

        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0
        ):
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.style_names = [str(c) for c in style_names] if style_names is not None else None
        self.styles = None
        if styles is not None:
            self.styles = np.asarray(styles).astype(np.int64)
            if self.styles.shape != (n,):
                raise ValueError(
                    f"styles in {self.path!r} have shape {tuple(self.styles.shape)}; expected "
                    f"[{n}] (one per image)"
                )
        if num_classes is None and stored_classes is not None:
            num_classes = int(stored_classes)
        elif num_classes is None and self.class_names and labels is not None:
            num_classes = len(self.class_names)
        if labels is None or num_classes == 0:
            self.labels = np.zeros(n, dtype=np.int64)
            if num_classes:
                raise ValueError(
                    f"num_classes={num_classes} but npz file {self.path!r} has no labels "
                    f"(store them under one of {list(LABEL_KEYS)})"
                )
            self.num_classes = 0
            self.class_names = None
        else:
            self.labels = self._check_labels(labels, n, num_classes)
            self.num_classes = (
                int(self.labels.max()) + 1 if num_classes is None else int(num_classes)
            )

    def _check_labels(self, labels: np.ndarray, n: int, num_classes: int | None) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != (n,):
            raise ValueError(
                f"labels in {self.path!r} have shape {tuple(labels.shape)}; expected [{n}] "
                "(one per image)"
            )
        integral = np.issubdtype(labels.dtype, np.integer) or (
            np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels))
        )
        if not integral:
            raise ValueError(
                f"labels in {self.path!r} have dtype {labels.dtype}; expected integers"
            )
        labels = labels.astype(np.int64)
        bad = np.flatnonzero(labels < 0)
        if bad.size:
            raise ValueError(
                f"label index out of range in {self.path!r}: label {labels[bad[0]]} at "
                f"index {bad[0]} is negative ({bad.size} negative labels)"
            )
        if num_classes is not None:
            bad = np.flatnonzero(labels >= num_classes)
            if bad.size:
                raise ValueError(
                    f"label index out of range in {self.path!r}: label {labels[bad[0]]} at "
                    f"index {bad[0]} is >= num_classes={num_classes} ({bad.size} such labels)"
                )
        return labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        array = self.images[index]  # [H, W, C] uint8
        height, width, channels = array.shape
        if channels == 3 and height == width == self.resolution:
            image = uint8_to_tensor(array)
        else:
            # fromarray picks L / RGB / RGBA from the shape; pil_to_tensor converts to RGB.
            pixels = np.ascontiguousarray(array[..., 0] if channels == 1 else array)
            image = pil_to_tensor(Image.fromarray(pixels), self.resolution)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, resolution={self.resolution}, "
            f"n={len(self)}, num_classes={self.num_classes})"
        )
