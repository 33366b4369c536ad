"""Grid certificates (``ylg.ifg.grid_certificate``) against brute-force path search and
networkx max-flow on tiny grids, and known facts about the patterns."""

from __future__ import annotations

import itertools

import pytest
import torch

from ylg.attention import grid_mask
from ylg.ifg import grid_certificate, grid_ifg, min_pair_flow, min_pair_flow_two_step

# (pattern, grid, key_grid, heads, extra_tokens, radius), at most 9 tokens (networkx tries
# every pair of pairs: 1296 max-flows).
TINY = [
    ("ylg", (3, 3), None, 8, 0, 3),
    ("ylg", (2, 4), None, 2, 0, 3),
    ("ylg", (2, 5), None, 1, 0, 3),
    ("ylg", (1, 7), None, 4, 1, 3),
    ("strided", (3, 3), None, 2, 0, 3),
    ("rtl", (2, 4), (1, 2), 2, 0, 3),
    ("ltr", (4, 2), (2, 1), 2, 1, 3),
    ("neighborhood", (1, 9), None, 2, 0, 1),
    ("neighborhood", (2, 4), None, 1, 1, 1),
    ("neighborhood", (4, 2), (2, 1), 1, 0, 0),
    ("dense", (2, 3), None, 1, 0, 3),
]
SLOW = [("ylg", (3, 4), None, 2, 0, 3), ("neighborhood", (2, 5), None, 1, 1, 1)]
PARAMS = ("pattern", "grid", "key_grid", "heads", "extra", "radius")


def union_tokens(pattern, grid, key_grid, heads, extra, radius) -> torch.Tensor:
    """``[n, n]``: output token b reads input token a in one layer (any head; pooled keys
    carry the tokens pooled into them), written out here independently of ``grid_ifg``."""
    mask = grid_mask(
        pattern, grid, heads=heads, key_grid=key_grid, extra_tokens=extra, radius=radius
    ).any(0)  # [Nq, Nk]
    hq, wq = grid
    hk, wk = key_grid or grid
    n = extra + hq * wq
    out = torch.zeros(n, n, dtype=torch.bool)
    for b, a in itertools.product(range(n), range(n)):
        if a < extra:
            key = a
        else:
            r, c = divmod(a - extra, wq)
            key = extra + (r * hk // hq) * wk + c * wk // wq  # the key cell a was pooled into
        out[b, a] = mask[b, key]
    return out


def brute_reach(step: torch.Tensor, layers: int) -> set[tuple[int, int]]:
    """(input, output) pairs joined by a path of ``layers`` steps, by search from each input."""
    n = step.shape[0]
    found = set()
    for a in range(n):
        frontier = {a}
        for _ in range(layers):
            frontier = {b for b in range(n) for x in frontier if step[b, x]}
        found |= {(a, b) for b in frontier}
    return found


@pytest.mark.parametrize(PARAMS, TINY + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW])
def test_certificate_matches_brute_force(pattern, grid, key_grid, heads, extra, radius):
    step = union_tokens(pattern, grid, key_grid, heads, extra, radius)
    n = step.shape[0]
    opts = dict(heads=heads, key_grid=key_grid, extra_tokens=extra, radius=radius)
    masks = grid_ifg(pattern, grid, **opts)
    assert torch.equal(masks, step.expand(2, n, n))
    cert = grid_certificate(pattern, grid, **opts)
    pairs = brute_reach(step, 2)
    assert cert.tokens == n
    assert cert.missing_pairs == n * n - len(pairs)
    assert cert.full_information == (len(pairs) == n * n)
    assert cert.one_layer_full == (len(brute_reach(step, 1)) == n * n)
    assert cert.min_pair_flow == min_pair_flow(masks)  # networkx, every pair of pairs
    full_at = [layers for layers in range(1, 9) if len(brute_reach(step, layers)) == n * n]
    assert cert.layers_to_full == (full_at[0] if full_at else None)


@pytest.mark.parametrize("seed", range(40))
def test_fast_pair_flow_matches_networkx(seed):
    g = torch.Generator().manual_seed(seed)
    n = 3 + seed % 6
    density = (0.2, 0.35, 0.5, 0.7)[seed % 4]
    masks = torch.rand(2, n, n, generator=g) < density
    assert min_pair_flow_two_step(masks) == min_pair_flow(masks)


def test_star_and_two_relays():
    star = torch.zeros(2, 6, 6, dtype=torch.bool)
    star[0, 0, :] = True  # every token sends to relay 0 ...
    star[1, :, 0] = True  # ... which sends to every token
    assert min_pair_flow_two_step(star) == 1
    two = star.clone()
    two[0, 1, :] = True
    two[1, :, 1] = True
    assert min_pair_flow_two_step(two) == 2


@pytest.mark.parametrize("side", [3, 4, 5, 6, 8])
def test_ylg_has_full_information_on_square_grids(side):
    cert = grid_certificate("ylg", (side, side), heads=8, max_n=0)
    assert cert.full_information and cert.missing_pairs == 0
    assert not cert.one_layer_full


def test_small_neighborhood_on_a_large_grid_lacks_full_information():
    cert = grid_certificate("neighborhood", (12, 12), heads=8, radius=1, max_n=0)
    assert not cert.full_information
    # two 3 x 3 windows reach 2 cells in each direction; the far corner is 11 cells away
    assert cert.layers_to_full is None  # 8 layers reach 8 cells, still not 11
    assert grid_certificate("neighborhood", (12, 12), heads=1, radius=1).layers_to_full is None
    assert grid_certificate("neighborhood", (5, 5), heads=1, radius=1).layers_to_full == 4


def test_global_tokens_give_full_information():
    plain = grid_certificate("neighborhood", (6, 6), heads=2, radius=1)
    glob = grid_certificate("neighborhood", (6, 6), heads=2, radius=1, extra_tokens=1)
    assert not plain.full_information and glob.full_information
    assert glob.layers_to_full == 2 and glob.tokens == 37
    one_head = grid_certificate("ylg", (4, 4), heads=1, extra_tokens=2)
    assert one_head.full_information


def test_one_ylg_head_is_local():
    assert not grid_certificate("ylg", (4, 4), heads=1).full_information


def test_dense_is_full_in_one_layer():
    cert = grid_certificate("dense", (3, 5), heads=1)
    assert cert.one_layer_full and cert.layers_to_full == 1 and cert.min_pair_flow == 2
