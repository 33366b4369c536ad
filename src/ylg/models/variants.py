"""The attention variants of the paper's Table 1 (and ylg's additions), by name.

Each name maps to the keyword arguments of :class:`ylg.attention.YLGAttention2d`; the models
build their attention layer from them and nothing else changes between variants, so every
attention variant has the same parameters (only ``none`` has fewer).

- ``none``: no attention layer;
- ``sagan``: dense, 1 head (Table 1 "SAGAN");
- ``sagan8``: dense, 8 heads ("SAGAN, 8 heads");
- ``ylg``: 8 heads RTL/LTR, ESA enumeration, ``flat`` queries as the original code ("YLG");
- ``ylg-noesa``: ``ylg`` with raster enumeration ("YLG - No ESA");
- ``ylg-strided``: 8 heads of the full-information strided pattern, ESA, ``flat`` queries
  ("YLG - Strided");
- ``ylg-hilbert``: ``ylg`` with the Hilbert curve instead of ESA (ylg's addition);
- ``ylg-colocate``: ``ylg`` with 2-D co-located queries (ylg's addition).

All variants pool keys and values 2x2 as SAGAN does (the key grid is half the query grid in
each direction). ``flat`` is how the original YLG code matched the query grid to the smaller
key grid; ``colocate`` is ylg's alternative that keeps 2-D locality between a query and the
keys it sees (see :mod:`ylg.patterns`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from torch import nn

from ylg.attention import YLGAttention2d

__all__ = ["VARIANTS", "attention_kwargs", "build_attention", "resolve_attention"]

_YLG = {"heads": 8, "layout": "ylg", "curve": "esa", "query_layout": "flat", "pool": True}

VARIANTS: MappingProxyType[str, dict[str, Any] | None] = MappingProxyType(
    {
        "none": None,
        "sagan": {
            "heads": 1,
            "layout": "dense",
            "curve": "esa",
            "query_layout": "flat",
            "pool": True,
        },
        "sagan8": {
            "heads": 8,
            "layout": "dense",
            "curve": "esa",
            "query_layout": "flat",
            "pool": True,
        },
        "ylg": _YLG,
        "ylg-noesa": {**_YLG, "curve": "raster"},
        "ylg-strided": {**_YLG, "layout": "strided"},
        "ylg-hilbert": {**_YLG, "curve": "hilbert"},
        "ylg-colocate": {**_YLG, "query_layout": "colocate"},
    }
)


def attention_kwargs(name: str) -> dict[str, Any] | None:
    """The :class:`~ylg.attention.YLGAttention2d` kwargs of variant ``name`` (a fresh dict),
    or ``None`` for ``none``.

    Raises:
        ValueError: ``name`` is not one of :data:`VARIANTS`.
    """
    if not isinstance(name, str) or name not in VARIANTS:
        raise ValueError(f"attention variant {name!r} is not known; valid: {', '.join(VARIANTS)}")
    kwargs = VARIANTS[name]
    return None if kwargs is None else dict(kwargs)


def resolve_attention(attention: str | dict | None) -> tuple[str, dict[str, Any] | None]:
    """``(name, kwargs)`` for a model's ``attention`` argument.

    ``attention`` is a variant name, ``None`` (= ``"none"``) or a dict of
    :class:`~ylg.attention.YLGAttention2d` kwargs (a custom variant, named ``"custom"``).
    """
    if attention is None:
        return "none", None
    if isinstance(attention, dict):
        return "custom", dict(attention)
    return attention, attention_kwargs(attention)


def build_attention(
    kwargs: dict[str, Any] | None, channels: int, backend: str | None, where: str
) -> nn.Module | None:
    """The attention layer over ``channels`` channels, or ``None``; ``where`` names the place
    in the model for error messages. ``backend`` (if not ``None``) overrides the kwargs'."""
    if kwargs is None:
        return None
    kwargs = dict(kwargs)
    if backend is not None:
        kwargs["backend"] = backend
    try:
        return YLGAttention2d(channels, **kwargs)
    except ValueError as err:
        raise ValueError(f"cannot build the attention layer of {where}: {err}") from err
