"""Saliency normalisations (paper / code / relative) against explicit loops over the dense
attention matrix and mask, and the `original` method (the authors' objective and optimiser)
against an explicit re-computation; method defaults, Lookahead as an option, run-time
estimate."""

from __future__ import annotations

import pytest
import torch

from ylg.attention.analysis import head_names, project_saliency, saliency_from_probs
from ylg.inversion import Objective, invert, saliency_maps
from ylg.inversion.invert import METHOD_DEFAULTS
from ylg.inversion.losses import ORIGINAL_HEADS, original_heads
from ylg.models import Discriminator, Generator

Z_DIM = 8
YLG8 = {"heads": 8, "layout": "ylg"}  # the paper's 8 heads: RTL 0-3, LTR 4-7


def models_8_heads(seed: int = 0):
    """A 32 px G and D with the ylg layout's 8 heads (8 * 8 = 64 channels at the attention)."""
    torch.manual_seed(seed)
    G = Generator(32, 2, attention=YLG8, width=16, z_dim=Z_DIM).eval()
    D = Discriminator(32, 2, attention=YLG8, width=32).eval()
    with torch.no_grad():
        G.out_bn.weight.fill_(10.0)
        D.attention.gamma.fill_(1.0)
    return G, D


def images(G, n=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, Z_DIM, generator=gen).clamp(-1.5, 1.5)
    y = torch.arange(n) % 2
    with torch.no_grad():
        return z, y, G(z, y)


# ----------------------------------------------------------------------------------------
# Normalisations against loops


def reference_maps(probs, masks, normalization):
    """Explicit loops: probs [B, H, Nq, Nk], masks [H, Nq, Nk] -> [B, H, Nk]."""
    b, h, nq, nk = probs.shape
    out = torch.zeros(b, h, nk, dtype=torch.float64)
    for i in range(b):
        for head in range(h):
            for k in range(nk):
                allowed = [q for q in range(nq) if masks[head, q, k]]
                if normalization == "paper":
                    out[i, head, k] = sum(float(probs[i, head, q, k]) for q in range(nq)) / nq
                elif not allowed:
                    out[i, head, k] = 0.0
                elif normalization == "code":
                    total = sum(float(probs[i, head, q, k]) for q in range(nq))
                    out[i, head, k] = total / len(allowed)
                else:  # relative: attention / the uniform share 1 / n_q of its row
                    vals = [
                        float(probs[i, head, q, k]) * int(masks[head, q].sum()) for q in allowed
                    ]
                    out[i, head, k] = sum(vals) / len(allowed)
    return out


def random_masked_probs(b, h, nq, nk, seed=0):
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(h, nq, nk, generator=gen) < 0.4
    masks[:, :, 0] |= ~masks.any(dim=-1)  # no empty row
    masks[0, :, -1] = False  # a key that no query of head 0 may attend
    masks[0, 0, 0] = True
    logits = torch.randn(b, h, nq, nk, generator=gen) * 2
    probs = torch.softmax(logits.masked_fill(~masks, float("-inf")), dim=-1)
    return probs, masks


@pytest.mark.parametrize("normalization", ["paper", "code", "relative"])
def test_normalisations_match_explicit_loops(normalization):
    probs, masks = random_masked_probs(2, 3, 12, 9)
    maps = saliency_from_probs(probs, (3, 3), normalization, masks)
    ref = reference_maps(probs, masks, normalization).view(2, 3, 3, 3).float()
    torch.testing.assert_close(maps, ref)
    # Without masks the non-zero pattern of the probabilities is used (the original code's
    # count_nonzero): the same here, as no allowed probability underflows.
    torch.testing.assert_close(saliency_from_probs(probs, (3, 3), normalization), maps)


