"""ylg.inversion: saliency maps, the losses of every method against explicit references,
invert() on a tiny fixed model (loss decreases, pixel inversion recovers G(z*), restarts,
seeds, class search, frozen models) and the validation errors."""

from __future__ import annotations

import pytest
import torch

from ylg.inversion import (
    METHODS,
    Objective,
    initial_latents,
    invert,
    project_saliency,
    psnr,
    saliency_maps,
    ssim,
)
from ylg.inversion.losses import (
    features_loss,
    generator_saliency_loss,
    pixel_loss,
    saliency_heads_loss,
    saliency_loss,
)
from ylg.models import Discriminator, Generator

# Two heads (RTL step 0, LTR step 1) so that the models can be 4 channels wide.
ATT = {"heads": 2, "layout": [("rtl", 0), ("ltr", 1)], "query_layout": "flat"}
Z_DIM = 8


def tiny_models(num_classes: int = 3, attention=ATT, seed: int = 0):
    """A 32 px G and D, 4 channels wide, with a contrastier output and live attention."""
    torch.manual_seed(seed)
    G = Generator(32, num_classes, attention=attention, width=4, z_dim=Z_DIM).eval()
    D = Discriminator(32, num_classes, attention=attention, width=4).eval()
    with torch.no_grad():
        G.out_bn.weight.fill_(10.0)  # untrained G is nearly flat grey; give it contrast
        for model in (G, D):
            if model.attention is not None:
                model.attention.gamma.fill_(1.0)
    return G, D


def targets(G, n: int = 2, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, Z_DIM, generator=gen).clamp(-1.5, 1.5)
    y = torch.arange(n) % max(G.num_classes, 1) if G.num_classes else None
    with torch.no_grad():
        return z, y, G(z, y)


# ----------------------------------------------------------------------------------------
# Saliency


def test_saliency_maps_are_per_head_distributions_matching_d_forward():
    G, D = tiny_models()
    _, y, x = targets(G, n=3)
    maps = saliency_maps(D, x, y)
    assert maps.shape == (3, 2, 8, 8)  # D0 at 16x16, keys pooled to 8x8
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(3, 2))
    # Reference: the probabilities D's own forward returns, mean over queries, raster keys.
    with torch.no_grad():
        _, probs = D(x, y, return_attention=True)  # [3, 2, 256, 64]
    ref = torch.stack(
        [torch.stack([probs[b, h].mean(0).view(8, 8) for h in range(2)]) for b in range(3)]
    )
    torch.testing.assert_close(maps, ref)
    # The label does not change the maps (it enters D after the attention layer).
    torch.testing.assert_close(saliency_maps(D, x, None), maps)
    # Heads differ: RTL and LTR see different keys.
    assert not torch.allclose(maps[:, 0], maps[:, 1])


def test_mask_only_saliency_is_uniform_attention_inside_the_mask():
    from ylg.attention.analysis import mask_only_saliency

    G, D = tiny_models()
    _, _, x = targets(G, n=2)
    rel = mask_only_saliency(D, x, normalization="relative")
    assert torch.allclose(rel, torch.ones_like(rel))  # 1 = uniform within the mask, by def.
    code = mask_only_saliency(D, x, normalization="code", heads=[1])
    masks = D.attention.masks(16, 16).float()  # [heads, Nq, Nk]
    p = masks / masks.sum(-1, keepdim=True)  # uniform weights inside each query's mask
    ref = p.sum(1) / masks.sum(1).clamp_min(1)  # [heads, Nk]: the code normalization
    torch.testing.assert_close(code[0, 0], ref[1].view(8, 8))
    assert torch.equal(code[0], code[1])  # the same map for every image
    learned = saliency_maps(D, x, normalization="code") / mask_only_saliency(D, x)
    assert not torch.allclose(learned, torch.ones_like(learned))  # live attention adds


def test_project_saliency_nearest_and_mean_one():
    maps = torch.zeros(1, 2, 2, 2)
    maps[0, 0, 0, 1] = 1.0  # all mass on key cell (0, 1)
    maps[0, 1] = 0.25  # uniform
    up = project_saliency(maps, (4, 4))
    assert up.shape == (1, 2, 4, 4)
    expected = torch.zeros(4, 4)
    expected[0:2, 2:4] = 4.0  # 16 positions, mean 1: the 4 covered positions hold 4 each
    torch.testing.assert_close(up[0, 0], expected)
    torch.testing.assert_close(up[0, 1], torch.ones(4, 4))
    raw = project_saliency(maps, (4, 4), mean_one=False)
    torch.testing.assert_close(raw[0, 0, 0:2, 2:4], torch.ones(2, 2))


# ----------------------------------------------------------------------------------------
# Losses against explicit formulas


