"""The attention floor as one road: a pattern and its options become one cached, immutable
:class:`~ylg.attention.plan.AttentionPlan`, which every entry point fetches and every backend
reads (built once, whichever asks first)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from ylg import patterns
from ylg.attention import (
    AttentionPlan,
    HeadLayout,
    YLGAttention2d,
    YLGSelfAttention,
    build_layout,
    grid_attention,
    grid_mask,
    head_specs,
    masked_attention,
)
from ylg.attention import plan as plan_module
from ylg.attention.flex_export import flex_block_mask, flex_orders, mask_mod
from ylg.attention.grid import grid_layout
from ylg.attention.grid_spec import GridSpec, grid_spec
from ylg.attention.plan import grid_plan, layout_plan


def _qkv(heads, nq, nk, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, heads, n, 4, generator=g) for n in (nq, nk, nk))


def test_a_spec_is_checked_once_and_names_what_was_asked():
    spec = grid_spec("ylg", (6, 4), heads=3, key_grid=(3, 2), extra_tokens=1)
    assert spec.heads == (("rtl", 0), ("rtl", 1), ("ltr", 0))
    assert (spec.num_heads, spec.num_queries, spec.num_keys) == (3, 25, 7)
    assert spec.grid_only() == dataclasses.replace(spec, extra_tokens=0)
    # YLGAttention2d's named layout and the grid pattern of the same heads are one spec.
    listed = grid_spec(list(head_specs("ylg", 8)), (8, 8), heads=8, key_grid=(4, 4))
    assert listed == grid_spec("ylg", (8, 8), heads=8, key_grid=(4, 4))
    with pytest.raises(ValueError, match="extra_tokens=-1"):
        grid_spec("ylg", (4, 4), heads=2, extra_tokens=-1)


def test_the_plan_is_cached_immutable_and_lazy():
    spec = grid_spec("strided", (7, 3), heads=5, extra_tokens=2, curve="hilbert")
    plan = grid_plan(spec)
    assert grid_plan(GridSpec(**dataclasses.asdict(spec))) is plan  # equal specs, one plan
    assert isinstance(plan, AttentionPlan) and plan.spec == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.spec = None
    assert plan.layout is plan.layout and plan.mask is plan.mask  # built once, then kept
    assert plan.layout.num_queries == 23 and plan.grid_layout.num_queries == 21
    assert plan.mask.shape == (5, 23, 23) and bool(plan.mask[:, :2].all())


def test_every_entry_point_fetches_the_same_plan():
    spec = grid_spec("ylg", (8, 8), heads=8, key_grid=(4, 4))
    plan = grid_plan(spec)
    module = YLGAttention2d(64)
    assert module.head_layout(8, 8) is plan.grid_layout
    assert build_layout("ylg", 8, (8, 8), (4, 4)) is plan.grid_layout
    assert grid_layout("ylg", (8, 8), key_grid=(4, 4)) is plan.grid_layout
    assert layout_plan(plan.grid_layout) is plan  # masked_attention on that layout: this plan
    options = dict(heads=8, key_grid=(4, 4))
    assert mask_mod("ylg", (8, 8), **options) is plan.mask_mod
    pytest.importorskip("torch.nn.attention.flex_attention")
    block_mask, q_order, k_order = flex_block_mask("ylg", (8, 8), **options)
    assert block_mask is plan.block_mask()
    assert torch.equal(q_order, plan.flex_orders[0]) and q_order is not plan.flex_orders[0]
    mask = grid_mask("ylg", (8, 8), **options)
    assert torch.equal(mask, plan.mask) and mask is not plan.mask  # a copy: callers may edit


def test_grid_attention_and_the_modules_run_on_the_plan(monkeypatch):
    """A configuration is built once (pattern blocks, gather indices) across entry points."""
    built = {"blocks": 0, "schedule": 0}
    grid_blocks, schedule_blocks = patterns.grid_blocks, plan_module.schedule_blocks

    def counting_blocks(*args, **kwargs):
        built["blocks"] += 1
        return grid_blocks(*args, **kwargs)

    def counting_schedule(layout):
        built["schedule"] += 1
        return schedule_blocks(layout)

    monkeypatch.setattr(patterns, "grid_blocks", counting_blocks)
    monkeypatch.setattr(plan_module, "schedule_blocks", counting_schedule)
    grid, extra, heads = (5, 9), 2, 3  # a configuration no other test uses
    spec = grid_spec("ylg", grid, heads=heads, extra_tokens=extra)
    assert "layout" not in grid_plan(spec).__dict__
    q, k, v = _qkv(heads, extra + 45, extra + 45)
    for backend in ("reference", "blocks", "blocks"):
        grid_attention(q, k, v, grid=grid, extra_tokens=extra, backend=backend)
    grid_mask("ylg", grid, heads=heads, extra_tokens=extra)
    vit = YLGSelfAttention(12, heads, grid, extra_tokens=extra, backend="blocks")
    vit(torch.randn(1, extra + 45, 12))
    assert built == {"blocks": 3, "schedule": 1}  # RTL 0, RTL 1, LTR 0; one schedule
    assert grid_plan(spec).__dict__["schedule"] is grid_plan(spec).schedule


def test_masked_attention_on_a_plan_layout_equals_grid_attention():
    lay = build_layout(["rtl", ("fixed", 0), "dense"], 4, (6, 6), (3, 3))
    q, k, v = _qkv(4, 36, 9, seed=1)
    for backend in ("reference", "blocks"):
        got = masked_attention(q, k, v, lay, backend, scale=0.5)
        want = grid_attention(
            q, k, v, grid=(6, 6), key_grid=(3, 3), pattern=["rtl", ("fixed", 0), "dense"],
            scale=0.5, backend=backend,
        )  # fmt: skip
        assert torch.equal(got, want)


def test_one_flex_order_for_layouts_and_grid_patterns():
    """``masked_attention(build_layout(...), "flex")`` and ``flex_orders`` share one rule: the
    summary keys of RTL / LTR / fixed heads go last."""
    lay = build_layout([("fixed", 0), "ltr"], 3, (6, 6), (6, 6))
    q_order, k_order = flex_orders([("fixed", 0), "ltr"], (6, 6))
    assert torch.equal(layout_plan(lay).flex_orders[0], q_order)
    assert torch.equal(layout_plan(lay).flex_orders[1], k_order)
    curve = patterns.enumerate_grid(6, 6, "esa")
    assert not torch.equal(k_order, curve)  # summaries moved
    assert torch.equal(k_order.sort().values, torch.arange(36))


def test_a_plain_mask_gets_one_plan_of_its_own():
    masks = torch.rand(2, 6, 5, generator=torch.Generator().manual_seed(0)) < 0.5
    masks[..., 0] = True
    lay = HeadLayout.from_masks(masks)
    plan = layout_plan(lay)
    assert layout_plan(lay) is plan and plan.spec is None
    assert plan.mask is masks and not plan.structured
    assert torch.equal(plan.flex_orders[0], torch.arange(6))
    q, k, v = _qkv(2, 6, 5)
    assert torch.equal(masked_attention(q, k, v, lay, "blocks"), masked_attention(q, k, v, masks))
    twin = copy.deepcopy(lay)  # a copy of a layout with its plan still works
    assert torch.equal(masked_attention(q, k, v, twin, "reference"), masked_attention(q, k, v, lay))
