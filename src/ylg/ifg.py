"""Information flow graphs (IFG) of multi-step attention patterns.

The IFG of ``masks`` (BoolTensor ``[steps, n, n]``) has ``steps + 1`` layers of ``n`` tokens;
there is an edge from token ``a`` of layer ``t`` (an input of step ``t``) to token ``b`` of
layer ``t + 1`` when ``masks[t, b, a]`` (output ``b`` of step ``t`` attends to ``a``).

- *Full Information*: every input token has a directed path to every output token.
- Max-flow: with one token's worth of capacity on every token of every layer (vertex
  capacities, by splitting each vertex into in -> out with capacity 1, as in the information
  flow graphs of distributed storage), how many tokens of information can flow from a set of
  inputs to a set of outputs. The paper's stronger criterion asks for the smallest such flow
  from any pair of inputs to any pair of outputs (:func:`min_pair_flow`; for two steps, exact
  and fast on grids of hundreds of tokens: :func:`min_pair_flow_two_step`).
- Certificates of grid configurations (:func:`grid_certificate`): the IFG of a layer of
  :func:`ylg.attention.grid_mask` heads applied twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import torch

from ylg import patterns
from ylg.attention.grid import DEFAULT_RADIUS, grid_mask


def _check_masks(masks) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        raise ValueError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    if masks.dtype != torch.bool:
        raise ValueError(f"masks must have dtype torch.bool, got masks.dtype={masks.dtype}")
    if masks.dim() != 3 or masks.shape[1] != masks.shape[2] or masks.shape[0] < 1:
        raise ValueError(
            "masks must have shape [steps >= 1, n, n] (square steps, so that the outputs of "
            f"one step are the inputs of the next), got masks.shape={tuple(masks.shape)}"
        )
    return masks.cpu()


def reachability(masks: torch.Tensor) -> torch.Tensor:
    """BoolTensor ``[n, n]``: ``R[b, a]`` is True when input ``a`` has a path to output ``b``."""
    masks = _check_masks(masks)
    reach = torch.eye(masks.shape[1], dtype=torch.float32)  # [outputs so far, inputs]
    for step in masks.float():
        reach = ((step @ reach) > 0).float()  # boolean product, kept 0/1 to avoid overflow
    return reach.bool()


def full_information(masks: torch.Tensor) -> bool:
    """True when every input token has a directed path to every output token."""
    return bool(reachability(masks).all())


def missing_paths(masks: torch.Tensor) -> list[tuple[int, int]]:
    """The ``(input, output)`` pairs with no path, in order of input then output."""
    missing = (~reachability(masks)).T.nonzero()  # [M, 2] of (input, output)
    return [(int(a), int(b)) for a, b in missing]


def flow_graph(masks: torch.Tensor) -> nx.DiGraph:
    """The IFG with unit vertex capacities: nodes ``(layer, token, "in" | "out")``."""
    masks = _check_masks(masks)
    steps, n, _ = masks.shape
    g = nx.DiGraph()
    for layer in range(steps + 1):
        for tok in range(n):
            g.add_edge((layer, tok, "in"), (layer, tok, "out"), capacity=1)
    for t in range(steps):
        for b, a in masks[t].nonzero().tolist():  # output b of step t attends to input a
            g.add_edge((t, a, "out"), (t + 1, b, "in"))  # no capacity attribute: unbounded
    return g


def _flow(g: nx.DiGraph, steps: int, sources, sinks) -> int:
    g = g.copy()
    for a in sources:
        g.add_edge("source", (0, a, "in"))
    for b in sinks:
        g.add_edge((steps, b, "out"), "sink")
    return int(nx.maximum_flow_value(g, "source", "sink"))


def _check_tokens(arg: str, tokens, n: int) -> list[int]:
    tokens = [int(t) for t in tokens]
    bad = [t for t in tokens if not 0 <= t < n]
    if not tokens or bad or len(set(tokens)) != len(tokens):
        raise ValueError(f"{arg} must be distinct token indices in [0, {n}), got {arg}={tokens!r}")
    return tokens


def max_flow(masks: torch.Tensor, sources, sinks) -> int:
    """Tokens of information that can flow from the ``sources`` inputs to the ``sinks``
    outputs when every token of every layer carries at most one token's worth."""
    masks = _check_masks(masks)
    n = masks.shape[1]
    sources = _check_tokens("sources", sources, n)
    sinks = _check_tokens("sinks", sinks, n)
    return _flow(flow_graph(masks), masks.shape[0], sources, sinks)


def min_pair_flow(masks: torch.Tensor, max_n: int = 24) -> int:
    """The paper's stronger criterion: the smallest max-flow from any pair of inputs to any
    pair of outputs (2 means two vertex-disjoint paths always exist). Exact, by trying every
    pair of pairs, so limited to ``n <= max_n``."""
    masks = _check_masks(masks)
    steps, n, _ = masks.shape
    if n < 2:
        raise ValueError(f"min_pair_flow needs n >= 2 tokens, got n={n}")
    if n > max_n:
        raise ValueError(f"min_pair_flow is exact and tries every pair: n={n} > max_n={max_n}")
    g = flow_graph(masks)
    pairs = list(itertools.combinations(range(n), 2))
    best = 2
    for src in pairs:
        for dst in pairs:
            best = min(best, _flow(g, steps, src, dst))
            if best == 0:
                return 0
    return best


# ----------------------------------------------------------------------------- two steps, fast


