"""``masked_attention``: the functional attention op, with a choice of backend.

Shapes: q ``[B, heads, Nq, D]``, k ``[B, heads, Nk, D]``, v ``[B, heads, Nk, Dv]``; ``masks``
is a bool tensor ``[heads, Nq, Nk]`` (``masks[h, i, j]``: query i of head h may attend key j)
or a :class:`ylg.attention.HeadLayout`, which also carries the block structure that the fast
backend needs. Logits are not scaled by ``1/sqrt(D)`` unless ``scale`` says so (SAGAN).
"""

from __future__ import annotations

import importlib

import torch

from ylg.attention.backends import BACKENDS
from ylg.attention.layouts import HeadLayout


def masked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    masks: torch.Tensor | HeadLayout,
    backend: str | None = None,
    *,
    scale: float = 1.0,
    return_attention: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention of each head's queries over the keys its mask allows.

    Returns the output ``[B, heads, Nq, Dv]``, and with ``return_attention=True`` also the
    probabilities ``[B, heads, Nq, Nk]`` (zero outside the mask, rows summing to 1).
    ``backend``: ``reference``, ``blocks``, ``flex`` or ``auto``/``None`` (see
    :func:`choose_backend`). Raises ``ValueError`` for mismatched shapes, an unknown backend
    or a query whose mask row is all False.
    """
    layout = masks if isinstance(masks, HeadLayout) else HeadLayout.from_masks(masks)
    _check_shapes(q, k, v, layout)
    name = choose_backend(q, layout, return_attention) if backend in (None, "auto") else backend
    if name not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {', '.join(BACKENDS)}")
    module = importlib.import_module(f"ylg.attention.backends.{name}")
    out, probs = module.attention(
        q, k, v, layout.to(q.device), scale=scale, return_attention=return_attention
    )
    return (out, probs) if return_attention else out


# Up to this many logits (B * heads * Nq * Nk) the dense reference is as fast as any backend:
# measured on CPU at 16x16 queries / 8x8 pooled keys, 8 heads, the two tie at batch 8 and the
# reference wins below (blocks has a fixed cost of a few ms); see benchmarks/README.md.
SMALL = 2**20


def choose_backend(q: torch.Tensor, layout: HeadLayout, return_attention: bool = False) -> str:
    """What ``backend="auto"`` runs.

    - ``reference`` when ``B * heads * Nq * Nk <= SMALL`` (2**20, e.g. batch 8 of 8 heads at
      16x16 queries and 8x8 keys): a few milliseconds whatever runs, and the reference has the
      least fixed overhead;
    - ``blocks`` otherwise, with or without attention probabilities, on every device: on CPU
      it is the fastest exact backend from there up (``benchmarks/README.md``); it computes
      block softmaxes (and scatters them into the dense probabilities when asked) instead of
      ``Nq * Nk`` logits per head, and ``dense`` layouts are one fused SDPA call.

    ``flex`` is not chosen automatically: it has not been measured on a GPU yet (run
    ``benchmarks/attention.py`` on CUDA before changing this rule).
    """
    del return_attention  # the rule does not depend on it (yet)
    logits = q.shape[0] * layout.num_heads * layout.num_queries * layout.num_keys
    return "reference" if logits <= SMALL else "blocks"


def _check_shapes(q, k, v, layout: HeadLayout) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v must be 4-D [B, heads, N, D], got shapes {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    b, h, nq, d = q.shape
    if k.shape[:2] != (b, h) or k.shape[3] != d or v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not fit: need "
            f"q [B, heads, Nq, D], k [B, heads, Nk, D], v [B, heads, Nk, Dv]"
        )
    want = (h, nq, k.shape[2])
    got = (layout.num_heads, layout.num_queries, layout.num_keys)
    if got != want:
        raise ValueError(f"masks are for [heads, Nq, Nk] = {list(got)}, q/k give {list(want)}")
