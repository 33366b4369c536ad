"""YLG attention on any token grid: grid_mask, grid_attention and YLGSelfAttention.

Reference-first: the truth is a dense masked softmax written here over ``grid_mask``'s mask;
every backend's output, probabilities and q/k/v gradients are compared with it in float64
(within 1e-10), float32 (within 1e-5) and bfloat16 (against the float32 truth, within 5e-2).
"""

from __future__ import annotations

import random
import re

import pytest
import torch
import torch.nn.functional as F

from ylg.attention import (
    YLGAttention2d,
    YLGSelfAttention,
    flex_block_mask,
    grid_attention,
    grid_head_specs,
    grid_mask,
)
from ylg.attention.grid import neighborhood_blocks, neighborhood_tile
from ylg.patterns import grid_masks

BACKENDS = ["reference", "blocks"]

# (pattern, grid, key_grid, heads, extra_tokens, radius): odd, non-square, 1xN and Nx1 grids,
# pooled keys, 1 to 12 heads, global tokens.
CASES = [
    ("ylg", (5, 7), None, 8, 0, 3),
    ("ylg", (1, 9), None, 3, 1, 3),
    ("ylg", (6, 10), (3, 5), 12, 2, 3),
    ("strided", (7, 5), None, 5, 0, 3),
    ("rtl", (4, 6), (2, 3), 2, 1, 3),
    ("ltr", (9, 1), None, 1, 0, 3),
    ("dense", (3, 4), None, 6, 3, 3),
    ("dense", (4, 4), (2, 2), 2, 0, 3),
    ("neighborhood", (7, 9), None, 4, 1, 2),
    ("neighborhood", (8, 6), (4, 3), 2, 0, 1),
    ("neighborhood", (1, 1), None, 1, 2, 0),
]


def _random_cases(count: int, seed: int = 21):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        pattern = rng.choice(["ylg", "strided", "rtl", "ltr", "dense", "neighborhood"])
        kh, kw = rng.randint(1, 6), rng.randint(1, 6)
        fh, fw = rng.choice([(1, 1), (1, 1), (2, 2), (1, 2)])
        key_grid = None if (fh, fw) == (1, 1) else (kh, kw)
        out.append(
            (pattern, (kh * fh, kw * fw), key_grid, rng.randint(1, 12), rng.randint(0, 3), 1)
        )
    return out


def _truth(q, k, v, mask, scale):
    """The dense masked softmax: output and probabilities."""
    logits = torch.matmul(q, k.transpose(-2, -1)) * scale  # [B, h, Nq, Nk]
    probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.matmul(probs, v), probs


def _inputs(batch, heads, nq, nk, d, dv, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, heads, n, dim, generator=g, dtype=torch.float64)
        .to(dtype)
        .requires_grad_()
        for n, dim in [(nq, d), (nk, d), (nk, dv)]
    ]


def _loss_and_grads(out, probs, inputs):
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * w).sum() + (0 if probs is None else (probs * probs).sum())
    return torch.autograd.grad(loss, inputs)


def _check(case, backend, dtype, tol, batch=2, d=5, dv=3, seed=0):
    pattern, grid, key_grid, heads, extra, radius = case
    mask = grid_mask(
        pattern, grid, heads=heads, key_grid=key_grid, extra_tokens=extra, radius=radius
    )
    nq, nk = mask.shape[1:]
    low = _inputs(batch, heads, nq, nk, d, dv, dtype, seed)
    inputs = [t.detach().double().requires_grad_() for t in low]  # the truth's, in float64
    kwargs = dict(grid=grid, pattern=pattern, key_grid=key_grid, extra_tokens=extra)
    for with_probs in (False, True):
        want_out, want_probs = _truth(*inputs, mask, d**-0.5)
        want_grads = _loss_and_grads(want_out, want_probs if with_probs else None, inputs)
        result = grid_attention(
            *low, **kwargs, radius=radius, backend=backend, return_attention=with_probs
        )
        out, probs = result if with_probs else (result, None)
        assert out.dtype == dtype and out.shape == (batch, heads, nq, dv)
        grads = _loss_and_grads(out, probs, low)
        torch.testing.assert_close(out.double(), want_out, atol=tol, rtol=tol)
        if with_probs:
            torch.testing.assert_close(probs.double(), want_probs, atol=tol, rtol=tol)
            assert torch.all(probs[:, ~mask] == 0)
        for got, want, name in zip(grads, want_grads, "qkv"):
            torch.testing.assert_close(
                got.double(), want, atol=tol, rtol=tol, msg=lambda m, n=name: f"d{n}: {m}"
            )