def test_losses_match_explicit_loops():
    torch.manual_seed(3)
    n, c, h, w, heads = 2, 5, 4, 4, 3
    ff, fx = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    weights = torch.rand(n, heads, h, w)
    fake, x = torch.randn(n, 3, 8, 8), torch.randn(n, 3, 8, 8)
    img_w = torch.rand(n, 1, 8, 8)
    for i in range(n):
        d = ff[i] - fx[i]
        assert torch.isclose(features_loss(ff, fx)[i], (d**2).sum() / (c * h * w))
        assert torch.isclose(pixel_loss(fake, x)[i], ((fake[i] - x[i]) ** 2).mean())
        mean_w = weights[i].mean(0)
        ref = sum(((mean_w[p, q] * d[:, p, q]) ** 2).sum() for p in range(h) for q in range(w))
        assert torch.isclose(saliency_loss(ff, fx, mean_w[None, None])[i : i + 1], ref / d.numel())
        ref_heads = sum(((weights[i, k] * d) ** 2).mean() for k in range(heads))
        assert torch.isclose(saliency_heads_loss(ff, fx, weights)[i], ref_heads, rtol=1e-5)
        ref_img = ((img_w[i] * (fake[i] - x[i])) ** 2).mean()
        assert torch.isclose(generator_saliency_loss(fake, x, img_w)[i], ref_img)


def test_uniform_saliency_reduces_to_the_feature_loss():
    torch.manual_seed(4)
    ff, fx = torch.randn(2, 6, 4, 4), torch.randn(2, 6, 4, 4)
    uniform = project_saliency(torch.full((2, 3, 2, 2), 0.25), (4, 4))  # [2, 3, 4, 4] ones
    base = features_loss(ff, fx)
    torch.testing.assert_close(saliency_loss(ff, fx, uniform[:, :1]), base)
    torch.testing.assert_close(saliency_heads_loss(ff, fx, uniform), 3 * base)


def test_objective_weights_come_from_the_targets_saliency():
    G, D = tiny_models()
    _, y, x = targets(G)
    sal = saliency_maps(D, x, y)  # [2, 2, 8, 8]
    heads = Objective.prepare("saliency-heads", D, x)
    torch.testing.assert_close(heads.weight, project_saliency(sal, (16, 16)))
    mean = Objective.prepare("saliency", D, x)
    torch.testing.assert_close(mean.weight, project_saliency(sal.mean(1, keepdim=True), (16, 16)))
    img = Objective.prepare("generator-saliency", D, x)
    assert img.weight.shape == (2, 1, 32, 32)
    assert img.target_features is None
    # At the target itself every loss is zero.
    for method in METHODS:
        assert Objective.prepare(method, D, x)(x).abs().max() < 1e-10


# ----------------------------------------------------------------------------------------
# invert()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_decreases_its_loss(method):
    G, D = tiny_models()
    _, y, x = targets(G)
    result = invert(G, D, x, y, method=method, steps=30, restarts=2, lr=0.05)
    assert result.history.shape == (2, 2, 31)
    assert result.method == method
    assert (result.history[:, :, -1] < 0.8 * result.history[:, :, 0]).all()
    assert torch.isfinite(result.history).all()


def test_pixel_inversion_recovers_the_generated_image():
    G, D = tiny_models()
    z_star, y, x = targets(G)
    with torch.no_grad():
        start = G(initial_latents(2, Z_DIM, seed=0), y)
    result = invert(G, D, x, y, method="pixel", steps=100, restarts=2, lr=0.05)
    recon = result.reconstructions
    for b in range(2):
        assert psnr(x[b], recon[b]) > 35.0
        assert ssim(x[b], recon[b]) > 0.95
        assert ((recon[b] - x[b]) ** 2).mean() < 0.01 * ((start[b] - x[b]) ** 2).mean()
    with torch.no_grad():
        torch.testing.assert_close(recon, G(result.latents, result.labels))
    assert (result.latents - z_star).norm(dim=1).max() < 0.5


def test_best_restart_has_the_lowest_final_loss_and_seed_reproduces():
    G, D = tiny_models()
    _, y, x = targets(G)
    a = invert(G, D, x, y, method="features", steps=6, restarts=3, seed=5)
    b = invert(G, D, x, y, method="features", steps=6, restarts=3, seed=5)
    c = invert(G, D, x, y, method="features", steps=6, restarts=3, seed=6)
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=0)
    torch.testing.assert_close(a.history, b.history, rtol=0, atol=0)
    assert not torch.allclose(a.latents, c.latents)
    finals = a.history[:, :, -1]
    torch.testing.assert_close(a.best, finals.argmin(dim=1))
    torch.testing.assert_close(a.losses, finals.min(dim=1).values)
    # Restarts start from the seeded truncated normal, image-major.
    start = initial_latents(2 * 3, Z_DIM, seed=5).view(2, 3, Z_DIM)
    assert start.abs().max() <= 2.0
    one = invert(G, D, x, y, method="features", steps=1, restarts=3, seed=5, lr=1e-9)
    torch.testing.assert_close(one.latents, start[torch.arange(2), one.best], atol=1e-6, rtol=0)


