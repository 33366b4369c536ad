"""Prepare a dataset once: convert source images to ``R x R`` RGB and write ``.npz`` or ``.zip``.

This is the library side of ``ylg data`` (StyleGAN's dataset tool in spirit). A *source*
(:mod:`ylg.data.sources`) yields :class:`Item` s, each a label, an optional style and a
callable that opens the image; :func:`write_dataset` converts every item with
:func:`prepare_image` and writes them, counting and skipping the ones that cannot be used.

Output formats (both read back by :func:`ylg.data.make_dataset`):

- ``.npz`` (small sets, loaded into memory): ``images`` uint8 ``[N, R, R, 3]``, ``labels``
  int64 ``[N]`` and ``class_names`` str ``[C]`` (labelled sources only) and, for sources
  with styles, ``styles`` int64 ``[N]`` and ``style_names`` str ``[S]``; no pickled objects.
  The whole array is held in memory while writing.
- ``.zip`` (any size, streamed: one item in memory at a time): ``00000000.png`` ... plus
  ``dataset.json`` = ``{"labels": [[file, label], ...] or null, "class_names": [...] or
  null, "styles": [...], "style_names": [...], "resolution": R}`` (StyleGAN's
  ``dataset.json`` layout for labels, plus the names; unlabeled sets list ``"files"``).

Writes are atomic: the output goes to ``OUT.partial-<pid>`` beside ``OUT`` and is renamed
onto ``OUT`` only when complete, so a killed or failed run leaves no ``OUT`` (and removes its
temporary file when it can).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ylg.data.images import center_crop_box, to_rgb
from ylg.runtime.files import atomic_path, atomic_write_text

__all__ = [
    "CROPS",
    "RESIZES",
    "Item",
    "Source",
    "Summary",
    "SkipItem",
    "prepare_image",
    "write_dataset",
]

CROPS = ("center", "none")
RESIZES = ("lanczos", "tf-bilinear")
OUT_SUFFIXES = (".npz", ".zip")

# Errors PIL (and our openers) raise for corrupt, truncated or unsupported data.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError)


class SkipItem(Exception):
    """Raised by an item's opener to skip it with a reason (counted in the summary)."""


@dataclass(frozen=True)
class Item:
    """One source image: ``open()`` returns a PIL image (or raises), with its label and style.

    ``open`` may raise :class:`SkipItem` (a deliberate skip with a reason) or any decode error
    (counted as unreadable). ``name`` identifies the item in the summary.
    """

    name: str
    open: Callable[[], Image.Image]
    label: int = 0
    style: int = 0


@dataclass
class Source:
    """What a source hands to :func:`write_dataset`: items and the names that travel with them.

    ``items`` may be a lazy iterable (folders of millions of files); ``total`` is its length
    for the progress bar. ``dropped`` counts what the source left out before writing (reason
    -> count); ``licence_text``, when not empty, is written beside the output.
    """

    items: Iterable[Item]
    total: int
    class_names: list[str] | None = None
    style_names: list[str] | None = None
    dropped: Counter = field(default_factory=Counter)
    licence_text: str = ""

    def __len__(self) -> int:
        return self.total


