"""The dataset writers: ``.npz`` (held in memory, written at the end) and ``.zip`` (one PNG
at a time, ``dataset.json`` at the end). :func:`ylg.data.prepare.write_dataset` drives them:
``add`` one image at a time, ``close`` with the names, ``abort`` when the run fails.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["OUT_SUFFIXES", "NpzWriter", "ZipWriter"]

#: the output suffixes, each a format
OUT_SUFFIXES = (".npz", ".zip")


class NpzWriter:
    def __init__(self, resolution: int) -> None:
        self.images: list[np.ndarray] = []
        self.labels: list[int] = []
        self.styles: list[int] = []
        self.resolution = resolution

    def add(self, pixels: np.ndarray, label: int, style: int) -> None:
        self.images.append(pixels)
        self.labels.append(label)
        self.styles.append(style)

    def close(self, path: Path, meta: dict) -> None:
        r = self.resolution
        arrays = {
            "images": np.stack(self.images) if self.images else np.zeros((0, r, r, 3), np.uint8)
        }
        if meta.get("class_names") is not None:  # unlabeled sources store no labels
            arrays["labels"] = np.asarray(self.labels, dtype=np.int64)
            arrays["class_names"] = np.asarray(meta["class_names"], dtype=np.str_)
        if meta.get("style_names") is not None:
            arrays["styles"] = np.asarray(self.styles, dtype=np.int64)
            arrays["style_names"] = np.asarray(meta["style_names"], dtype=np.str_)
        # np.savez_compressed appends .npz to names without it; the temp name has it.
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)


class ZipWriter:
    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED)
        self.labels: list[list] = []
        self.styles: list[int] = []

    def add(self, pixels: np.ndarray, label: int, style: int) -> None:
        name = f"{len(self.labels):08d}.png"
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=6)
        self.zip.writestr(name, buf.getvalue())  # PNG is compressed already: stored
        self.labels.append([name, label])
        self.styles.append(style)

    def close(self, path: Path, meta: dict) -> None:
        labelled = meta.get("class_names") is not None
        info = {"labels": self.labels if labelled else None, **meta}
        if not labelled:
            info["files"] = [name for name, _ in self.labels]
        if meta.get("style_names") is not None:
            info["styles"] = self.styles
        self.zip.writestr("dataset.json", json.dumps(info), compress_type=zipfile.ZIP_DEFLATED)
        self.zip.close()

    def abort(self) -> None:
        self.zip.close()
