"""Images stored as files in a ``.zip`` (what ``ylg data ... --out X.zip`` writes).

Layout (StyleGAN's dataset zip, plus names):

- image files anywhere in the archive (:data:`~ylg.data.images.IMAGE_EXTENSIONS`, hidden
  and ``__MACOSX`` entries skipped), decoded on access, so the archive can be far larger
  than memory;
- optional ``dataset.json`` at the top: ``{"labels": [[file, label], ...] or null,
  "class_names": [...], "styles": [...], "style_names": [...]}`` (unlabeled: ``"labels":
  null`` and optionally ``"files": [...]``). With it, the items are the files it lists, in
  its order; without a list, every image file in sorted name order, unlabeled.

Every item goes through the same conversion as files and ``.npz`` arrays
(:func:`ylg.data.images.pil_to_tensor`), so a ``.zip`` and an ``.npz`` of the same pixels
give identical tensors. The archive is opened lazily in each process (worker processes get
their own handle when the dataset is unpickled).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ylg.data.images import is_image_file, pil_to_tensor

__all__ = ["ZipDataset"]


def _visible_member(name: str) -> bool:
    parts = name.split("/")
    return not any(p.startswith(".") or p == "__MACOSX" for p in parts)


class ZipDataset(Dataset):
    """A ``.zip`` of image files as ``(float32 [3, R, R] in [-1, 1], int label)`` items.

    Args:
        path: the archive (see the module docstring for its layout).
        resolution: output side ``R`` (same crop and resize as image folders).
        num_classes: if given, every label must be below it (``ValueError`` otherwise) and
            it becomes ``self.num_classes``; ``0`` ignores stored labels.

    Attributes:
        files: member names, index = item.
        labels: ``int64 [N]`` (zeros when unlabeled).
        num_classes: number of classes, 0 when unlabeled.
        class_names: ``list[str]`` from ``dataset.json``, or ``None``.
        styles: ``int64 [N]`` or ``None``; style_names: ``list[str]`` or ``None``.
    """

    def __init__(
        self, path: str | os.PathLike, resolution: int, *, num_classes: int | None = None
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"zip file {str(path)!r} does not exist")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0
        ):
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        self.path = str(path)
        self.resolution = resolution
        self._zip: zipfile.ZipFile | None = None
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                info = json.loads(archive.read("dataset.json")) if "dataset.json" in names else {}
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"cannot read zip file {self.path!r}: {err}") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"dataset.json in {self.path!r} is not valid JSON: {err}") from err

        try:
            files, labels = _listed_files(info, names)
        except (TypeError, AttributeError, IndexError, KeyError, ValueError) as err:
            raise ValueError(
                f"dataset.json in {self.path!r} is malformed ({type(err).__name__}: {err}); "
                'expected {"labels": [[file, label], ...] or null, "class_names": [...]}'
            ) from None
        missing = [f for f in files if f not in names]
        if missing:
            raise ValueError(
                f"dataset.json in {self.path!r} lists {len(missing)} file(s) that are not "
                f"in the archive, e.g. {missing[0]!r}"
            )
        if not files:
            raise ValueError(f"zip file {self.path!r} contains no images")
        self.files = files
        n = len(files)

        try:
            class_names = info.get("class_names")
            self.class_names = [str(c) for c in class_names] if class_names else None
            style_names = info.get("style_names")
            self.style_names = [str(s) for s in style_names] if style_names else None
            styles = info.get("styles")
            self.styles = np.asarray(styles, dtype=np.int64) if styles is not None else None
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"dataset.json in {self.path!r} is malformed ({type(err).__name__}: {err})"
            ) from None
        if self.styles is not None and self.styles.shape != (n,):
            raise ValueError(
                f"dataset.json in {self.path!r} has {len(self.styles)} styles for {n} images"
            )

        if labels is None or num_classes == 0:
            if num_classes:
                raise ValueError(
                    f"num_classes={num_classes} but zip file {self.path!r} has no labels "
                    "(dataset.json with a 'labels' list)"
                )
            self.labels = np.zeros(n, dtype=np.int64)
            self.num_classes = 0
            if num_classes == 0:
                self.class_names = None
            return
        bad = np.flatnonzero(labels < 0)
        if bad.size:
            raise ValueError(
                f"label index out of range in {self.path!r}: label {labels[bad[0]]} of "
                f"{files[bad[0]]!r} is negative"
            )
        stored = len(self.class_names) if self.class_names else int(labels.max()) + 1
        limit = stored if num_classes is None else num_classes
        bad = np.flatnonzero(labels >= limit)
        if bad.size:
            raise ValueError(
                f"label index out of range in {self.path!r}: label {labels[bad[0]]} of "
                f"{files[bad[0]]!r} is >= num_classes={limit} ({bad.size} such labels)"
            )
        self.labels = labels
        self.num_classes = limit

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"] = None  # each process opens its own handle
        return state

    def __len__(self) -> int:
        return len(self.files)

    def read_image(self, index: int) -> Image.Image:
        """The decoded PIL image of item ``index`` (any mode, native size)."""
        data = self._archive().read(self.files[index])
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ValueError(f"cannot read {self.files[index]!r} in {self.path!r}: {err}") from err
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return pil_to_tensor(self.read_image(index), self.resolution), int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, resolution={self.resolution}, "
            f"n={len(self)}, num_classes={self.num_classes})"
        )


def _listed_files(info, names: set[str]) -> tuple[list[str], np.ndarray | None]:
    """The image files (and labels, or None) that ``dataset.json`` lists, else every visible
    image of the archive; raises TypeError / ValueError / ... on a malformed file."""
    if not isinstance(info, dict):
        raise TypeError(f"the top level is a {type(info).__name__}, not an object")
    listed = info.get("labels")
    if listed is not None:
        files = [str(entry[0]) for entry in listed]
        return files, np.asarray([int(entry[1]) for entry in listed], dtype=np.int64)
    listed_files = info.get("files")
    if listed_files is not None:
        return [str(f) for f in listed_files], None
    return sorted(n for n in names if is_image_file(n) and _visible_member(n)), None
