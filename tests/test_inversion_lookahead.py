"""Lookahead against a slow, explicit reference (hand-written Adam + slow weights) on a
quadratic, step by step."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from ylg.inversion import Lookahead


def quadratic(dim: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    a = m @ m.T + torch.eye(dim, dtype=torch.float64)  # positive definite
    b = torch.randn(dim, generator=gen, dtype=torch.float64)
    x0 = torch.randn(dim, generator=gen, dtype=torch.float64)
    return a, b, x0


def reference(a, b, x0, steps, lr, k, alpha, betas=(0.9, 0.999), eps=1e-8):
    """Adam on 0.5 x'Ax - b'x, written out, with Lookahead's slow weights every k steps."""
    x = x0.clone()
    slow = x0.clone()
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    trajectory = []
    for t in range(1, steps + 1):
        g = a @ x - b
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat = m / (1 - betas[0] ** t)
        v_hat = v / (1 - betas[1] ** t)
        x = x - lr * m_hat / (v_hat.sqrt() + eps)
        if t % k == 0:
            slow = slow + alpha * (x - slow)
            x = slow.clone()
        trajectory.append(x.clone())
    return trajectory


@pytest.mark.parametrize(("k", "alpha"), [(5, 0.5), (3, 0.8), (1, 0.25)])
def test_lookahead_matches_the_reference_step_by_step(k, alpha):
    a, b, x0 = quadratic()
    lr, steps = 0.1, 23
    ref = reference(a, b, x0, steps, lr, k, alpha)
    x = torch.nn.Parameter(x0.clone())
    opt = Lookahead(torch.optim.Adam([x], lr=lr), k=k, alpha=alpha)
    for t in range(steps):
        opt.zero_grad()
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        opt.step()
        torch.testing.assert_close(x.detach(), ref[t], rtol=1e-10, atol=1e-12)
    # and it actually optimises: closer to the minimiser than at the start
    x_star = torch.linalg.solve(a, b)
    assert (x.detach() - x_star).norm() < (x0 - x_star).norm()


def test_alpha_one_is_the_inner_optimiser_alone():
    a, b, x0 = quadratic(seed=1)
    xs = [torch.nn.Parameter(x0.clone()) for _ in range(2)]
    plain = torch.optim.SGD([xs[0]], lr=0.01, momentum=0.9)
    wrapped = Lookahead(torch.optim.SGD([xs[1]], lr=0.01, momentum=0.9), k=4, alpha=1.0)
    for _ in range(13):
        for x, opt in zip(xs, (plain, wrapped)):
            opt.zero_grad()
            (0.5 * x @ a @ x - b @ x).backward()
            opt.step()
    torch.testing.assert_close(xs[0].detach(), xs[1].detach(), rtol=1e-12, atol=1e-12)


def test_state_dict_round_trip_continues_identically():
    a, b, x0 = quadratic(seed=2)

    def run(x, opt, n):
        for _ in range(n):
            opt.zero_grad()
            (0.5 * x @ a @ x - b @ x).backward()
            opt.step()

    x1 = torch.nn.Parameter(x0.clone())
    o1 = Lookahead(torch.optim.Adam([x1], lr=0.05), k=5, alpha=0.5)
    run(x1, o1, 7)
    state = copy.deepcopy(o1.state_dict())  # torch optimisers share state tensors on load
    x2 = torch.nn.Parameter(x1.detach().clone())
    o2 = Lookahead(torch.optim.Adam([x2], lr=0.05), k=5, alpha=0.5)
    o2.load_state_dict(state)
    run(x1, o1, 6)
    run(x2, o2, 6)
    torch.testing.assert_close(x1.detach(), x2.detach(), rtol=0, atol=0)
    assert o2.steps == 13 and "Lookahead(k=5, alpha=0.5" in repr(o2)


def test_invalid_settings_are_rejected():
    x = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="k must be an int >= 1, got k=0"):
        Lookahead(torch.optim.Adam([x]), k=0)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\], got alpha=1.5"):
        Lookahead(torch.optim.Adam([x]), alpha=1.5)
    assert not math.isnan(Lookahead(torch.optim.Adam([x])).alpha)