# ----------------------------------------------------------------------------- backends


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES + _random_cases(12), ids=str)
def test_every_backend_is_the_dense_masked_softmax_float64(case, backend):
    _check(case, backend, torch.float64, 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d,dv", [(4, 4), (16, 8), (64, 64), (128, 32)])
def test_float32_any_head_dim(backend, d, dv):
    _check(("ylg", (6, 5), None, 8, 1, 3), backend, torch.float32, 1e-5, batch=1, d=d, dv=dv)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [CASES[2], CASES[8]], ids=str)
def test_bfloat16(case, backend):
    """bfloat16 (8-bit mantissa) against the float64 truth of the same bf16-rounded inputs."""
    _check(case, backend, torch.bfloat16, 5e-2, batch=1, d=16, dv=16)


def test_auto_picks_a_backend_and_matches():
    q, k, v = _inputs(1, 2, 16, 16, 4, 4, torch.float64)
    out = grid_attention(q, k, v, grid=(4, 4), pattern="rtl")
    want = grid_attention(q, k, v, grid=(4, 4), pattern="rtl", backend="blocks")
    torch.testing.assert_close(out, want, atol=1e-12, rtol=1e-12)


def test_scale_default_and_explicit():
    q, k, v = _inputs(1, 2, 10, 10, 9, 3, torch.float64)
    mask = grid_mask("ltr", (2, 5), heads=2)
    for scale, s in [(None, 9**-0.5), (1.0, 1.0)]:
        out = grid_attention(q, k, v, grid=(2, 5), pattern="ltr", scale=scale, backend="blocks")
        torch.testing.assert_close(out, _truth(q, k, v, mask, s)[0], atol=1e-12, rtol=1e-12)


def test_grid_attention_errors_name_the_bad_value():
    q, k, v = _inputs(1, 2, 10, 10, 4, 4, torch.float32)
    with pytest.raises(ValueError, match=r"Nq=13"):
        grid_attention(q, k, v, grid=(2, 5), extra_tokens=3)
    with pytest.raises(ValueError, match="backend='nope'"):
        grid_attention(q, k, v, grid=(2, 5), backend="nope")
    with pytest.raises(ValueError, match="key_grid=\\(2, 2\\)"):
        grid_mask("ylg", (2, 5), key_grid=(2, 2))
    with pytest.raises(ValueError, match="pattern='fixed'"):
        grid_mask("fixed", (2, 5))
    with pytest.raises(ValueError, match="heads=0"):
        grid_mask("ylg", (2, 5), heads=0)
    with pytest.raises(ValueError, match="radius=-1"):
        grid_mask("neighborhood", (2, 5), radius=-1)


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("case", CASES + _random_cases(12), ids=str)
def test_mask_rows_non_empty_and_global_tokens_all_true(case):
    pattern, grid, key_grid, heads, extra, radius = case
    mask = grid_mask(
        pattern, grid, heads=heads, key_grid=key_grid, extra_tokens=extra, radius=radius
    )
    kg = key_grid or grid
    assert mask.shape == (heads, extra + grid[0] * grid[1], extra + kg[0] * kg[1])
    assert mask.dtype == torch.bool
    assert mask.any(dim=-1).all()
    assert mask[:, :extra].all() and mask[:, :, :extra].all()
    plain = grid_mask(pattern, grid, heads=heads, key_grid=key_grid, radius=radius)
    assert torch.equal(mask[:, extra:, extra:], plain)


