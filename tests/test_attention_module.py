"""YLGAttention2d: semantics, masks, validation, state dict, devices."""

from __future__ import annotations

import pytest
import torch

from ylg import patterns
from ylg.attention import YLGAttention2d, masked_attention


def _randomise(m: YLGAttention2d) -> YLGAttention2d:
    """Non-zero gamma so the attention branch shows up in the output."""
    with torch.no_grad():
        m.gamma.fill_(0.7)
    return m


@pytest.mark.parametrize("layout", ["dense", "ylg", "strided"])
def test_identity_at_init(layout):
    m = YLGAttention2d(64, heads=8, layout=layout)
    assert m.gamma.item() == 0.0
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(m(x), x)


def test_ylg_layout_equals_pattern_masks_in_documented_order():
    for query_layout, curve in [("colocate", "esa"), ("flat", "esa"), ("colocate", "raster")]:
        m = YLGAttention2d(64, layout="ylg", curve=curve, query_layout=query_layout)
        rtl = patterns.grid_masks("rtl", (4, 6), (8, 12), curve=curve, query_layout=query_layout)
        ltr = patterns.grid_masks("ltr", (4, 6), (8, 12), curve=curve, query_layout=query_layout)
        expected = torch.stack([rtl[0], rtl[1], rtl[0], rtl[1], ltr[0], ltr[1], ltr[0], ltr[1]])
        assert torch.equal(m.masks(8, 12), expected)


def test_strided_layout_and_unpooled_grid():
    m = YLGAttention2d(64, layout="strided", pool=False)
    fi = patterns.grid_masks("strided_fi", (6, 6))
    assert torch.equal(m.masks(6, 6), fi.repeat(4, 1, 1))


def test_pattern_name_list_layout():
    m = YLGAttention2d(32, heads=4, layout=["ltr", ("rtl", 1), "dense"])
    ltr = patterns.grid_masks("ltr", (4, 4), (8, 8))
    rtl = patterns.grid_masks("rtl", (4, 4), (8, 8))
    masks = m.masks(8, 8)
    assert torch.equal(masks[:2], ltr) and torch.equal(masks[2], rtl[1]) and masks[3].all()


def test_forward_matches_manual_sagan_computation():
    """Dense 1-head layout against a step-by-step SAGAN non-local block."""
    torch.manual_seed(0)
    m = _randomise(YLGAttention2d(16, heads=1, layout="dense")).eval()
    x = torch.randn(2, 16, 6, 4)
    with torch.no_grad():
        theta = m.theta(x).flatten(2)  # [B, 2, 24]
        phi = torch.nn.functional.max_pool2d(m.phi(x), 2).flatten(2)  # [B, 2, 6]
        g = torch.nn.functional.max_pool2d(m.g(x), 2).flatten(2)  # [B, 8, 6]
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # [B, 24, 6]
        o = (g @ beta.transpose(1, 2)).reshape(2, 8, 6, 4)
        expected = x + m.gamma * m.o(o)
        assert torch.allclose(m(x), expected, atol=1e-6)


@pytest.mark.parametrize("layout", ["ylg", "strided"])
def test_probabilities_zero_outside_mask_rows_sum_to_one(layout):
    torch.manual_seed(1)
    m = _randomise(YLGAttention2d(64, layout=layout)).eval()  # eval: no power iteration
    x = torch.randn(2, 64, 8, 6)
    y, probs = m(x, return_attention=True)
    masks = m.masks(8, 6)
    assert probs.shape == (2, 8, 48, 12)
    assert torch.all(probs[:, ~masks] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 8, 48), atol=1e-6)
    assert bool((probs[:, masks] > 0).all())  # every allowed key gets some weight
    torch.testing.assert_close(m(x), y, atol=1e-5, rtol=1e-5)  # auto (reference at this size)