def test_uniform_attention_within_the_mask_is_flat_only_when_relative():
    _, masks = random_masked_probs(1, 2, 16, 9, seed=3)
    uniform = masks.float() / masks.float().sum(-1, keepdim=True)  # [H, Nq, Nk]
    probs = uniform[None]
    rel = saliency_from_probs(probs, (3, 3), "relative", masks)
    seen = masks.any(dim=1).view(2, 3, 3)
    torch.testing.assert_close(rel[0][seen], torch.ones(int(seen.sum())))
    # The paper's mean is not flat: it follows how many queries see each key.
    paper = saliency_from_probs(probs, (3, 3), "paper", masks)
    assert paper[0][seen].std() > 0.1 * paper[0][seen].mean()
    # Nor is the authors' `code` map: it is mean_{q sees k} 1 / n_q, a function of the mask.
    code = saliency_from_probs(probs, (3, 3), "code", masks)
    n_q = masks.float().sum(-1)  # [H, Nq]
    for h in range(2):
        for k in range(9):
            qs = masks[h, :, k].nonzero().flatten()
            if len(qs):
                ref = (1 / n_q[h, qs]).mean()
                torch.testing.assert_close(code[0, h].flatten()[k], ref)
    assert code[0][seen].std() > 0.05 * code[0][seen].mean()


def test_saliency_maps_code_normalisation_on_d_uses_its_masks():
    G, D = models_8_heads()
    _, y, x = images(G)
    with torch.no_grad():
        _, probs = D(x, y, return_attention=True)  # [2, 8, 256, 64]
    masks = D.attention.masks(16, 16)
    heads = [0, 5]  # one RTL and one LTR head, one image: the loops are slow
    for norm in ("paper", "code", "relative"):
        got = saliency_maps(D, x[:1], normalization=norm, heads=heads)
        ref = reference_maps(probs[:1, heads], masks[heads], norm).view(1, 2, 8, 8).float()
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)
    sel = saliency_maps(D, x, normalization="code", heads=[0, 3])
    torch.testing.assert_close(sel, saliency_maps(D, x, normalization="code")[:, [0, 3]])
    with pytest.raises(ValueError, match="normalization='mean'"):
        saliency_maps(D, x, normalization="mean")
    with pytest.raises(ValueError, match=r"heads=\[9\]"):
        saliency_maps(D, x, heads=[9])


def test_heads_0_to_3_are_the_rtl_heads_of_the_ylg_layout():
    _, D = models_8_heads()
    assert original_heads(D.attention) == ORIGINAL_HEADS == (0, 1, 2, 3)
    names = head_names(D.attention)
    assert names[:4] == ["0: RTL step 0", "1: RTL step 1", "2: RTL step 0", "3: RTL step 1"]
    assert names[4:] == ["4: LTR step 0", "5: LTR step 1", "6: LTR step 0", "7: LTR step 1"]
    dense = Discriminator(32, 2, attention={"heads": 1, "layout": "dense"}, width=8)
    with pytest.raises(ValueError, match="RTL heads"):
        original_heads(dense.attention)


# ----------------------------------------------------------------------------------------
# The original objective


def test_original_objective_matches_an_explicit_computation():
    G, D = models_8_heads()
    _, y, x = images(G, n=2)
    obj = Objective.prepare("original", D, x)
    with torch.no_grad():
        features = D.features(x)  # [2, C, 16, 16]
    code = saliency_maps(D, x, normalization="code")[:, :4]  # [2, 4, 8, 8]
    assert obj.saliency.shape == (2, 4, 8, 8)
    torch.testing.assert_close(obj.saliency, code)
    # Nearest projection to D0's 16x16 grid, not rescaled: each key cell covers 2x2 cells.
    torch.testing.assert_close(obj.weight, code.repeat_interleave(2, -2).repeat_interleave(2, -1))
    torch.testing.assert_close(obj.weight, project_saliency(code, (16, 16), mean_one=False))

    restarts = 3
    rep = obj.repeat(restarts)
    assert rep.group == restarts
    fake = torch.randn(2 * restarts, 3, 32, 32).clamp(-1, 1)
    with torch.no_grad():
        ff = D.features(fake)
    per_latent, scalar = rep.losses(fake)
    # Reference: per latent sum_h ||T_h * d||_2; the optimised scalar: norms over each
    # image's restarts together (tf.norm over the whole batch of one image's tries).
    ref_scalar = 0.0
    for i in range(2):
        for h in range(4):
            t = obj.weight[i, h]  # [16, 16]
            group = [ff[i * restarts + r] - features[i] for r in range(restarts)]  # [C,16,16]
            ref_scalar += torch.sqrt(sum(((t * d) ** 2).sum() for d in group))
        for r in range(restarts):
            d = ff[i * restarts + r] - features[i]
            ref = sum(torch.linalg.vector_norm(obj.weight[i, h] * d) for h in range(4))
            torch.testing.assert_close(per_latent[i * restarts + r], ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scalar, ref_scalar, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rep(fake), per_latent)


