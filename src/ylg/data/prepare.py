"""Prepare a dataset once: convert source images to ``R x R`` RGB and write ``.npz`` or ``.zip``.

This is the library side of ``ylg data`` (StyleGAN's dataset tool in spirit). A *source*
(:mod:`ylg.data.sources`) yields :class:`~ylg.data.items.Item` s, each a label, an optional
style and a callable that opens the image; :func:`write_dataset` converts every item with
:func:`~ylg.data.crop_resize.prepare_image`, writes them (:mod:`ylg.data.writers`) and
counts and skips the ones that cannot be used (:class:`~ylg.data.summary.Summary`).

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

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from ylg.data.crop_resize import CROPS, RESIZES, check_choice, prepare_image
from ylg.data.images import DECODE_ERRORS
from ylg.data.items import Item, SkipItem
from ylg.data.summary import Summary
from ylg.data.writers import OUT_SUFFIXES, NpzWriter, ZipWriter
from ylg.runtime.files import atomic_path, atomic_write_text

__all__ = ["write_dataset"]


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
    summary_extra: dict | None = None,
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
        extra_files: ``{file name: text}`` written beside ``out`` (e.g. a LICENSE), before
            ``out`` is renamed into place: a kill never leaves data without its licence.
        summary_extra: if given, ``OUT.summary.json`` (the summary's dict plus these
            fields) is written beside ``out``, also before the rename.
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
    check_choice("crop", crop, CROPS)
    check_choice("resize", resize, RESIZES)
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
        writer = ZipWriter(tmp) if is_zip else NpzWriter(resolution)
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
            # The files that travel with the data land before the data does (the rename at
            # the end of this block): a kill in between leaves them without data, which a
            # re-run overwrites, never data without its licence.
            for name, text in (extra_files or {}).items():
                atomic_write_text(out.parent / name, text)
            if summary_extra is not None:
                record = {**summary.to_dict(), **summary_extra}
                summary_path = out.with_name(out.name + ".summary.json")
                atomic_write_text(summary_path, json.dumps(record, indent=1) + "\n")
        except BaseException:
            if is_zip:
                writer.abort()
            raise
    return summary