def test_parameter_count_independent_of_layout():
    counts = {
        layout: sum(p.numel() for p in YLGAttention2d(128, heads=8, layout=layout).parameters())
        for layout in ["dense", "ylg", "strided"]
    }
    counts["dense-1"] = sum(
        p.numel() for p in YLGAttention2d(128, heads=1, layout="dense").parameters()
    )
    # theta, phi: C*C/8 each; g: C*C/2; o: C/2*C; gamma: 1
    assert set(counts.values()) == {128 * 16 * 2 + 128 * 64 * 2 + 1}


def test_state_dict_has_no_masks_and_loads_across_layouts():
    a = _randomise(YLGAttention2d(64, layout="ylg"))
    a(torch.randn(1, 64, 8, 8))  # builds and caches masks
    keys = set(a.state_dict())
    assert not any("mask" in k or "layout" in k for k in keys)
    b = YLGAttention2d(64, heads=8, layout="dense")
    b.load_state_dict(a.state_dict())
    assert b.gamma.item() == pytest.approx(0.7)


def test_empty_mask_row_of_a_pattern_names_its_grid_cell():
    # the causal "fixed" pattern's step 1: its first query sees no summary cell
    m = YLGAttention2d(16, heads=2, layout=["fixed"], pool=False)
    with pytest.raises(ValueError, match=r"head 1: query 0 \(row 0, col 0\) may attend to no"):
        m(torch.randn(1, 16, 4, 4))


def test_validation_errors_name_the_value():
    with pytest.raises(ValueError, match="channels=60"):
        YLGAttention2d(60, heads=8)
    with pytest.raises(ValueError, match="heads=4"):
        YLGAttention2d(64, heads=4, layout="ylg")
    with pytest.raises(ValueError, match="'diagonal'"):
        YLGAttention2d(64, layout="diagonal")
    with pytest.raises(ValueError, match="curve='zigzag'"):
        YLGAttention2d(64, curve="zigzag")
    m = YLGAttention2d(64)
    with pytest.raises(ValueError, match="W=7"):
        m(torch.randn(1, 64, 8, 7))
    with pytest.raises(ValueError, match="backend='cuda-magic'"):
        m.backend = "cuda-magic"
    masks = torch.ones(1, 16, 4, dtype=torch.bool)
    masks[0, 5] = False
    with pytest.raises(ValueError, match="head 0: query 5 may attend to no key"):
        YLGAttention2d(8, heads=1, layout=masks)
    q = torch.randn(1, 1, 16, 2)
    with pytest.raises(ValueError, match="query 5"):
        masked_attention(q, q[:, :, :4], q[:, :, :4], masks)


def test_explicit_mask_layout_matches_functional_reference():
    torch.manual_seed(2)
    masks = torch.rand(2, 16, 16) < 0.3
    masks[:, torch.arange(16), torch.arange(16)] = True
    m = _randomise(YLGAttention2d(16, heads=2, layout=masks, pool=False))
    x = torch.randn(3, 16, 4, 4)
    _, probs = m(x, return_attention=True)
    assert torch.all(probs[:, ~masks] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 2, 16), atol=1e-6)


def test_deepcopy_drops_cached_layouts_and_computes_the_same():
    import copy

    m = _randomise(YLGAttention2d(64, layout="ylg", backend="blocks")).eval()
    x = torch.randn(1, 64, 16, 16)
    y = m(x)
    twin = copy.deepcopy(m)
    # Named layouts live in the grid core's cache, shared (not copied) by every module.
    assert twin.head_layout(16, 16) is m.head_layout(16, 16)
    torch.testing.assert_close(twin(x), y)
    # An explicit mask tensor is cached on the module, and a copy drops that cache.
    masks = m.masks(16, 16).clone()
    e = _randomise(YLGAttention2d(64, layout=masks, backend="blocks")).eval()
    ye = e(x)
    assert len(e._layouts) == 1
    twin = copy.deepcopy(e)
    assert twin._layouts == {}
    torch.testing.assert_close(twin(x), ye)
