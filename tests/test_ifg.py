"""Information flow graphs against brute-force path search and hand-counted flows."""

from __future__ import annotations

import itertools

import pytest
import torch

from ylg.ifg import full_information, max_flow, min_pair_flow, missing_paths, reachability
from ylg.patterns import two_step


def brute_paths(masks: torch.Tensor) -> set[tuple[int, int]]:
    """All (input, output) pairs joined by a path, by depth-first search from each input."""
    steps, n, _ = masks.shape
    found = set()
    for a in range(n):
        frontier = {a}
        for t in range(steps):
            frontier = {b for b in range(n) for x in frontier if masks[t, b, x]}
        found |= {(a, b) for b in frontier}
    return found


def star(n: int) -> torch.Tensor:
    """Every token sends to relay token 0, which sends to every token."""
    m = torch.zeros(2, n, n, dtype=torch.bool)
    m[0, 0, :] = True
    m[1, :, 0] = True
    return m


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_reachability_matches_path_search(seed, steps):
    g = torch.Generator().manual_seed(seed)
    n = 3 + seed % 7
    masks = torch.rand(steps, n, n, generator=g) < 0.25
    paths = brute_paths(masks)
    everything = {(a, b) for a in range(n) for b in range(n)}
    assert set(missing_paths(masks)) == everything - paths
    assert full_information(masks) == (paths == everything)
    assert reachability(masks).T.nonzero().tolist() == sorted(map(list, paths))


def test_fixed_counterexample_is_reported():
    missing = missing_paths(two_step("fixed", 9))
    assert (8, 0) in missing  # causal: the last input never reaches the first output
    assert not full_information(two_step("fixed", 9))


def test_star_has_full_information_but_pair_flow_one():
    m = star(6)
    assert full_information(m)
    assert min_pair_flow(m) == 1
    assert max_flow(m, [1, 2], [3, 4]) == 1  # everything passes through the relay


def test_two_disjoint_relays_give_pair_flow_two():
    n = 6
    m = torch.zeros(2, n, n, dtype=torch.bool)
    m[0, 0, :] = m[0, 1, :] = True  # two relays each collect every input
    m[1, :, 0] = m[1, :, 1] = True  # and each feed every output
    assert min_pair_flow(m) == 2
    assert max_flow(m, [2, 3, 4], [0, 5]) == 2


def brute_vertex_disjoint(masks, sources, sinks) -> int:
    """Largest number of vertex-disjoint source->sink paths, by trying all path sets."""
    steps, n, _ = masks.shape
    paths = []
    for a in sources:
        for mids in itertools.product(range(n), repeat=steps - 1):
            for b in sinks:
                path = (a, *mids, b)
                if all(masks[t, path[t + 1], path[t]] for t in range(steps)):
                    paths.append(path)
    best = 0
    for k in range(1, min(len(sources), len(sinks)) + 1):
        for combo in itertools.combinations(paths, k):
            layers = [{p[t] for p in combo} for t in range(steps + 1)]
            if all(len(layer) == k for layer in layers):
                best = k
                break
    return best


@pytest.mark.parametrize("seed", range(8))
def test_max_flow_matches_brute_force(seed):
    g = torch.Generator().manual_seed(100 + seed)
    n = 5
    masks = torch.rand(2, n, n, generator=g) < 0.35
    for sources, sinks in [([0, 1], [2, 3]), ([0, 1, 2], [2, 3, 4]), ([4], [0])]:
        assert max_flow(masks, sources, sinks) == brute_vertex_disjoint(masks, sources, sinks)


def test_pair_flow_of_paper_patterns():
    assert min_pair_flow(two_step("fixed", 9)) == 0
    for name in ("ltr", "rtl", "strided_fi"):  # full information, but one summary cell per block
        assert min_pair_flow(two_step(name, 9)) == 1


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: full_information(torch.ones(3, 3, dtype=torch.bool)), r"shape \[steps"),
        (lambda: full_information(torch.ones(2, 3, 4, dtype=torch.bool)), r"\(2, 3, 4\)"),
        (lambda: full_information(torch.ones(2, 3, 3)), "torch.float32"),
        (lambda: max_flow(star(4), [0, 9], [1]), "sources"),
        (lambda: min_pair_flow(star(30)), "n=30"),
    ],
)
def test_bad_masks_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