def test_batching_images_does_not_change_the_result():
    G, D = tiny_models()
    _, y, x = targets(G)
    together = invert(G, D, x, y, method="saliency-heads", steps=8, restarts=2, batch_size=2)
    apart = invert(G, D, x, y, method="saliency-heads", steps=8, restarts=2, batch_size=1)
    torch.testing.assert_close(together.history, apart.history, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(together.latents, apart.latents, rtol=1e-4, atol=1e-5)


def test_unknown_class_is_searched_over_the_top_k_projection_scores():
    G, D = tiny_models(num_classes=4)
    _, _, x = targets(G)
    result = invert(G, D, x, None, method="pixel", steps=4, restarts=2, top_k=3)
    with torch.no_grad():
        top = D.class_scores(x).topk(3, dim=1).indices  # [2, 3]
    torch.testing.assert_close(result.restart_labels, top.repeat_interleave(2, dim=1))
    assert result.history.shape == (2, 6, 5)
    rows = torch.arange(2)
    torch.testing.assert_close(result.labels, result.restart_labels[rows, result.best])


def test_models_are_left_untouched():
    G, D = tiny_models()
    _, y, x = targets(G)
    G.train()  # the caller's modes and flags are restored afterwards
    D.attention.theta.requires_grad_(False)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (G, D)]
    flags = [p.requires_grad for m in (G, D) for p in m.parameters()]
    invert(G, D, x, y, method="saliency-heads", steps=3, restarts=2)
    for model, state in zip((G, D), before):
        after = model.state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state)  # SN u/v, BN stats
    assert G.training and all(m.training for m in G.modules())
    assert not D.training
    assert [p.requires_grad for m in (G, D) for p in m.parameters()] == flags


def test_unconditional_models_and_no_discriminator_for_pixel():
    G, D = tiny_models(num_classes=0)
    _, y, x = targets(G)
    assert y is None
    result = invert(G, None, x, None, method="pixel", steps=5, restarts=2)
    assert result.labels is None and result.restart_labels is None
    assert result.saliency is None
    result = invert(G, D, x, None, method="saliency", steps=2, restarts=1)
    assert result.saliency.shape == (2, 2, 8, 8)


def test_bad_inputs_name_what_is_wrong():
    G, D = tiny_models()
    _, y, x = targets(G)
    with pytest.raises(ValueError, match="method 'bogus' is not known; valid: pixel"):
        invert(G, D, x, y, method="bogus", steps=1)
    with pytest.raises(ValueError, match=r"class 7 is out of range.*0\.\.2"):
        invert(G, D, x, torch.tensor([0, 7]), method="pixel", steps=1)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        invert(G, D, x, y, steps=0)
    with pytest.raises(ValueError, match="images are 16x16 but the generator makes 32x32"):
        invert(G, D, x[..., :16, :16], y, steps=1)
    with pytest.raises(ValueError, match=r"labels must be an int or have shape \[2\]"):
        invert(G, D, x, torch.tensor([0, 1, 2]), steps=1)
    Gu, _ = tiny_models(num_classes=0)
    with pytest.raises(ValueError, match="generator is unconditional"):
        invert(Gu, None, x, y, method="pixel", steps=1)
    G0, D0 = tiny_models(attention=None)
    for method in ("saliency", "saliency-heads", "generator-saliency"):
        with pytest.raises(ValueError, match="attention layer"):
            invert(G0, D0, x, y, method=method, steps=1)
    with pytest.raises(ValueError, match="attention layer"):
        saliency_maps(D0, x, y)
    invert(G0, D0, x, y, method="features", steps=1, restarts=1)  # no attention needed
    one_label = invert(G, D, x, 1, method="pixel", steps=1, restarts=1)  # an int for all
    assert one_label.labels.tolist() == [1, 1]


def test_quality_metrics_match_their_definitions():
    a = torch.zeros(3, 16, 16)
    b = a + 0.2  # 0.1 in [0, 1] units everywhere: MSE 0.01, PSNR 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, a) == float("inf")
    assert ssim(a, a) == pytest.approx(1.0)
    torch.manual_seed(0)
    noise = torch.rand(3, 16, 16) * 2 - 1
    assert ssim(noise, -noise) < 0.0 < ssim(noise, (noise + 0.05).clamp(-1, 1))
    assert psnr(torch.stack([a, a]), torch.stack([b, a])) == [pytest.approx(20.0), float("inf")]


@pytest.mark.gpu
def test_cuda_inversion_with_and_without_bf16_autocast():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    G, D = tiny_models()
    _, y, x = targets(G)
    cpu = invert(G, D, x, y, method="saliency-heads", steps=20, restarts=2)
    G, D = G.cuda(), D.cuda()
    fp32 = invert(G, D, x, y, method="saliency-heads", steps=20, restarts=2)
    bf16 = invert(G, D, x, y, method="saliency-heads", steps=20, restarts=2, amp=True)
    torch.testing.assert_close(fp32.history[..., 0], cpu.history[..., 0], rtol=1e-3, atol=1e-6)
    for r in (fp32, bf16):
        assert (r.history[:, :, -1] < 0.8 * r.history[:, :, 0]).all()
        assert r.latents.device.type == "cpu" and torch.isfinite(r.history).all()
