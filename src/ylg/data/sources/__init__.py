"""Dataset sources for ``ylg data``: one file per source, each yielding :class:`Item` s.

- :mod:`~ylg.data.sources.emoji`: the built-in real dataset (four emoji styles, 9 classes).
"""

from ylg.data.prepare import Item, SkipItem

__all__ = ["Item", "SkipItem"]
