"""``ylg data folder``: an image folder, class subfolders as labels (or flat, unlabeled).

The layout rule is :class:`ylg.data.ImageFolderDataset`'s: if any non-hidden subfolder of
``root`` holds images (searched recursively), each such subfolder is a class, classes sorted
by name and numbered from 0 (ImageNet's ``train/n01440764/...``), and images directly in
``root`` are left out (counted); otherwise the images directly in ``root`` are the dataset,
unlabeled. Files are opened lazily, one at a time, so any size works with a ``.zip`` output.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

from PIL import Image

from ylg.data.folder_dataset import scan_folder
from ylg.data.items import Item, Source

__all__ = ["folder_source", "open_image_file"]


def open_image_file(path: str, draft_size: int | None = None) -> Image.Image:
    """Open and decode ``path`` (JPEGs decoded at a reduced DCT scale of at least
    ``draft_size`` when given: far faster for large photos)."""
    image = Image.open(path)
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", (draft_size, draft_size))
        image.load()
    except BaseException:
        image.close()
        raise
    return image


def _items(files: list[str], labels: list[int], draft_size: int | None) -> Iterator[Item]:
    for path, label in zip(files, labels):
        yield Item(path, lambda path=path: open_image_file(path, draft_size), label)


def folder_source(
    root: str | os.PathLike, *, resolution: int | None = None, draft: bool = True
) -> Source:
    """The images under ``root`` as items (see the module docstring for the layout).

    Args:
        root: the folder.
        resolution: the output side; with ``draft``, JPEGs are decoded at a reduced scale
            of at least ``2 * resolution`` (as :func:`ylg.data.load_image`).
        draft: use JPEG draft decoding (off for exact full-resolution decoding, e.g. with
            ``--resize tf-bilinear``).

    Raises:
        FileNotFoundError / NotADirectoryError: ``root`` is missing or not a folder.
        ValueError: no image files.
    """
    files, labels, classes, ignored = scan_folder(root)
    dropped: Counter = Counter()
    if ignored:
        dropped["image directly in a folder with class subfolders"] = ignored
    draft_size = 2 * resolution if (draft and resolution) else None
    return Source(
        items=_items(files, labels, draft_size),
        total=len(files),
        class_names=list(classes) or None,
        dropped=dropped,
    )