@pytest.mark.parametrize("grid,pool", [((8, 8), False), ((7, 7), False), ((8, 6), True)])
def test_ylg_8_heads_is_ylgattention2d_layout(grid, pool):
    """Both are built by the grid core now, so the truth is the documented head order,
    written out from ``ylg.patterns.grid_masks``: RTL 0, RTL 1, RTL 0, RTL 1, LTR 0, ..."""
    layer = YLGAttention2d(64, heads=8, layout="ylg", pool=pool)
    key_grid = (grid[0] // 2, grid[1] // 2) if pool else grid
    rtl, ltr = (grid_masks(name, key_grid, grid) for name in ("rtl", "ltr"))
    order = torch.stack([rtl[0], rtl[1], rtl[0], rtl[1], ltr[0], ltr[1], ltr[0], ltr[1]])
    mask = grid_mask("ylg", grid, heads=8, key_grid=None if key_grid == grid else key_grid)
    assert torch.equal(mask, order)
    assert torch.equal(layer.masks(*grid), order)


# (layout, heads, curve, query_layout, pool, stride): every option YLGAttention2d passes on.
MODULE_CASES = [
    ("ylg", 8, "esa", "colocate", True, None),
    ("ylg", 8, "raster", "colocate", True, None),
    ("strided", 8, "esa", "tile", True, None),
    ("ylg", 8, "esa", "flat", True, 3),
    ("dense", 2, "esa", "colocate", True, None),
    (["rtl", ("ltr", 1), "dense"], 4, "hilbert", "colocate", False, None),
    ([("fixed", 0), ("strided_fi", 1)], 2, "esa", "colocate", True, 2),
]


@pytest.mark.parametrize("case", MODULE_CASES, ids=str)
@pytest.mark.parametrize("backend", ["reference", "blocks"])
def test_ylgattention2d_on_the_grid_core_is_its_masked_softmax(case, backend):
    """YLGAttention2d (through grid_attention) against its block written out by hand: the
    masks from ``ylg.patterns.grid_masks`` per head spec, a dense masked softmax, unscaled."""
    layout, heads, curve, query_layout, pool, stride = case
    torch.manual_seed(0)
    c = 8 * heads * 2
    # eval(): spectral norm takes no power-iteration step per call.
    layer = YLGAttention2d(
        c, heads=heads, layout=layout, curve=curve, query_layout=query_layout, pool=pool,
        stride=stride, backend=backend,
    ).double().eval()  # fmt: skip
    with torch.no_grad():
        layer.gamma.fill_(0.7)
    x = torch.randn(2, c, 8, 6, dtype=torch.float64)
    got, probs = layer(x, return_attention=True)

    kg = (4, 3) if pool else (8, 6)
    masks = []
    for spec in layer._specs:
        if spec == "dense":
            masks.append(torch.ones(48, kg[0] * kg[1], dtype=torch.bool))
        else:
            name, step = spec
            masks.append(grid_masks(name, kg, (8, 6), curve, query_layout, stride)[step])
    mask = torch.stack(masks)  # [heads, Nq, Nk]
    theta, phi, g = layer.theta(x), layer.phi(x), layer.g(x)
    if pool:
        phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
    q = theta.reshape(2, heads, c // 8 // heads, -1).transpose(-2, -1)
    k = phi.reshape(2, heads, c // 8 // heads, -1).transpose(-2, -1)
    v = g.reshape(2, heads, c // 2 // heads, -1).transpose(-2, -1)
    out, want_probs = _truth(q, k, v, mask, 1.0)
    want = x + 0.7 * layer.o(out.transpose(-2, -1).reshape(2, c // 2, 8, 6))
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(probs, want_probs, atol=1e-10, rtol=1e-10)


def test_pattern_may_be_an_explicit_head_list():
    specs = [("rtl", 0), "dense", "ltr"]
    mask = grid_mask(specs, (4, 5), heads=4, extra_tokens=1)
    assert torch.equal(mask[0, 1:, 1:], grid_masks("rtl", (4, 5))[0])
    assert bool(mask[1].all())
    assert torch.equal(mask[2:, 1:, 1:], grid_masks("ltr", (4, 5)))
    with pytest.raises(ValueError, match="gives 4 heads"):
        grid_mask(specs, (4, 5), heads=3)
    with pytest.raises(ValueError, match="layout entry 'diagonal'"):
        grid_mask(["diagonal"], (4, 5), heads=2)


@pytest.mark.parametrize("heads", [1, 2, 3, 4, 7, 12])
@pytest.mark.parametrize("pattern", ["ylg", "strided", "rtl", "ltr"])
def test_head_assignment_rule(pattern, heads):
    specs = grid_head_specs(pattern, heads)
    pairs = -(-heads // 2)
    for i, (name, step) in enumerate(specs):
        assert step == i % 2
        if pattern == "ylg":
            assert name == ("rtl" if i // 2 < -(-pairs // 2) else "ltr")
        else:
            assert name == {"strided": "strided_fi"}.get(pattern, pattern)
    mask = grid_mask(pattern, (5, 6), heads=heads)
    for h, (name, step) in enumerate(specs):
        assert torch.equal(mask[h], grid_masks(name, (5, 6))[step])


@pytest.mark.parametrize(
    "grid,key_grid,radius", [((7, 9), None, 2), ((1, 6), None, 1), ((8, 6), (4, 3), 1)]
)
def test_neighborhood_is_the_clipped_window(grid, key_grid, radius):
    kg = key_grid or grid
    mask = grid_mask("neighborhood", grid, heads=2, key_grid=key_grid, radius=radius)
    assert torch.equal(mask[0], mask[1])
    fh, fw = grid[0] // kg[0], grid[1] // kg[1]
    for qi in range(grid[0] * grid[1]):
        r, c = (qi // grid[1]) // fh, (qi % grid[1]) // fw  # the key cell under the query
        want = torch.zeros(kg, dtype=torch.bool)
        want[max(r - radius, 0) : r + radius + 1, max(c - radius, 0) : c + radius + 1] = True
        assert torch.equal(mask[0, qi], want.flatten()), qi


@pytest.mark.parametrize("grid,key_grid", [((16, 16), None), ((9, 20), None), ((1, 13), None),
                                           ((12, 8), (6, 4))])  # fmt: skip
@pytest.mark.parametrize("radius", [0, 1, 3])
@pytest.mark.parametrize("tile", [None, 1, 3, 7, 8])
def test_neighborhood_blocks_any_tile_read_only_real_keys(grid, key_grid, radius, tile):
    """Every tile size gives the same window mask; a tile reads only real key cells, at most
    ``min(t + 2r, h) * min(t + 2r, w)`` of them."""
    kg = key_grid or grid
    blocks = neighborhood_blocks(grid, kg, radius, tile)
    want = grid_mask("neighborhood", grid, heads=1, key_grid=key_grid, radius=radius)[0]
    assert torch.equal(blocks.dense(), want)
    t = neighborhood_tile(radius) if tile is None else tile
    assert bool((blocks.k_index >= 0).all())
    assert blocks.k_index.shape[1] == min(t + 2 * radius, kg[0]) * min(t + 2 * radius, kg[1])
    # each group reads distinct keys
    assert all(len(set(row.tolist())) == len(row) for row in blocks.k_index)


def test_neighborhood_tile_is_the_next_power_of_two():
    assert [neighborhood_tile(r) for r in range(6)] == [1, 4, 8, 8, 16, 16]


def test_dense_mask_is_all_true():
    assert grid_mask("dense", (3, 5), heads=3, extra_tokens=2).all()


# ----------------------------------------------------------------------------- the module


def _plain_vit_attention(m: YLGSelfAttention, x):
    """timm's ViT Attention, written out, with m's weights."""
    b, n, c = x.shape
    qkv = m.qkv(x).reshape(b, n, 3, m.num_heads, c // m.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    out = F.scaled_dot_product_attention(q, k, v)
    return m.proj(out.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("backend", ["reference", "blocks"])
def test_self_attention_dense_is_plain_vit_attention(backend):
    torch.manual_seed(0)
    m = YLGSelfAttention(24, 3, (3, 5), pattern="dense", extra_tokens=1, backend=backend)
    x = torch.randn(2, 16, 24)
    torch.testing.assert_close(m(x), _plain_vit_attention(m, x), atol=1e-5, rtol=1e-5)


def test_self_attention_backends_agree_with_parameter_gradients():
    torch.manual_seed(0)
    m = YLGSelfAttention(32, 4, (5, 4), pattern="ylg", extra_tokens=2, qk_norm=True).double()
    x = torch.randn(2, 22, 32, dtype=torch.float64)
    grads = {}
    for backend in BACKENDS:
        m.backend = backend
        m.zero_grad()
        y, probs = m(x, return_attention=True)
        (y.square().sum() + probs.square().sum()).backward()
        grads[backend] = [y.detach()] + [p.grad.clone() for p in m.parameters()]
        assert torch.all(probs[:, ~m.mask()] == 0)
    for a, b in zip(grads["reference"], grads["blocks"]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_self_attention_state_dict_is_timm_shaped_and_repr():
    m = YLGSelfAttention(16, 2, (4, 4), pattern="neighborhood", radius=1)
    assert set(m.state_dict()) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    text = repr(m)
    assert "grid=(4, 4)" in text and "pattern='neighborhood'" in text and "radius=1" in text


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(dim=30, num_heads=4, grid=(3, 5)), "dim=30"),
        (dict(dim=32, num_heads=0, grid=(3, 5)), "num_heads=0"),
        (dict(dim=32, num_heads=4, grid=(3, 0)), r"\(3, 0\)"),
        (dict(dim=32, num_heads=4, grid=(3, 5), pattern="x"), "pattern='x'"),
        (dict(dim=32, num_heads=4, grid=(3, 5), extra_tokens=-1), "extra_tokens=-1"),
        (dict(dim=32, num_heads=4, grid=(3, 5), backend="triton"), "backend='triton'"),
    ],
)
def test_self_attention_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YLGSelfAttention(**kwargs)


def test_self_attention_rejects_wrong_token_count():
    m = YLGSelfAttention(32, 4, (3, 5), extra_tokens=1)
    with pytest.raises(ValueError, match=r"N=16.*\(2, 15, 32\)"):
        m(torch.randn(2, 15, 32))


# ----------------------------------------------------------------------------- flex


@pytest.mark.parametrize("case", CASES + _random_cases(6, seed=5), ids=str)
def test_flex_backend_forward_is_the_dense_masked_softmax(case):
    """``backend="flex"`` (FlexAttention over reordered tokens; forward only on CPU)."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    pattern, grid, key_grid, heads, extra, radius = case
    mask = grid_mask(
        pattern, grid, heads=heads, key_grid=key_grid, extra_tokens=extra, radius=radius
    )
    q, k, v = (t.detach() for t in _inputs(2, heads, *mask.shape[1:], 8, 4, torch.float32))
    want, want_probs = _truth(q.double(), k.double(), v.double(), mask, 8**-0.5)
    kwargs = dict(grid=grid, pattern=pattern, key_grid=key_grid, extra_tokens=extra)
    with torch.no_grad():
        got = grid_attention(q, k, v, **kwargs, radius=radius, backend="flex")
        out, probs = grid_attention(
            q, k, v, **kwargs, radius=radius, backend="flex", return_attention=True
        )
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(probs.double(), want_probs, atol=1e-5, rtol=1e-5)


def test_flex_backend_in_the_modules():
    pytest.importorskip("torch.nn.attention.flex_attention")
    torch.manual_seed(3)
    vit = YLGSelfAttention(32, 4, (4, 6), pattern="ylg", extra_tokens=1).eval()
    x = torch.randn(2, 25, 32)
    gan = YLGAttention2d(64, layout="ylg").eval()
    with torch.no_grad():
        gan.gamma.fill_(0.5)
    f = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        want_vit, want_gan = vit(x), gan(f)
        vit.backend = gan.backend = "flex"
        torch.testing.assert_close(vit(x), want_vit, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gan(f), want_gan, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- docs figure


def test_grid_pattern_panels_are_grid_mask_rows(tmp_path):
    from ylg.viz.patterns import grid_pattern_panels, plot_grid_patterns

    specs = [("ylg", {"heads": 8, "extra_tokens": 1}), ("neighborhood", {"radius": 1}),
             ("ylg", {"heads": 2, "key_grid": (3, 4)})]  # fmt: skip
    panels = grid_pattern_panels(specs, (6, 8), (4, 5))
    # ylg x 8: 4 distinct masks (RTL 0, RTL 1, LTR 0, LTR 1, each twice); the window; RTL 0/1
    assert [t.split("\n")[0] for t, _ in panels] == [
        "ylg: heads 0,2", "ylg: heads 1,3", "ylg: heads 4,6", "ylg: heads 5,7",
        "neighborhood: heads 0,1,2,3,4,5,6,7", "ylg: heads 0", "ylg: heads 1",
    ]  # fmt: skip
    mask = grid_mask("ylg", (6, 8), heads=8, extra_tokens=1)
    for (_, keys), h in zip(panels[:4], (0, 1, 4, 5)):
        assert torch.equal(keys.flatten(), mask[h, 1 + 4 * 8 + 5, 1:])
    window = torch.zeros(6, 8, dtype=torch.bool)
    window[3:6, 4:7] = True
    assert torch.equal(panels[4][1], window)
    pooled = grid_mask("ylg", (6, 8), heads=2, key_grid=(3, 4))
    assert panels[5][1].shape == (3, 4)
    assert torch.equal(panels[5][1].flatten(), pooled[0, 4 * 8 + 5])
    out = plot_grid_patterns(panels, (6, 8), (4, 5), tmp_path / "f.png", "t")
    assert out.stat().st_size > 1000


@pytest.mark.parametrize("backend", ["reference", "blocks", "flex"])
@pytest.mark.parametrize("extra", [0, 1])
def test_a_non_finite_key_or_value_reaches_exactly_the_queries_that_see_it(backend, extra):
    """One NaN key row and one inf value entry: a query whose mask includes the bad key gets
    NaN in its row, one that includes the bad value gets NaN in that channel; every other
    output equals the run with finite stand-ins, whatever the backend's block granularity."""
    torch.manual_seed(0)
    grid, heads, d = (8, 8), 8, 16
    n = extra + 64
    q, k, v = (torch.randn(2, heads, n, d) for _ in range(3))
    bad_k, bad_v = extra + 5, extra + 9
    k_bad, v_bad = k.clone(), v.clone()
    k_bad[1, :, bad_k, 2] = float("nan")
    v_bad[1, :, bad_v, 3] = float("inf")
    kw = dict(grid=grid, pattern="ylg", extra_tokens=extra, backend=backend)
    out = grid_attention(q, k_bad, v_bad, **kw)
    clean = grid_attention(q, k, v, **kw)
    m = grid_mask("ylg", grid, heads=heads, extra_tokens=extra)  # [h, Nq, Nk]
    assert torch.equal(out[0], clean[0])  # the other batch element is untouched
    row = m[:, :, bad_k]  # [h, Nq]
    assert torch.equal(out[1].isnan().all(-1), row)
    chan = m[:, :, bad_v] & ~row
    assert torch.equal(out[1, :, :, 3].isnan() & ~row, chan)
    ok = ~(row[..., None] | (chan[..., None] & (torch.arange(d) == 3)))
    assert row.any() and (~row).any() and chan.any()
    torch.testing.assert_close(out[1][ok], clean[1][ok], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(q=[1.0]), "q must be a torch.Tensor, got list"),
        (dict(dtype=torch.int32), "q must be a floating tensor, got dtype torch.int32"),
        (dict(d=0), "q has head dimension 0; it must be >= 1"),
        (dict(k_dtype=torch.float64), "q, k and v must have one dtype"),
        (dict(pattern="neighborhood", query_layout="tile"), "has none, so leave query_layout"),
        (dict(query_layout="bogus"), "query_layout='bogus' is not known"),
    ],
)
def test_bad_inputs_are_one_clear_error(change, message):
    d, dtype = change.pop("d", 4), change.pop("dtype", torch.float32)
    k_dtype = change.pop("k_dtype", dtype)
    q = torch.ones(1, 2, 16, d).to(dtype)
    q, k, v = change.pop("q", q), torch.ones(1, 2, 16, d).to(k_dtype), q
    with pytest.raises(ValueError, match=re.escape(message)):
        grid_attention(q, k, v, grid=(4, 4), **change)


def test_flex_block_mask_names_a_bad_device_and_layout():
    with pytest.raises(ValueError, match="device='gpu' is not a torch device"):
        flex_block_mask("ylg", (4, 4), heads=2, device="gpu")
    with pytest.raises(ValueError, match="query_layout='bogus'"):
        flex_block_mask("neighborhood", (4, 4), heads=2, query_layout="bogus")


class _TimmBlock(torch.nn.Module):
    """timm 1.0's ViT Block, written out: its forward calls attn(x, attn_mask=attn_mask)."""

    def __init__(self, attn, dim):
        super().__init__()
        self.norm1, self.attn = torch.nn.LayerNorm(dim), attn
        self.norm2, self.mlp = torch.nn.LayerNorm(dim), torch.nn.Linear(dim, dim)

    def forward(self, x, attn_mask=None):
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))


def _timm_attention_with_mask(m, x, attn_mask):
    b, n, c = x.shape
    qkv = m.qkv(x).reshape(b, n, 3, m.num_heads, c // m.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return m.proj(out.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_self_attention_takes_timms_call_and_combines_attn_mask(kind):
    torch.manual_seed(0)
    m = YLGSelfAttention(24, 3, (3, 5), pattern="dense", extra_tokens=1)
    x = torch.randn(2, 16, 24)
    keep = torch.rand(2, 1, 16, 16) > 0.3
    keep[..., 0] = True  # every query keeps the class token
    mask = keep if kind == "bool" else torch.zeros(2, 1, 16, 16).masked_fill(~keep, -1e4)
    block = _TimmBlock(m, 24)
    y = block(x, attn_mask=mask)
    ref = x + _timm_attention_with_mask(m, block.norm1(x), mask)
    ref = ref + block.mlp(block.norm2(ref))
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(block(x), block(x, attn_mask=None))  # no mask: the grid path
    # with a sparse pattern, a bool attn_mask and the grid mask are both applied
    s = YLGSelfAttention(24, 3, (3, 5), pattern="ylg", extra_tokens=1)
    _, probs = s(x, attn_mask=keep, return_attention=True)
    assert torch.all(probs[:, ~s.mask()] == 0) and torch.all(probs.masked_fill(keep, 0) == 0)


def test_self_attention_refuses_is_causal_and_bad_masks():
    m = YLGSelfAttention(24, 3, (3, 5), pattern="ylg", extra_tokens=1)
    x = torch.randn(1, 16, 24)
    with pytest.raises(ValueError, match="is_causal=True is not supported"):
        m(x, is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 5\) does not broadcast"):
        m(x, attn_mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="leave a query with no key"):
        m(x, attn_mask=torch.zeros(16, 16, dtype=torch.bool))


def test_huge_finite_values_are_not_taken_for_non_finite_ones():
    """The fast check sums k and v; a sum that overflows must not put NaN anywhere."""
    torch.manual_seed(0)
    q = torch.randn(1, 2, 16, 4)
    k = torch.randn(1, 2, 16, 4)
    v = torch.full((1, 2, 16, 4), 1e37)  # finite, but their sum (128 entries) overflows
    out = grid_attention(q, k, v, grid=(4, 4), pattern="ylg", backend="blocks")
    assert torch.isfinite(out).all()
    ref = grid_attention(q, k, v / 1e30, grid=(4, 4), pattern="ylg", backend="blocks") * 1e30
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=0)
