"""The CPU kernel of the block backend (``backends/block_kernel.py``, its backward written
out) against autograd: float64 gradcheck, the autograd path over the same blocks, the dense
masked softmax, autocast."""

from __future__ import annotations

import pytest
import torch

from ylg.attention import grid_attention
from ylg.attention.backends import block_kernel, blocks
from ylg.attention.block_schedule import key_gather

# (query grid, key grid, global tokens, heads): odd and non-square grids, pooled keys, global
# tokens (their rows read every key: the all-keys bucket), batch 2 below.
CASES = [
    ((6, 10), (3, 5), 0, 8),
    ((5, 7), (5, 7), 1, 8),
    ((8, 8), (4, 4), 2, 4),
    ((4, 14), (2, 7), 1, 2),
]


def _qkv(case, batch=2, d=5, dv=3, dtype=torch.float64, seed=0):
    (gh, gw), (kh, kw), extra, heads = case
    g = torch.Generator().manual_seed(seed)
    shapes = [(extra + gh * gw, d), (extra + kh * kw, d), (extra + kh * kw, dv)]
    return [
        torch.randn(batch, heads, n, m, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
        for n, m in shapes
    ]


def _call(case, backend="blocks", pattern="ylg"):
    grid, key_grid, extra, _ = case
    return lambda q, k, v: grid_attention(
        q, k, v, grid=grid, key_grid=key_grid, extra_tokens=extra, pattern=pattern, backend=backend
    )


def _outputs_and_grads(fn, q, k, v):
    out = fn(q, k, v)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out.float() * weights.float()).sum(), (q, k, v))
    return [out.detach(), *grads]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradcheck_float64(case):
    q, k, v = _qkv(case, batch=1, d=3, dv=2)
    assert torch.autograd.gradcheck(_call(case), (q, k, v), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_kernel_equals_autograd_path_and_dense_reference(case, monkeypatch):
    q, k, v = _qkv(case)
    fn = _call(case)
    got = _outputs_and_grads(fn, q, k, v)
    monkeypatch.setattr(blocks, "CPU_KERNEL", False)
    autograd_path = _outputs_and_grads(fn, q, k, v)
    dense = _outputs_and_grads(_call(case, "reference"), q, k, v)
    for name, a, b, c in zip(("out", "dq", "dk", "dv"), got, autograd_path, dense):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"{name} vs autograd")
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12, msg=f"{name} vs dense")


def test_kernel_is_used_on_the_cpu(monkeypatch):
    calls = []
    real = block_kernel.block_attention
    monkeypatch.setattr(block_kernel, "block_attention", lambda *a: calls.append(1) or real(*a))
    case = CASES[1]
    _call(case)(*_qkv(case))
    assert calls == [1]
    monkeypatch.setattr(blocks, "CPU_KERNEL", False)
    _call(case)(*_qkv(case))
    assert calls == [1]


def test_only_the_grad_that_is_asked_for():
    case = CASES[2]
    q, k, v = _qkv(case)
    k.requires_grad_(False)
    out = _call(case)(q, k, v)
    dq, dv = torch.autograd.grad(out.sum(), (q, v))
    assert dq.shape == q.shape and dv.shape == v.shape and k.grad is None


# (case, whether a bucket's logits are padded in bf16: 31 keys -> 32 columns; see _width)
AUTOCAST_CASES = [(((16, 16), (8, 8), 1, 8), False), (((16, 16), (16, 16), 0, 8), True)]


