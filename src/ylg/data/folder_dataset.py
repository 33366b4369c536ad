"""A folder of image files: class subfolders become labels, a flat folder is unlabeled.

Layout rules (decided once, at construction):

- If any non-hidden subfolder of ``root`` contains image files (searched recursively), the
  folder is **labeled**: each such subfolder is a class, classes are sorted by name and
  numbered from 0 (ImageNet's ``train/n01440764/...`` layout). Images lying directly in
  ``root`` are then ignored, with a warning.
- Otherwise the images directly in ``root`` form an **unlabeled** dataset (label 0,
  ``num_classes == 0``).

Every file is checked when the dataset is built (:func:`ylg.data.images.verify_image`), so
unreadable or truncated files are skipped and reported in one warning (count + first paths)
before training starts, and a folder without images is a ``ValueError``. A file that still
fails to decode later (formats whose header check cannot see the damage) is replaced by the
next readable item, with a warning naming it.
"""

from __future__ import annotations

import operator
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ylg.data.images import IMAGE_EXTENSIONS, is_image_file, load_image, verify_image

__all__ = ["ImageFolderDataset", "find_images"]

_SHOW_PATHS = 5  # bad paths named in a warning
_PROGRESS_ABOVE = 2000  # show a progress bar when checking more files than this


def _visible(name: str) -> bool:
    return not name.startswith(".")


def find_images(folder: str | os.PathLike, recursive: bool = True) -> list[str]:
    """Sorted paths of the image files under ``folder`` (hidden files and folders skipped)."""
    folder = str(folder)
    if not recursive:
        with os.scandir(folder) as entries:
            found = [
                e.path
                for e in entries
                if e.is_file() and _visible(e.name) and is_image_file(e.name)
            ]
        return sorted(found)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        found.extend(
            os.path.join(dirpath, f) for f in filenames if _visible(f) and is_image_file(f)
        )
    return sorted(found)


def scan_folder(root: str | os.PathLike) -> tuple[list[str], list[int], list[str], int]:
    """The images of an image folder: ``(files, labels, class_names, ignored)``.

    Non-empty visible subfolders are classes (sorted; label = index) and images directly in
    ``root`` are then ignored (their count is ``ignored``); without subfolders the folder is
    flat: every image has label 0 and ``class_names`` is empty.

    Raises:
        FileNotFoundError / NotADirectoryError: ``root`` is missing or not a folder.
        ValueError: no image files.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {str(root)!r} is not a directory")
    with os.scandir(root) as entries:
        subdirs = sorted(e.name for e in entries if e.is_dir() and _visible(e.name))
    per_class = {d: find_images(root / d) for d in subdirs}
    classes = [d for d in subdirs if per_class[d]]
    top_level = find_images(root, recursive=False)
    if classes:
        files = [p for d in classes for p in per_class[d]]
        labels = [i for i, d in enumerate(classes) for _ in per_class[d]]
        ignored = len(top_level)
    else:
        files, labels, ignored = top_level, [0] * len(top_level), 0
    if not files:
        raise ValueError(
            f"no images found in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)} "
            "directly inside it or in class subfolders)"
        )
    return files, labels, classes, ignored


def _verify_all(paths: list[str], full: bool) -> list[str | None]:
    """``verify_image`` over many files, in threads (PIL and file reads release the GIL)."""
    if not paths:
        return []
    from tqdm.auto import tqdm

    workers = min(8, os.cpu_count() or 1, max(1, len(paths) // 64))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: verify_image(p, full=full), paths)
        return list(
            tqdm(
                results,
                total=len(paths),
                desc="checking images",
                unit="img",
                disable=len(paths) <= _PROGRESS_ABOVE,
                leave=False,
            )
        )


class ImageFolderDataset(Dataset):
    """Images under ``root`` as ``(float32 [3, R, R] in [-1, 1], int label)`` items.

    Args:
        root: the folder (class subfolders, or flat; see the module docstring).
        resolution: output side ``R`` (largest centred square, antialiased resize).
        num_classes: if given, labels must be below it (``ValueError`` otherwise) and it
            becomes ``self.num_classes`` (a model may have more classes than the folder);
            ``0`` treats a labeled folder as unlabeled.
        full_check: decode every file at construction instead of the cheap header check.

    Attributes:
        files: image paths (``str``), in sorted order.
        labels: ``int64 [N]`` numpy array of labels (zeros when unlabeled).
        classes: class folder names, index = label (empty when unlabeled).
        class_names: the same as a list, or ``None`` when unlabeled (the attribute every
            dataset has).
        num_classes: number of classes, 0 when unlabeled.
        skipped: ``(path, reason)`` of every file skipped at construction.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int,
        *,
        num_classes: int | None = None,
        full_check: bool = False,
    ) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        self.root = str(root)
        self.resolution = resolution

        # ---- Layout: class subfolders or flat.
        files, labels, classes, ignored = scan_folder(root)
        if ignored:
            warnings.warn(
                f"image folder {self.root!r} has class subfolders; ignoring the "
                f"{ignored} image(s) directly inside it",
                stacklevel=2,
            )

        # ---- Labels against the requested number of classes.
        if num_classes is not None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, int):
                raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
            if num_classes < 0:
                raise ValueError(f"num_classes must be an int >= 0, got {num_classes}")
            if num_classes == 0:
                classes, labels = [], [0] * len(files)
            elif not classes:
                raise ValueError(
                    f"num_classes={num_classes} but {self.root!r} is a flat folder without "
                    "class subfolders (use num_classes=0 or None)"
                )
            elif num_classes < len(classes):
                raise ValueError(
                    f"label index out of range: {self.root!r} has {len(classes)} class "
                    f"subfolders but num_classes={num_classes}"
                )
        self.classes = classes
        self.class_names = list(classes) or None
        self.num_classes = len(classes) if num_classes is None else num_classes

        # ---- Skip unreadable files, with one warning.
        reasons = _verify_all(files, full_check)
        self.skipped = [(p, r) for p, r in zip(files, reasons) if r is not None]
        keep = [r is None for r in reasons]
        self.files = [p for p, k in zip(files, keep) if k]
        self.labels = np.asarray([c for c, k in zip(labels, keep) if k], dtype=np.int64)
        if self.skipped:
            shown = "; ".join(f"{p} ({r})" for p, r in self.skipped[:_SHOW_PATHS])
            more = ", ..." if len(self.skipped) > _SHOW_PATHS else ""
            warnings.warn(
                f"skipped {len(self.skipped)} unreadable image file(s) of {len(files)} in "
                f"{self.root!r}: {shown}{more}",
                stacklevel=2,
            )
        if not self.files:
            raise ValueError(f"none of the {len(files)} image files in {self.root!r} is readable")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index, n = operator.index(index), len(self.files)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        for offset in range(n):
            i = (index + offset) % n
            try:
                return load_image(self.files[i], self.resolution), int(self.labels[i])
            except ValueError as err:
                # Damage the header check could not see: fall back to the next file so that
                # one bad file does not stop a training run.
                warnings.warn(f"{err}; using the next image instead", stacklevel=2)
        raise ValueError(f"no image in {self.root!r} could be decoded")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root!r}, resolution={self.resolution}, "
            f"n={len(self)}, num_classes={self.num_classes}, skipped={len(self.skipped)})"
        )