def _blocked_square(blocked: torch.Tensor) -> bool:
    """Whether two outputs and two inputs have no path between any of them: a 2 x 2 all-True
    submatrix of ``blocked`` ``[outputs, inputs]`` (two inputs sharing two blocked outputs)."""
    f = blocked.float()
    common = f.T @ f  # [inputs, inputs]: outputs blocked for both
    common.fill_diagonal_(0)
    return bool((common >= 2).any())


def min_pair_flow_two_step(masks: torch.Tensor) -> int:
    """:func:`min_pair_flow` of a two-step IFG without max-flow runs, so it scales to a few
    hundred tokens (``n^4`` multiply-adds).

    With unit vertex capacities the flow from ``{a1, a2}`` to ``{b1, b2}`` is below 2 exactly
    when one vertex cuts every path (Menger). It is 0 when no path joins any of the four
    (input, output) combinations; else 1 when (i) an input reaches neither of two outputs (cut
    the other input), (ii) an output is reached by neither of two inputs, or (iii) removing one
    token of the middle layer leaves two inputs and two outputs unjoined; else 2.
    """
    masks = _check_masks(masks)
    steps, n, _ = masks.shape
    if steps != 2:
        raise ValueError(f"masks must have 2 steps, got masks.shape={tuple(masks.shape)}")
    if n < 2:
        raise ValueError(f"min_pair_flow needs n >= 2 tokens, got n={n}")
    first, second = masks.double()  # [n, n] each: [layer-1 token, input], [output, layer-1]
    paths = second @ first  # [outputs, inputs]: number of two-step paths
    unreached = paths == 0
    if _blocked_square(unreached):
        return 0
    if (unreached.sum(0) >= 2).any() or (unreached.sum(1) >= 2).any():
        return 1
    for m in range(n):
        through = second[:, m, None] * first[None, m, :]  # [outputs, inputs]: paths via m
        if _blocked_square(paths - through <= 0):
            return 1
    return 2


# ----------------------------------------------------------------------------- grid certificates


def grid_ifg(
    pattern: str,
    grid,
    *,
    heads: int,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
    layers: int = 2,
) -> torch.Tensor:
    """The IFG masks ``[layers, Nq, Nq]`` of a grid attention layer applied ``layers`` times.

    The heads run in parallel and the output projection mixes them, so one layer lets query
    ``b`` read token ``a`` when any head allows it: the union over heads of
    :func:`ylg.attention.grid_mask`. The paper's two steps are two of those heads, so two
    layers (the default) are its two-step IFG. Pooled keys (a smaller ``key_grid``): a key
    cell carries the information of the query-grid tokens pooled into it, so ``b`` reads
    token ``a`` when it may attend to the key cell under ``a``. Global tokens are tokens of
    the graph like the grid tokens (first ``extra_tokens`` indices).
    """
    mask = grid_mask(
        pattern,
        grid,
        heads=heads,
        key_grid=key_grid,
        curve=curve,
        extra_tokens=extra_tokens,
        radius=radius,
        query_layout=query_layout,
        stride=stride,
    )  # [heads, Nq, Nk]
    union = mask.any(0)  # [Nq, Nk]
    e = extra_tokens
    if key_grid is not None and tuple(key_grid) != tuple(grid):
        cell = patterns.query_rows(key_grid, grid, "colocate")  # [H*W] key cell of each token
        key_of_token = torch.cat([torch.arange(e), cell + e])  # [Nq]
        union = union[:, key_of_token]  # [Nq, Nq]
    return union.expand(layers, -1, -1).clone()


@dataclass(frozen=True)
class GridCertificate:
    """What :func:`grid_certificate` found; flows and paths are over all ``tokens``."""

    tokens: int  # Nq = extra_tokens + H * W
    one_layer_full: bool  # one layer alone reaches every token from every token
    full_information: bool  # two layers: every input has a path to every output
    missing_pairs: int  # two layers: (input, output) pairs without a path
    min_pair_flow: int | None  # two layers, 0 / 1 / 2; None when tokens > max_n
    layers_to_full: int | None  # fewest layers with full information (None: > max_layers)


def grid_certificate(
    pattern: str,
    grid,
    *,
    heads: int,
    key_grid=None,
    curve: str = "esa",
    extra_tokens: int = 0,
    radius: int = DEFAULT_RADIUS,
    query_layout: str = "colocate",
    stride: int | None = None,
    max_layers: int = 8,
    max_n: int = 512,
) -> GridCertificate:
    """Full information and minimum pair flow of a grid configuration (:func:`grid_ifg`).

    With ``extra_tokens >= 1`` every token reaches every token in two layers through a global
    token (grid -> global -> grid), so full information always holds; the pair flow can still
    be 1 when the global token is the only route between two pairs.
    """
    options = dict(heads=heads, key_grid=key_grid, curve=curve, extra_tokens=extra_tokens)
    options.update(radius=radius, query_layout=query_layout, stride=stride)
    masks = grid_ifg(pattern, grid, **options)  # [2, n, n]
    n = masks.shape[1]
    step = masks[0].float()
    reach = torch.eye(n)
    layers_to_full = None
    for layer in range(1, max_layers + 1):
        reach = ((step @ reach) > 0).float()  # [outputs, inputs] after `layer` layers
        if bool(reach.bool().all()):
            layers_to_full = layer
            break
    two = reachability(masks)
    flow = min_pair_flow_two_step(masks) if 2 <= n <= max_n else None
    return GridCertificate(
        tokens=n,
        one_layer_full=bool(step.bool().all()),
        full_information=bool(two.all()),
        missing_pairs=int((~two).sum()),
        min_pair_flow=flow,
        layers_to_full=layers_to_full,
    )