def test_original_runs_the_authors_optimiser_settings():
    assert METHOD_DEFAULTS["original"] == {
        "steps": 1000,
        "lr": 0.07,
        "restarts": 8,
        "lookahead": False,
    }
    assert all(d["lookahead"] for m, d in METHOD_DEFAULTS.items() if m != "original")
    G, D = models_8_heads()
    _, y, x = images(G, n=1)
    result = invert(G, D, x, y, method="original", steps=4)
    assert result.settings == {"steps": 4, "lr": 0.07, "restarts": 8, "lookahead": False}
    assert result.history.shape == (1, 8, 5)
    assert result.saliency.shape == (1, 4, 8, 8)


def test_plain_adam_reference_for_original():
    """invert(original) = plain Adam (lr 0.07) on the coupled scalar, step by step."""
    G, D = models_8_heads()
    _, y, x = images(G, n=1)
    steps, restarts = 3, 2
    result = invert(G, D, x, y, method="original", steps=steps, restarts=restarts, seed=5)
    from ylg.inversion import initial_latents

    z = torch.nn.Parameter(initial_latents(restarts, Z_DIM, 5))
    obj = Objective.prepare("original", D, x).repeat(restarts)
    opt = torch.optim.Adam([z], lr=0.07)
    yy = y.repeat_interleave(restarts)
    for p in list(G.parameters()) + list(D.parameters()):
        p.requires_grad_(False)
    for t in range(steps):
        opt.zero_grad()
        loss, scalar = obj.losses(G(z, yy))
        torch.testing.assert_close(result.history[0, :, t], loss.detach(), rtol=1e-4, atol=1e-6)
        scalar.backward()
        opt.step()


@pytest.mark.parametrize("lookahead", [True, False])
def test_lookahead_is_an_option_for_every_method(lookahead):
    G, D = models_8_heads()
    _, y, x = images(G, n=1)
    a = invert(G, D, x, y, method="pixel", steps=12, restarts=1, lookahead=lookahead)
    b = invert(G, D, x, y, method="pixel", steps=12, restarts=1, lookahead=not lookahead)
    assert a.settings["lookahead"] is lookahead
    # Identical for the first k = 5 steps, different after the first synchronisation.
    torch.testing.assert_close(a.history[..., :5], b.history[..., :5])  # before the sync
    assert not torch.allclose(a.history[..., 6:], b.history[..., 6:])


def test_run_time_estimate_is_called_once_with_a_plausible_value():
    G, D = models_8_heads()
    _, y, x = images(G, n=1)
    seen = []
    result = invert(G, D, x, y, method="pixel", steps=40, restarts=2, on_estimate=seen.append)
    assert len(seen) == 1
    assert 0.2 * result.seconds < seen[0] < 5 * result.seconds
    invert(G, D, x, y, method="pixel", steps=8, restarts=1, on_estimate=seen.append)
    assert len(seen) == 1  # too short to estimate


def test_controls_given_saliency_replaces_d_attention():
    G, D = models_8_heads()
    _, y, x = images(G, n=2)
    uniform = torch.ones(2, 4, 8, 8)
    obj = Objective.prepare("original", D, x, saliency=uniform)
    torch.testing.assert_close(obj.weight, torch.ones(2, 4, 16, 16))
    shuffled = saliency_maps(D, x.flip(0), normalization="code")[:, :4]
    obj2 = Objective.prepare("original", D, x, saliency=shuffled)
    torch.testing.assert_close(obj2.saliency, shuffled)
    with pytest.raises(ValueError, match="saliency must be"):
        invert(G, D, x, y, method="original", steps=2, saliency=torch.ones(3, 4, 8, 8))
