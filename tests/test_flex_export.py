"""FlexAttention export (``mask_mod``, ``flex_block_mask``) against ``grid_mask`` and a dense
masked softmax. CPU only: FlexAttention runs eagerly and forward-only there."""

from __future__ import annotations

import warnings

import pytest
import torch

from ylg.attention import flex_block_mask, grid_mask, mask_mod
from ylg.attention.flex_export import flex_orders

fa = pytest.importorskip("torch.nn.attention.flex_attention")

# (pattern, grid, key_grid, heads, extra_tokens, radius): odd, non-square, 1 x N, pooled keys,
# 1 to 12 heads, 0 to 3 global tokens, every pattern.
CONFIGS = [
    ("ylg", (6, 6), None, 8, 0, 3),
    ("ylg", (5, 7), None, 3, 2, 3),
    ("ylg", (8, 8), (4, 4), 8, 1, 3),
    ("ylg", (1, 9), None, 1, 0, 3),
    ("ylg", (7, 5), None, 12, 3, 3),
    ("strided", (4, 8), (2, 4), 4, 1, 3),
    ("strided", (9, 1), None, 5, 0, 3),
    ("rtl", (5, 5), None, 2, 1, 3),
    ("ltr", (3, 7), None, 6, 0, 3),
    ("dense", (3, 3), None, 1, 1, 3),
    ("neighborhood", (6, 5), None, 2, 1, 1),
    ("neighborhood", (8, 6), (4, 3), 3, 0, 1),
    ("neighborhood", (2, 11), None, 1, 2, 2),
]
PARAMS = ("pattern", "grid", "key_grid", "heads", "extra", "radius")
IDS = [f"{p}-{g[0]}x{g[1]}-k{k}-h{h}-e{e}" for p, g, k, h, e, _ in CONFIGS]


def kwargs(key_grid, heads, extra, radius):
    return dict(heads=heads, key_grid=key_grid, extra_tokens=extra, radius=radius)


def block_dense(num: torch.Tensor, idx: torch.Tensor, kv_blocks: int) -> torch.Tensor:
    """BoolTensor ``[B, H, QB, KB]`` from a BlockMask's (num_blocks, indices) pair."""
    valid = torch.arange(idx.shape[-1]) < num[..., None]  # [B, H, QB, max]
    out = torch.zeros(*num.shape, kv_blocks, dtype=torch.int64)
    out.scatter_add_(-1, idx.long(), valid.long())  # duplicates past num add zeros
    return out > 0


