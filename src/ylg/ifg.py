"""Information flow graphs (IFG) of multi-step attention patterns.

The IFG of ``masks`` (BoolTensor ``[steps, n, n]``) has ``steps + 1`` layers of ``n`` tokens;
there is an edge from token ``a`` of layer ``t`` (an input of step ``t``) to token ``b`` of
layer ``t + 1`` when ``masks[t, b, a]`` (output ``b`` of step ``t`` attends to ``a``).

- *Full Information*: every input token has a directed path to every output token.
- Max-flow: with one token's worth of capacity on every token of every layer (vertex
  capacities, by splitting each vertex into in -> out with capacity 1, as in the information
  flow graphs of distributed storage), how many tokens of information can flow from a set of
  inputs to a set of outputs. The paper's stronger criterion asks for the smallest such flow
  from any pair of inputs to any pair of outputs (:func:`min_pair_flow`).
"""

from __future__ import annotations

import itertools

import networkx as nx
import torch


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
