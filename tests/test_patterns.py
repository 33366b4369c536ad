"""Patterns, curves, grid masks and block layouts against slow, obviously correct references."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ylg import patterns
from ylg.ifg import full_information
from ylg.patterns import PATTERNS, enumerate_grid, grid_blocks, grid_masks, two_step

# Figure 2 of the paper (9 tokens, stride 3): rows are queries, columns keys; step 0 then step 1.
LTR_9 = [
    [
        "100000000",
        "110000000",
        "111000000",
        "000100000",
        "000110000",
        "000111000",
        "000000100",
        "000000110",
        "000000111",
    ],
    [
        "101001001",
        "011001001",
        "001001001",
        "001101001",
        "001011001",
        "001001001",
        "001001101",
        "001001011",
        "001001001",
    ],
]
RTL_9 = [
    ["111000000", "011000000", "001000000", "000111000", "000011000", "000001000",
     "000000111", "000000011", "000000001"],
    ["100100100", "110100100", "101100100", "100100100", "100110100", "100101100",
     "100100100", "100100110", "100100101"],
]  # fmt: skip

# Figure 3 of the paper: the ESA enumeration of an 8x8 grid (the number in each cell).
ESA_8x8 = [
    [0, 1, 3, 6, 10, 15, 21, 28],
    [2, 4, 7, 11, 16, 22, 29, 36],
    [5, 8, 12, 17, 23, 30, 37, 43],
    [9, 13, 18, 24, 31, 38, 44, 49],
    [14, 19, 25, 32, 39, 45, 50, 54],
    [20, 26, 33, 40, 46, 51, 55, 58],
    [27, 34, 41, 47, 52, 56, 59, 61],
    [35, 42, 48, 53, 57, 60, 62, 63],
]


def _table(rows):
    return torch.tensor([[[c == "1" for c in r] for r in step] for step in rows])


def brute_two_step(name: str, n: int, s: int) -> torch.Tensor:
    """The rules written out with loops, one pair at a time."""
    out = torch.zeros(2, n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(n):
            same_block = q // s == k // s
            if name == "fixed":
                out[0, q, k] = same_block and k <= q
                out[1, q, k] = k % s == s - 1 and k <= q
            elif name == "strided":
                out[0, q, k] = 0 <= q - k < s
                out[1, q, k] = (q - k) % s == 0 and k <= q
            elif name == "ltr":
                out[0, q, k] = same_block and k <= q
                last_of_block = k % s == s - 1 or k == n - 1
                out[1, q, k] = last_of_block or k == q
            elif name == "rtl":
                out[0, q, k] = same_block and k >= q
                out[1, q, k] = k % s == 0 or k == q
            elif name == "strided_fi":
                out[0, q, k] = abs(q - k) < s
                out[1, q, k] = (q - k) % s == 0
    return out


def test_figure2_ltr_rtl_exact():
    assert torch.equal(two_step("ltr", 9), _table(LTR_9))
    assert torch.equal(two_step("rtl", 9), _table(RTL_9))


@pytest.mark.parametrize("name", PATTERNS)
@pytest.mark.parametrize("n,s", [(1, 1), (9, 3), (10, 3), (17, 4), (16, 1), (12, 12), (30, 7)])
def test_two_step_matches_loops(name, n, s):
    assert torch.equal(two_step(name, n, s), brute_two_step(name, n, s))


@pytest.mark.parametrize("s", [2, 3, 4, 5, 8])
def test_ltr_square_equals_original_rule(s):
    # For n = s*s the fix (k == n-1 is a summary) adds nothing: the original code's masks.
    n = s * s
    masks = two_step("ltr", n)
    q, k = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    assert torch.equal(masks[1], (k % s == s - 1) | (k == q))


def test_plain_ltr_loses_full_information_when_stride_does_not_divide():
    n, s = 10, 3
    plain = two_step("ltr", n, s).clone()
    q, k = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    plain[1] = (k % s == s - 1) | (k == q)  # without ylg's fix
    assert not full_information(plain)
    assert full_information(two_step("ltr", n, s))


@pytest.mark.parametrize("name", ["ltr", "rtl", "strided_fi"])
def test_full_information_every_n(name):
    for n in range(2, 301):
        assert full_information(two_step(name, n)), (name, n)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 200), data=st.data())
def test_full_information_any_stride(n, data):
    s = data.draw(st.integers(1, n))
    for name in ("ltr", "rtl", "strided_fi"):
        assert full_information(two_step(name, n, s)), (name, n, s)


@pytest.mark.parametrize("name", ["fixed", "strided"])
def test_causal_patterns_lack_full_information(name):
    for n in range(2, 60):
        assert not full_information(two_step(name, n)), (name, n)


@pytest.mark.parametrize("name", ["ltr", "rtl", "strided_fi"])
def test_allowed_positions_grow_as_n_sqrt_n(name):
    ratios = []
    for s in (8, 16, 32, 64):
        n = s * s
        count = int(two_step(name, n).sum())
        ratios.append(count / (n * math.sqrt(n)))
        assert count < 3.5 * n * math.sqrt(n)
    # The ratio to n sqrt n stays within constant bounds as n grows 64-fold, so the density
    # count / n^2 falls as 1 / sqrt(n).
    assert max(ratios) / min(ratios) < 1.5, ratios
    assert min(ratios) > 0.5 and max(ratios) < 4.0, ratios


def brute_esa(rows: int, cols: int) -> list[int]:
    cells = [(r + c, r, r * cols + c) for r in range(rows) for c in range(cols)]
    return [raster for _, _, raster in sorted(cells)]


def test_esa_figure3():
    order = enumerate_grid(8, 8, "esa")
    numbers = torch.empty(64, dtype=torch.long)
    numbers[order] = torch.arange(64)
    assert numbers.view(8, 8).tolist() == ESA_8x8


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 7), (5, 3), (3, 5), (16, 16), (24, 9)])
def test_esa_matches_sort(rows, cols):
    assert enumerate_grid(rows, cols, "esa").tolist() == brute_esa(rows, cols)
    assert enumerate_grid(rows, cols, "raster").tolist() == list(range(rows * cols))


@pytest.mark.parametrize("rows,cols", [(r, c) for r in range(1, 13) for c in range(1, 13)])
def test_hilbert_is_a_walk_over_every_cell(rows, cols):
    order = enumerate_grid(rows, cols, "hilbert")
    assert sorted(order.tolist()) == list(range(rows * cols))
    r, c = order // cols, order % cols
    steps = torch.cat([torch.ones(1, dtype=torch.long), r.diff().abs() + c.diff().abs()])
    # Neighbour to neighbour; odd x even rectangles may need one diagonal step.
    assert int((steps > 1).sum()) <= 1 and int(steps.max()) <= 2
    if rows == cols and rows & (rows - 1) == 0:  # powers of two: the classic Hilbert curve
        assert int(steps.max()) == 1


def brute_grid_masks(name, key_grid, query_grid, curve, layout, stride=None):
    hk, wk = key_grid
    hq, wq = query_grid
    nk = hk * wk
    s = stride or math.isqrt(nk)
    order = enumerate_grid(hk, wk, curve).tolist()
    pos = {raster: p for p, raster in enumerate(order)}
    one_d = brute_two_step(name, nk, s)
    out = torch.zeros(2, hq * wq, nk, dtype=torch.bool)
    for r in range(hq):
        for c in range(wq):
            q = r * wq + c
            if layout == "colocate":
                row = (r * hk // hq) * wk + c * wk // wq
            elif layout == "tile":
                row = (r % hk) * wk + c % wk
            else:
                row = q % nk
            for k in range(nk):
                out[:, q, k] = one_d[:, pos[row], pos[k]]
    return out


GRID_CASES = [
    ((4, 4), (8, 8), "esa", "colocate"),
    ((4, 4), (8, 8), "esa", "flat"),
    ((4, 4), (8, 8), "raster", "tile"),
    ((3, 5), (6, 10), "hilbert", "colocate"),
    ((3, 5), (3, 5), "esa", "flat"),
    ((5, 2), (15, 4), "esa", "tile"),
]


@pytest.mark.parametrize("name", PATTERNS)
@pytest.mark.parametrize("key_grid,query_grid,curve,layout", GRID_CASES)
def test_grid_masks_match_loops(name, key_grid, query_grid, curve, layout):
    got = grid_masks(name, key_grid, query_grid, curve, layout)
    assert torch.equal(got, brute_grid_masks(name, key_grid, query_grid, curve, layout))


def test_query_layouts_differ_as_documented():
    rows = {
        layout: patterns.query_rows((2, 2), (4, 4), layout).view(4, 4).tolist()
        for layout in ("colocate", "tile", "flat")
    }
    assert rows["colocate"] == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert rows["tile"] == [[0, 1, 0, 1], [2, 3, 2, 3], [0, 1, 0, 1], [2, 3, 2, 3]]
    assert rows["flat"] == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 24),
    cols=st.integers(1, 24),
    name=st.sampled_from(["ltr", "rtl", "strided_fi"]),
    curve=st.sampled_from(["esa", "raster", "hilbert"]),
)
def test_grid_full_information(rows, cols, name, curve):
    if rows * cols < 2:
        return
    assert full_information(grid_masks(name, (rows, cols), curve=curve))


@pytest.mark.parametrize("name", PATTERNS)
@pytest.mark.parametrize("step", [0, 1])
@pytest.mark.parametrize(
    "key_grid,query_grid,curve,layout", [*GRID_CASES, ((7, 7), None, "esa", "colocate")]
)
def test_block_layout_is_exact(name, step, key_grid, query_grid, curve, layout):
    bl = grid_blocks(name, step, key_grid, query_grid, curve, layout)
    assert torch.equal(bl.dense(), grid_masks(name, key_grid, query_grid, curve, layout)[step])
    q = bl.q_index[bl.q_index >= 0]
    assert sorted(q.tolist()) == list(range(bl.num_queries))  # every query exactly once
    for keys in bl.k_index:  # no key twice in a group
        keys = keys[keys >= 0].tolist()
        assert len(keys) == len(set(keys))


@pytest.mark.parametrize("name", ["ltr", "rtl", "strided_fi"])
def test_block_layout_cost_is_n_sqrt_n(name):
    costs = []
    for side in (8, 16, 32):
        n = side * side
        bl = [grid_blocks(name, t, (side, side)) for t in (0, 1)]
        costs.append(sum(b.cost for b in bl) / (n * math.sqrt(n)))
    assert max(costs) / min(costs) < 1.6, costs
    assert max(costs) < 6, costs


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: two_step("diagonal", 9), "name='diagonal'.*ltr"),
        (lambda: two_step("ltr", 0), "n=0"),
        (lambda: two_step("ltr", 9, 0), "stride=0"),
        (lambda: two_step("ltr", 9, 10), "stride=10"),
        (lambda: enumerate_grid(4, 4, "zigzag"), "curve='zigzag'.*esa"),
        (lambda: enumerate_grid(0, 4), "grid"),
        (lambda: grid_masks("ltr", (4, 4), (6, 6)), r"query_grid=\(6, 6\)"),
        (lambda: grid_masks("ltr", (4, 4), (8, 8), query_layout="diag"), "query_layout='diag'"),
        (lambda: grid_blocks("ltr", 2, (4, 4)), "step=2"),
    ],
)
def test_bad_input_names_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
