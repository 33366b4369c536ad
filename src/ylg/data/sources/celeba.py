"""``ylg data celeba``: CelebA's aligned faces (``img_align_celeba``), unlabeled.

Input: the ``img_align_celeba`` folder of 202,599 JPEGs (178 x 218) or the
``img_align_celeba.zip`` it comes in (any ``*.jpg`` / ``*.png`` inside, sorted by name).

Crops (``crop=``), applied before the resize:

- ``"face128"`` (default): the 128 x 128 box with top-left corner ``(x=25, y=57)``, i.e.
  centred on ``(89, 121)`` of the 178 x 218 image: the face crop that many CelebA-64 GAN and
  diffusion pipelines use (e.g. the ``Crop(cy - 64, cy + 64, cx - 64, cx + 64)`` with
  ``cx, cy = 89, 121`` of DDIM-style code). Images of another size get the same box scaled.
- ``"center"``: the largest centred square (178 x 178), as ``ylg data folder``.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ylg.data.folder_dataset import find_images
from ylg.data.images import is_image_file
from ylg.data.items import Item, Source
from ylg.data.sources.folder import open_image_file

__all__ = ["CELEBA_CROPS", "celeba_source", "face_crop"]

CELEBA_CROPS = ("face128", "center")
_ALIGNED = (178, 218)  # width, height of img_align_celeba
_FACE_BOX = (25, 57, 153, 185)  # left, top, right, bottom on the 178 x 218 image


def face_crop(image: Image.Image) -> Image.Image:
    """The ``face128`` crop: the 128 x 128 face box, scaled for images that are not 178 x 218."""
    w, h = image.size
    if (w, h) == _ALIGNED:
        box = _FACE_BOX
    else:
        sx, sy = w / _ALIGNED[0], h / _ALIGNED[1]
        side = round(128 * min(sx, sy))
        cx, cy = round(89 * sx), round(121 * sy)
        left = min(max(0, cx - side // 2), w - side)
        top = min(max(0, cy - side // 2), h - side)
        box = (left, top, left + side, top + side)
    cropped = image.crop(box)
    image.close()
    return cropped


def _from_zip(path: Path, crop: str) -> tuple[Iterator[Item], int]:
    with zipfile.ZipFile(path) as archive:
        names = sorted(
            n
            for n in archive.namelist()
            if is_image_file(n) and not any(p.startswith((".", "__MACOSX")) for p in n.split("/"))
        )

    def items() -> Iterator[Item]:
        with zipfile.ZipFile(path) as archive:
            for name in names:

                def opener(name=name):
                    image = Image.open(io.BytesIO(archive.read(name)))
                    image.load()
                    return face_crop(image) if crop == "face128" else image

                yield Item(f"{path.name}:{name}", opener)

    return items(), len(names)


def celeba_source(src: str | os.PathLike, *, crop: str = "face128") -> Source:
    """CelebA's aligned images as unlabeled items, cropped as ``crop`` (see the module).

    The output's own ``--crop center`` then keeps the (already square) crop whole.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: a bad ``crop``, or no images in ``src``.
    """
    if crop not in CELEBA_CROPS:
        raise ValueError(f"celeba crop must be one of {list(CELEBA_CROPS)}, got {crop!r}")
    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(
            f"CelebA source {str(path)!r} does not exist (give the img_align_celeba folder "
            "or img_align_celeba.zip)"
        )
    if path.is_dir():
        files = find_images(path)

        def opener(p: str):
            image = open_image_file(p)
            return face_crop(image) if crop == "face128" else image

        items = (Item(p, lambda p=p: opener(p)) for p in files)
        total = len(files)
    elif zipfile.is_zipfile(path):
        items, total = _from_zip(path, crop)
    else:
        raise ValueError(
            f"CelebA source {str(path)!r} is neither a folder nor a zip archive "
            "(give img_align_celeba/ or img_align_celeba.zip)"
        )
    if total == 0:
        raise ValueError(f"no images found in CelebA source {str(path)!r}")
    return Source(items=items, total=total)
