"""What a source hands to :func:`ylg.data.prepare.write_dataset`: lazy items and their names.

A source (:mod:`ylg.data.sources`) yields :class:`Item` s, each a name, a callable that opens
the image, a label and a style; :class:`Source` carries them with the class and style names,
what the source dropped before writing and a licence text. An opener raises
:class:`SkipItem` to skip its item with a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from PIL import Image

__all__ = ["Item", "SkipItem", "Source"]


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
