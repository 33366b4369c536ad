"""``masked_attention``: the functional attention op, with a choice of backend.

Shapes: q ``[B, heads, Nq, D]``, k ``[B, heads, Nk, D]``, v ``[B, heads, Nk, Dv]``; ``masks``
is a bool tensor ``[heads, Nq, Nk]`` (``masks[h, i, j]``: query i of head h may attend key j)
or a :class:`ylg.attention.HeadLayout`, which also carries the block structure that the fast
backend needs. Logits are not scaled by ``1/sqrt(D)`` unless ``scale`` says so (SAGAN).

Both ``masked_attention`` and :func:`ylg.attention.grid_attention` end in :func:`run_plan`:
the backend reads the :class:`~ylg.attention.plan.AttentionPlan` of the call and nothing else.
"""

from __future__ import annotations

import torch

from ylg.attention.backends import BACKENDS, blocks, flex, reference
from ylg.attention.layouts import HeadLayout
from ylg.attention.plan import AttentionPlan, layout_plan

_BACKEND_MODULES = {"reference": reference, "blocks": blocks, "flex": flex}


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
    check_shapes(q, k, v, layout)
    name = choose_backend(q, layout, return_attention) if backend in (None, "auto") else backend
    if name not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {', '.join(BACKENDS)}")
    plan = layout_plan(layout.to(q.device))
    return run_plan(q, k, v, plan, name, scale=scale, return_attention=return_attention)


def run_plan(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: AttentionPlan,
    backend: str,
    *,
    scale: float,
    return_attention: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run ``backend`` (a name, not ``auto``) on ``plan`` (on q's device, shapes checked).

    ``flex`` with ``return_attention`` is served by ``blocks`` (FlexAttention does not return
    the probabilities)."""
    if backend == "flex" and return_attention:
        backend = "blocks"
    module = _BACKEND_MODULES[backend]

    def run(q, k, v):
        return module.attention(q, k, v, plan, scale=scale, return_attention=return_attention)

    out, probs = isolate_non_finite(q, k, v, plan, run)
    return (out, probs) if return_attention else out


def isolate_non_finite(q, k, v, plan: AttentionPlan, run):
    """``run(q, k, v) -> (out, probs | None)`` with each non-finite key or value kept to the
    queries whose mask includes it, on every backend.

    Dense math would spread a NaN further: ``0 * NaN = NaN`` in ``probs @ v`` reaches every
    query of the head (and a block backend every query of the block). Here non-finite entries
    are replaced by 0 for the call, then a query whose mask includes a key with a non-finite
    entry in k gets NaN in its whole output row (and probability row), and one whose mask
    includes a non-finite value entry gets NaN in that channel. Finite inputs (the usual case)
    cost one summing pass over k and v (a sum that overflows only sends a finite input down
    the repair path, which then changes nothing); the repair reads the bad keys' columns of the
    plan's dense mask (built once per plan and cached: O(heads x Nq x Nk) bools).
    """
    with torch.no_grad():  # NaN and inf propagate through a sum: one fast pass each, in the
        # inputs' dtype (a float32 sum of bf16 was 5x slower on the CPU: it converts first)
        suspect = not bool(torch.isfinite(k.sum() + v.sum()))
    if not suspect:
        return run(q, k, v)
    finite_k, finite_v = torch.isfinite(k), torch.isfinite(v)
    if bool(finite_k.all()) and bool(finite_v.all()):  # the sum overflowed: all finite
        return run(q, k, v)
    out, probs = run(q, k.where(finite_k, 0), v.where(finite_v, 0))
    bad_k = ~finite_k.all(-1)  # [B, h, Nk]
    bad_v = ~finite_v  # [B, h, Nk, Dv]
    cols = (bad_k | bad_v.any(-1)).flatten(0, 1).any(0).nonzero().squeeze(1)  # [J]
    sees = plan.mask.to(q.device)[:, :, cols]  # [h, Nq, J]: query sees bad key
    row_nan = (sees[None] & bad_k[:, :, None, cols]).any(-1)  # [B, h, Nq]
    chan_nan = torch.matmul(sees[None].float(), bad_v[:, :, cols].float()) > 0  # [B, h, Nq, Dv]
    nan = torch.tensor(float("nan"), dtype=out.dtype, device=out.device)
    out = torch.where(row_nan[..., None] | chan_nan, nan, out)
    if probs is not None:
        probs = torch.where(row_nan[..., None], nan.to(probs.dtype), probs)
    return out, probs


# Up to this many logits (B * heads * Nq * Nk) the dense reference is as fast as any backend:
# measured on CPU at 16x16 queries / 8x8 pooled keys, 8 heads, the two tie at batch 8 and the
# reference wins below (blocks has a fixed cost of a few ms); see benchmarks/README.md.
SMALL = 2**20


def choose_backend(
    q: torch.Tensor, layout: HeadLayout | AttentionPlan, return_attention: bool = False
) -> str:
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


def check_shapes(q, k, v, layout: HeadLayout | AttentionPlan) -> None:
    """q, k, v are 4-D and fit each other and the ``[heads, Nq, Nk]`` of ``layout``."""
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