@pytest.mark.parametrize("case, padded", AUTOCAST_CASES, ids=str)
def test_autocast_runs_in_its_dtype_like_the_autograd_path(case, padded, monkeypatch):
    """Under CPU autocast the kernel casts q, k, v to bf16 as autocast casts the matmuls:
    the same output as the autograd path's, gradients as close to float64 (whole tensors:
    elementwise bf16 bounds test luck); with padded logits, outputs as close too."""
    widths = []
    real_width = block_kernel._width
    monkeypatch.setattr(
        block_kernel,
        "_width",
        lambda bk, dt: widths.append(real_width(bk, dt) > bk.mk) or real_width(bk, dt),
    )
    q, k, v = _qkv(case, batch=1, d=16, dv=16, dtype=torch.float32)
    fn = _call(case)

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return _outputs_and_grads(fn, q, k, v)

    got = run()
    monkeypatch.setattr(blocks, "CPU_KERNEL", False)
    autograd_path = run()
    exact = _outputs_and_grads(fn, *(t.detach().double().requires_grad_() for t in (q, k, v)))
    assert got[0].dtype == autograd_path[0].dtype == torch.bfloat16
    assert any(widths) == padded
    if not padded:
        torch.testing.assert_close(got[0], autograd_path[0], rtol=0, atol=0)
    for name, a, b, e in zip(("out", "dq", "dk", "dv"), got, autograd_path, exact):
        err_a = float((a.double() - e).norm() / e.norm())
        err_b = float((b.double() - e).norm() / e.norm())
        assert err_a <= 1.5 * err_b + 1e-4 and err_a < 0.02, f"{name}: {err_a:.2e} vs {err_b:.2e}"


def _schedule_of(case, pattern, monkeypatch):
    """The block schedule the kernel runs for ``case`` (and the case's outputs and grads)."""
    seen = []
    real = block_kernel._BlockAttention.apply
    monkeypatch.setattr(
        block_kernel._BlockAttention,
        "apply",
        lambda q, k, v, s, c: seen.append(s) or real(q, k, v, s, c),
    )
    got = _outputs_and_grads(_call(case, pattern=pattern), *_qkv(case))
    monkeypatch.undo()
    return seen[0], got


# (case, pattern, whether dk and dv are gathered: the schedule has a KeyGather)
KEY_CASES = [
    (CASES[0], "ylg", True),  # keys gathered once (step 0) and 1 or 64 times (step 1)
    (CASES[1], "ylg", True),  # with the global key, gathered by every group
    (((12, 12), (12, 12), 1, 2), "neighborhood", True),
    (((20, 20), (20, 20), 0, 2), "neighborhood", True),  # five multiplicities
    (((6, 10), (3, 5), 0, 2), "neighborhood", False),  # too many: the scatter-add stays
]


@pytest.mark.parametrize("gather", [True, False], ids=["gather", "scatter"])
@pytest.mark.parametrize("case, pattern, gathered", KEY_CASES, ids=str)
def test_rows_gathered_or_scattered(case, pattern, gathered, gather, monkeypatch):
    """Whichever way the kernel assembles outputs, dq, dk and dv (gathers from the buckets'
    concatenated rows, with sums for repeated keys; or scatters into place), they equal the
    dense masked softmax's in float64."""
    monkeypatch.setattr(block_kernel, "GATHER_ROWS", gather)
    schedule, got = _schedule_of(case, pattern, monkeypatch)
    assert (schedule.keys is not None) == gathered
    dense = _outputs_and_grads(_call(case, "reference", pattern), *_qkv(case))
    for name, a, c in zip(("out", "dq", "dk", "dv"), got, dense):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12, msg=f"{name} vs dense")


def test_key_gather_sums_what_index_add_would():
    """Rows gathered by a KeyGather, with the repeated keys' rows summed, equal ``index_add_``
    of every bucket's rows; padding rows (exact zeros in the kernel) are never read; None
    where a row is gathered by no bucket."""
    first, second = torch.tensor([3, 0, 5, 3, 1]), torch.tensor([3, 5, 0, 2, 4])
    valid = [torch.tensor([True] * 5), torch.tensor([True, True, False, True, True])]
    keys = key_gather([first, None, second], [valid[0], None, valid[1]], num_rows=6)
    assert keys.offsets == (0, None, 5) and keys.total == 10
    assert [tuple(s.shape) for s, _ in keys.sums] == [(1, 2), (1, 3)]  # key 5 twice, 3 thrice
    cat = torch.randn(10, 4, dtype=torch.float64)
    cat[7] = 0  # the padding row
    want = torch.zeros(6, 4, dtype=torch.float64).index_add_(0, torch.cat([first, second]), cat)
    got = cat[keys.source]
    assert not bool((keys.source == 7).any())
    for slots, rows in keys.sums:
        got[rows] = cat[slots.view(-1)].view(*slots.shape, -1).sum(1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    assert key_gather([first], valid[:1], num_rows=6) is None  # keys 2 and 4: no bucket