@dataclass
class Summary:
    """What :func:`write_dataset` did: counts per class and style, skips with reasons."""

    out: str
    written: int = 0
    resolution: int = 0
    class_names: list[str] | None = None
    style_names: list[str] | None = None
    per_class: Counter = field(default_factory=Counter)
    per_style: Counter = field(default_factory=Counter)
    per_class_style: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict = field(default_factory=dict)  # reason -> first item name
    converted: Counter = field(default_factory=Counter)  # source mode -> count (non-RGB)

    def to_dict(self) -> dict:
        classes = self.class_names or []
        styles = self.style_names or []

        def cname(i: int) -> str:
            return classes[i] if i < len(classes) else str(i)

        def sname(i: int) -> str:
            return styles[i] if i < len(styles) else str(i)

        return {
            "out": self.out,
            "resolution": self.resolution,
            "written": self.written,
            "class_names": self.class_names,
            "style_names": self.style_names,
            "per_class": {cname(k): v for k, v in sorted(self.per_class.items())},
            "per_style": {sname(k): v for k, v in sorted(self.per_style.items())},
            "per_class_style": {
                f"{cname(c)} / {sname(s)}": v for (c, s), v in sorted(self.per_class_style.items())
            },
            "skipped": dict(self.skipped),
            "skipped_examples": dict(self.skipped_examples),
            "converted_modes": dict(self.converted),
        }

    def format(self) -> str:
        """A human-readable summary (counts per class, per style, skips with reasons)."""
        d = self.to_dict()
        lines = [f"wrote {self.written} images ({self.resolution}x{self.resolution}) to {self.out}"]
        if self.class_names:
            lines.append(f"classes ({len(self.class_names)}):")
            lines += [f"  {name:<20} {d['per_class'].get(name, 0):>7}" for name in self.class_names]
        if self.style_names:
            names = self.style_names
            lines.append(f"styles ({len(names)}):")
            lines += [f"  {name:<20} {d['per_style'].get(name, 0):>7}" for name in names]
        if self.converted:
            modes = ", ".join(f"{m}: {n}" for m, n in sorted(self.converted.items()))
            lines.append(f"converted to RGB: {modes}")
        total_skipped = sum(self.skipped.values())
        lines.append(f"skipped {total_skipped}")
        for reason, n in self.skipped.most_common():
            lines.append(f"  {n:>7}  {reason} (e.g. {self.skipped_examples[reason]})")
        return "\n".join(lines)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _tf_crop_and_resize(image: Image.Image, resolution: int) -> np.ndarray:
    """The largest central square, bilinear-resampled without antialiasing, as YLG's TF code.

    The original input pipeline (``ylg/data_provider.py``, from tensorflow-gan) takes the
    largest central square with offsets ``ceil((H - S) / 2)``, ``ceil((W - S) / 2)`` and
    resamples it with ``tf.image.crop_and_resize``: output pixel ``i`` samples input
    coordinate ``offset + i * (S - 1) / (R - 1)`` (the crop's first and last pixels map to the
    output's first and last; ``R == 1`` samples the centre) and interpolates the 2 x 2
    neighbours bilinearly, whatever the scale, so downsampling aliases. Computed in float64
    and rounded to uint8 (the original kept floats).
    """
    x = np.asarray(image, dtype=np.float64)  # [H, W, 3]
    h, w = x.shape[:2]
    side = min(h, w)

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo_edge = math.ceil((n_in - side) / 2)
        if resolution > 1:
            pos = lo_edge + np.arange(resolution) * ((side - 1) / (resolution - 1))
        else:
            pos = np.array([lo_edge + 0.5 * (side - 1)])
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    rows = x[y0] * (1 - fy)[:, None, None] + x[y1] * fy[:, None, None]  # [R, W, 3]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]  # [R, R, 3]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def prepare_image(
    image: Image.Image,
    resolution: int,
    *,
    crop: str = "center",
    resize: str = "lanczos",
    min_size: int = 1,
) -> np.ndarray:
    """Convert a PIL image to ``uint8 [R, R, 3]``: RGB, crop, resize.

    Args:
        image: any PIL mode (grayscale, 16-bit, CMYK, RGBA / LA / transparent palette are
            converted as :func:`ylg.data.images.to_rgb`: transparency composited on white).
        resolution: output side ``R``.
        crop: ``"center"``: the largest centred square; ``"none"``: the whole image, padded
            to a square with white (aspect ratio kept).
        resize: ``"lanczos"`` (antialiased, PIL) or ``"tf-bilinear"`` (2-tap bilinear
            without antialiasing over the largest central square, as the original YLG input
            pipeline's ``tf.image.crop_and_resize``; see :func:`_tf_crop_and_resize`).
        min_size: images whose shorter side is below this raise :class:`SkipItem`.

    Raises:
        SkipItem: the image is smaller than ``min_size``.
        ValueError: a bad ``crop`` / ``resize`` / ``resolution``.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    _check_choice("crop", crop, CROPS)
    _check_choice("resize", resize, RESIZES)
    if min(image.size) < min_size:
        raise SkipItem(f"smaller than --min-size {min_size} px")
    image = ImageOps.exif_transpose(image)
    image = to_rgb(image)
    if crop == "none" and image.width != image.height:
        side = max(image.size)
        padded = Image.new("RGB", (side, side), (255, 255, 255))
        padded.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = padded
    if resize == "tf-bilinear":
        return _tf_crop_and_resize(image, resolution)  # its own (ceil) centre crop
    square = image.crop(center_crop_box(*image.size))
    if square.size == (resolution, resolution):
        return np.asarray(square, dtype=np.uint8).copy()
    return np.asarray(square.resize((resolution, resolution), Image.Resampling.LANCZOS))


# ---------------------------------------------------------------------------------------------
# Writers


class _NpzWriter:
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


class _ZipWriter:
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


def write_dataset(
    items: Iterable[Item],
    out: str | os.PathLike,
    resolution: int,
    *,
    class_names: Sequence[str] | None = None,
    style_names: Sequence[str] | None = None,
    crop: str = "center",
    resize: str = "lanczos",
    min_size: int = 1,
    total: int | None = None,
    extra_files: dict[str, str] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Summary:
    """Convert ``items`` and write them to ``out`` (``.npz`` or ``.zip``), atomically.

    Args:
        items: :class:`Item` s, in output order.
        out: the output file; its suffix picks the format.
        resolution: output side ``R``.
        class_names: label ``i`` is ``class_names[i]`` (stored with the data), or ``None``.
        style_names: style ``i`` is ``style_names[i]``; ``None`` for sources without styles
            (no ``styles`` field is written then).
        crop, resize, min_size: see :func:`prepare_image`.
        total: the number of items, for the progress bar.
        extra_files: ``{file name: text}`` written beside ``out`` after it (e.g. a LICENSE).
        progress: show a tqdm bar.
        overwrite: replace an existing ``out`` (otherwise ``FileExistsError``... as a
            ``ValueError`` naming it).

    Returns:
        A :class:`Summary`. An item that fails to open or decode is skipped and counted with
        its reason; the run never stops on bad data.

    Raises:
        ValueError: a bad suffix, ``resolution``, ``crop`` or ``resize``; ``out`` exists and
            not ``overwrite``; no item could be written.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise ValueError(
            f"output {str(out)!r} must end in one of {list(OUT_SUFFIXES)} (the format)"
        )
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    _check_choice("crop", crop, CROPS)
    _check_choice("resize", resize, RESIZES)
    if out.exists() and not overwrite:
        raise ValueError(f"output {str(out)!r} exists (remove it or pass --overwrite)")
    if out.is_dir():
        raise ValueError(f"output {str(out)!r} is a directory; give a .npz or .zip file name")
    out.parent.mkdir(parents=True, exist_ok=True)

    summary = Summary(
        out=str(out),
        resolution=resolution,
        class_names=list(class_names) if class_names is not None else None,
        style_names=list(style_names) if style_names is not None else None,
    )
    meta = {
        "class_names": summary.class_names,
        "style_names": summary.style_names,
        "resolution": resolution,
    }
    is_zip = out.suffix.lower() == ".zip"
    with atomic_path(out) as tmp:
        writer = _ZipWriter(tmp) if is_zip else _NpzWriter(resolution)
        try:
            for item in tqdm(
                items, total=total, desc=f"writing {out.name}", unit="img", disable=not progress
            ):
                try:
                    with item.open() as image:
                        if image.mode != "RGB":
                            summary.converted[image.mode] += 1
                        pixels = prepare_image(
                            image, resolution, crop=crop, resize=resize, min_size=min_size
                        )
                except SkipItem as err:
                    reason = str(err)
                except (*DECODE_ERRORS, Image.DecompressionBombError) as err:
                    reason = f"unreadable ({type(err).__name__})"
                else:
                    writer.add(pixels, item.label, item.style)
                    summary.written += 1
                    summary.per_class[item.label] += 1
                    summary.per_style[item.style] += 1
                    summary.per_class_style[item.label, item.style] += 1
                    continue
                summary.skipped[reason] += 1
                summary.skipped_examples.setdefault(reason, item.name)
            if summary.written == 0:
                reasons = ", ".join(f"{r}: {n}" for r, n in summary.skipped.items()) or "no items"
                raise ValueError(f"no image could be written to {str(out)!r} ({reasons})")
            writer.close(tmp, meta)
        except BaseException:
            if is_zip:
                writer.abort()
            raise
    for name, text in (extra_files or {}).items():
        atomic_write_text(out.parent / name, text)
    return summary