def token_mask(block_mask, nq: int, nk: int) -> torch.Tensor:
    """The token-level mask ``[H, Nq, Nk]`` that FlexAttention computes from ``block_mask``:
    full blocks all True, partial blocks by its mask_mod, other blocks skipped (False)."""
    bq, bk = block_mask.BLOCK_SIZE
    kb = -(-nk // bk)
    partial = block_dense(block_mask.kv_num_blocks, block_mask.kv_indices, kb)[0]
    full = torch.zeros_like(partial)
    if block_mask.full_kv_num_blocks is not None:
        full = block_dense(block_mask.full_kv_num_blocks, block_mask.full_kv_indices, kb)[0]
    assert not (partial & full).any(), "a block is both partial and full"

    def tokens(blocks):  # [H, QB, KB] -> [H, Nq, Nk]
        return blocks.repeat_interleave(bq, 1).repeat_interleave(bk, 2)[:, :nq, :nk]

    h = partial.shape[0]
    mod = fa.create_mask(block_mask.mask_mod, None, h, nq, nk)[0]  # [H, Nq, Nk]
    return tokens(full) | (tokens(partial) & mod)


@pytest.mark.parametrize(
    ("pattern", "grid", "key_grid", "heads", "extra", "radius"), CONFIGS, ids=IDS
)
def test_mask_mod_equals_grid_mask(pattern, grid, key_grid, heads, extra, radius):
    ref = grid_mask(pattern, grid, **kwargs(key_grid, heads, extra, radius))  # [H, Nq, Nk]
    mod = mask_mod(pattern, grid, **kwargs(key_grid, heads, extra, radius))
    h, nq, nk = ref.shape
    assert torch.equal(fa.create_mask(mod, None, h, nq, nk)[0], ref)  # vmapped, 0-d indices
    hh, qq, kk = torch.arange(h), torch.arange(nq), torch.arange(nk)
    assert torch.equal(mod(0, hh[:, None, None], qq[None, :, None], kk[None, None, :]), ref)
    tail = mod(0, hh[:, None], torch.full((1, 1), nq + 5), kk[None, :])  # a padded tail row
    assert tail.shape == (h, nk)


@pytest.mark.parametrize(
    ("pattern", "grid", "key_grid", "heads", "extra", "radius"), CONFIGS, ids=IDS
)
def test_block_mask_equals_reordered_grid_mask(pattern, grid, key_grid, heads, extra, radius):
    ref = grid_mask(pattern, grid, **kwargs(key_grid, heads, extra, radius))
    h, nq, nk = ref.shape
    for block_size in (8, (16, 8)):
        bm, q_order, k_order = flex_block_mask(
            pattern, grid, block_size=block_size, **kwargs(key_grid, heads, extra, radius)
        )
        assert torch.equal(torch.sort(q_order).values, torch.arange(nq))
        assert torch.equal(torch.sort(k_order).values, torch.arange(nk))
        assert torch.equal(q_order[:extra], torch.arange(extra))  # global tokens first
        assert torch.equal(k_order[:extra], torch.arange(extra))
        assert torch.equal(token_mask(bm, nq, nk), ref[:, q_order][:, :, k_order])


@pytest.mark.parametrize(
    ("pattern", "grid", "key_grid", "heads", "extra", "radius"), CONFIGS, ids=IDS
)
def test_flex_attention_forward_equals_reference(pattern, grid, key_grid, heads, extra, radius):
    ref_mask = grid_mask(pattern, grid, **kwargs(key_grid, heads, extra, radius))
    h, nq, nk = ref_mask.shape
    g = torch.Generator().manual_seed(nq * 31 + h)
    q = torch.randn(2, h, nq, 16, generator=g)
    k = torch.randn(2, h, nk, 16, generator=g)
    v = torch.randn(2, h, nk, 24, generator=g)
    logits = (q @ k.transpose(-2, -1)) * 16**-0.5  # [B, h, Nq, Nk]
    want = torch.softmax(logits.masked_fill(~ref_mask, float("-inf")), -1) @ v
    bm, q_order, k_order = flex_block_mask(
        pattern, grid, block_size=8, **kwargs(key_grid, heads, extra, radius)
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "called without torch.compile()" on CPU
        out = fa.flex_attention(q[:, :, q_order], k[:, :, k_order], v[:, :, k_order], block_mask=bm)
    got = out.index_select(2, torch.argsort(q_order))  # [B, h, Nq, Dv], raster order
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def visited_blocks(bm) -> int:
    full = 0 if bm.full_kv_num_blocks is None else int(bm.full_kv_num_blocks.sum())
    return int(bm.kv_num_blocks.sum()) + full


@pytest.mark.parametrize(("pattern", "radius"), [("ylg", 3), ("neighborhood", 2)])
def test_reordering_makes_the_mask_block_sparse(pattern, radius):
    """In raster order nearly every tile has an allowed pair; reordered, far fewer do."""
    grid, heads, bs = (16, 16), 8, 16
    bm, _, _ = flex_block_mask(pattern, grid, heads=heads, radius=radius, block_size=bs)
    raster = mask_mod(pattern, grid, heads=heads, radius=radius)
    raster_bm = fa.create_block_mask(raster, None, heads, 256, 256, device="cpu", BLOCK_SIZE=bs)
    if pattern == "neighborhood":  # raster order already is a band: kept, and sparse
        assert visited_blocks(bm) == visited_blocks(raster_bm) < 0.4 * heads * 16 * 16
    else:
        assert visited_blocks(bm) < 0.75 * visited_blocks(raster_bm)


def test_orders_for_a_pattern_without_summaries_follow_the_curve():
    q_order, k_order = flex_orders("strided", (4, 4), extra_tokens=1)
    assert torch.equal(q_order, k_order)  # unpooled: queries and keys in the same order
    assert q_order[0] == 0


def test_mask_mod_validates_its_arguments():
    with pytest.raises(ValueError, match="pattern='nope'"):
        mask_mod("nope", (4, 4), heads=2)
    with pytest.raises(ValueError, match="heads"):
        flex_block_mask("ylg", (4, 4), heads=0)
