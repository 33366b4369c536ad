"""YLG-SAGAN models: layers against slow references, shapes, variants, D's split, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ylg.models import (
    DISCRIMINATOR_ARCHS,
    GENERATOR_ARCHS,
    VARIANTS,
    Discriminator,
    Generator,
    attention_kwargs,
)
from ylg.models.layers import (
    ConditionalBatchNorm2d,
    DBlock,
    DBlockOptimized,
    GBlock,
    sn_conv2d,
    sn_linear,
)

ATTENTION_VARIANTS = [v for v in VARIANTS if v != "none"]
# Smallest widths for which the 8-head layers divide the attention channels (8 * heads | C).
MIN_WIDTH = {32: (16, 16), 64: (16, 32), 128: (16, 32), 256: (16, 32)}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def models(resolution, variant, num_classes=5, seed=0, **kw):
    gw, dw = MIN_WIDTH[resolution]
    torch.manual_seed(seed)
    G = Generator(resolution, num_classes, variant, width=gw, **kw)
    D = Discriminator(resolution, num_classes, variant, width=dw, **kw)
    return G, D


def randomize_cbn(module: torch.nn.Module, seed: int = 1) -> None:
    """Make the per-class tables differ (they start at gamma=1, beta=0 for every class)."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, ConditionalBatchNorm2d) and m.num_classes:
            with torch.no_grad():
                m.gamma.weight.add_(0.3 * torch.randn(m.gamma.weight.shape, generator=gen))
                m.beta.weight.add_(0.3 * torch.randn(m.beta.weight.shape, generator=gen))


# ------------------------------------------------------------------------------- variants


def test_variant_kwargs():
    assert set(VARIANTS) == {
        "none",
        "sagan",
        "sagan8",
        "ylg",
        "ylg-noesa",
        "ylg-strided",
        "ylg-hilbert",
        "ylg-colocate",
    }
    assert attention_kwargs("none") is None
    assert attention_kwargs("sagan") == {
        "heads": 1,
        "layout": "dense",
        "curve": "esa",
        "query_layout": "flat",
        "pool": True,
    }
    assert attention_kwargs("sagan8")["heads"] == 8
    ylg = attention_kwargs("ylg")
    assert (ylg["layout"], ylg["curve"], ylg["query_layout"], ylg["heads"]) == (
        "ylg",
        "esa",
        "flat",
        8,
    )
    assert attention_kwargs("ylg-noesa") == {**ylg, "curve": "raster"}
    assert attention_kwargs("ylg-strided") == {**ylg, "layout": "strided"}
    assert attention_kwargs("ylg-hilbert") == {**ylg, "curve": "hilbert"}
    assert attention_kwargs("ylg-colocate") == {**ylg, "query_layout": "colocate"}
    attention_kwargs("ylg")["heads"] = 99  # a fresh copy each time
    assert attention_kwargs("ylg")["heads"] == 8
    with pytest.raises(ValueError, match="'ylg2'.*valid: none, sagan"):
        attention_kwargs("ylg2")


def test_variants_share_parameters_and_differ_only_in_masks():
    built = {v: models(32, v, seed=0) for v in VARIANTS}
    G_ylg, D_ylg = built["ylg"]
    for v in ATTENTION_VARIANTS:
        G, D = built[v]
        assert n_params(G) == n_params(G_ylg) and n_params(D) == n_params(D_ylg), v
        assert G.state_dict().keys() == G_ylg.state_dict().keys(), v
        for (name, a), b in zip(G.state_dict().items(), G_ylg.state_dict().values()):
            torch.testing.assert_close(a, b, msg=f"{v}: {name}")  # same seed, same weights
    G_none, D_none = built["none"]
    att_g, att_d = n_params(G_ylg.attention), n_params(D_ylg.attention)
    assert att_g > 0 and n_params(G_none) == n_params(G_ylg) - att_g
    assert n_params(D_none) == n_params(D_ylg) - att_d
    assert G_none.attention is None and D_none.attention is None
    # The masks do differ: ESA vs raster vs strided vs dense.
    masks = {v: built[v][0].attention.masks(16, 16) for v in ATTENTION_VARIANTS}
    assert masks["sagan"].all() and masks["sagan8"].all()
    for a, b in [("ylg", "ylg-noesa"), ("ylg", "ylg-strided"), ("ylg", "ylg-hilbert")]:
        assert not torch.equal(masks[a], masks[b]), (a, b)
    assert not masks["ylg"].all()


# --------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_shapes_and_attention_placement(resolution):
    G, D = models(resolution, "ylg")
    gw, dw = MIN_WIDTH[resolution]
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, inputs[0].shape)  # returns None: output unchanged

        return hook

    G.attention.register_forward_hook(record("G"))
    D.attention.register_forward_hook(record("D"))
    z, y = torch.randn(2, 128), torch.tensor([0, 4])
    images, g_probs = G(z, y, return_attention=True)
    assert images.shape == (2, 3, resolution, resolution)
    assert images.abs().max() <= 1
    logits, d_probs = D(images, y, return_attention=True)
    assert logits.shape == (2,)
    ga, da = GENERATOR_ARCHS[resolution], DISCRIMINATOR_ARCHS[resolution]
    g_channels = ga.blocks[[8 * 2**i for i in range(len(ga.blocks))].index(ga.attention)] * gw
    assert seen["G"] == (2, g_channels, ga.attention, ga.attention)
    assert D.features(images).shape == seen["D"]
    assert seen["D"][2:] == (da.attention, da.attention)
    nq, nk = ga.attention**2, (ga.attention // 2) ** 2
    assert g_probs.shape == (2, 8, nq, nk)
    assert d_probs.shape == (2, 8, da.attention**2, (da.attention // 2) ** 2)
    torch.testing.assert_close(g_probs.sum(-1), torch.ones(2, 8, nq))


def test_paper_channels_at_128():
    # tensorflow-gan's SAGAN at gf = df = 64: G blocks 1024, 512, 256, 128, 64 with attention
    # after the 256-channel block at 32x32; D blocks 64, 128 (attention, 32x32), 256, 512,
    # 1024, 1024. Checked at width 16 (channels scale with width).
    G, D = models(128, "sagan")
    assert G.linear.out_features == 16 * 16 * 4 * 4
    assert [b.conv2.out_channels for b in G.blocks] == [256, 128, 64, 32, 16]
    assert G.attention.channels == 64 and G.attention_resolution == 32
    outs = [b.conv2.out_channels for b in list(D.pre) + list(D.post)]
    assert outs == [32, 64, 128, 256, 512, 512] and D.attention.channels == 64
    assert D.feature_channels == 64 and D.embedding_dim == 512


def test_attention_resolution_override():
    G = Generator(32, 0, "sagan", width=16, attention_resolution=32)
    assert G.attention_resolution == 32 and G.attention.channels == 64
    _, probs = G(torch.randn(2, 128), return_attention=True)
    assert probs.shape == (2, 1, 1024, 256)
    with pytest.raises(ValueError, match="attention_resolution=4.*8, 16, 32"):
        Generator(32, 0, "sagan", width=16, attention_resolution=4)
    D = Discriminator(32, 0, "sagan", width=16, attention_resolution=8)
    assert D.features(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 8, 8)


# ------------------------------------------------------------------ discriminator structure


def test_discriminator_split_and_class_scores():
    G, D = models(32, "ylg", num_classes=5)
    with torch.no_grad():
        D.attention.gamma.fill_(0.7)  # make the attention matter
        D.linear.parametrizations.weight.original.mul_(3)
    D.eval()
    x = torch.randn(3, 3, 32, 32).clamp(-1, 1)
    y = torch.tensor([0, 3, 4])
    with torch.no_grad():
        logits, probs = D(x, y, return_attention=True)
        h = D.features(x)
        attended, probs2 = D.attention(h, return_attention=True)
        torch.testing.assert_close(D.head(attended, y), logits)
        torch.testing.assert_close(D(x, y), logits)
        torch.testing.assert_close(probs, probs2)
        # Probabilities live on the mask only and sum to 1 per query.
        mask = D.attention.masks(16, 16)  # [heads, Nq, Nk]
        assert (probs[:, ~mask] == 0).all()
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs[..., 0]))
        # class_scores: the projection term of every class; logits differ by exactly that.
        scores = D.class_scores(x)  # [B, classes]
        assert scores.shape == (3, 5)
        y2 = torch.tensor([1, 1, 2])
        torch.testing.assert_close(
            D(x, y) - D(x, y2), scores[torch.arange(3), y] - scores[torch.arange(3), y2]
        )
        # Slow reference of the projection: linear(h) + <embed(y), h>.
        pooled = attended
        for block in D.post:
            pooled = block(pooled)
        pooled = F.relu(pooled).sum((2, 3))
        ref = D.linear(pooled)[:, 0] + (D.embed(y) * pooled).sum(1)
        torch.testing.assert_close(logits, ref)


def test_unconditional_models():
    G, D = models(32, "sagan", num_classes=0)
    assert D.embed is None
    G.eval()
    D.eval()  # no power-iteration updates between the two calls
    z = torch.randn(2, 128)
    with torch.no_grad():
        a = G(z)
        b = G(z, torch.tensor([7, 9]))  # labels are ignored
    torch.testing.assert_close(a, b)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(D(x), D(x, None))
    with pytest.raises(ValueError, match="conditional"):
        D.class_scores(x)


def test_conditional_generator_uses_labels():
    G, _ = models(32, "none", num_classes=5)
    G.eval()
    z = torch.randn(1, 128).expand(2, -1)
    with torch.no_grad():
        same = G(z, torch.tensor([1, 2]))
        torch.testing.assert_close(same[0], same[1])  # identical tables at init
        randomize_cbn(G)
        differ = G(z, torch.tensor([1, 2]))
        again = G(z, torch.tensor([1, 1]))
    assert (differ[0] - differ[1]).abs().max() > 1e-3
    torch.testing.assert_close(again[0], again[1])
    torch.testing.assert_close(differ[0], again[0])


# ------------------------------------------------------------------- layers vs references


def test_conditional_batch_norm_matches_formula():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(6, num_classes=4)
    randomize_cbn(cbn)
    x, y = torch.randn(5, 6, 3, 3) * 2 + 1, torch.tensor([0, 3, 3, 1, 2])
    out = cbn(x, y)
    mean = x.mean((0, 2, 3), keepdim=True)
    var = x.var((0, 2, 3), unbiased=False, keepdim=True)
    ref = (x - mean) / torch.sqrt(var + 1e-3)
    ref = ref * cbn.gamma.weight[y][:, :, None, None] + cbn.beta.weight[y][:, :, None, None]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    plain = ConditionalBatchNorm2d(6, num_classes=0)
    assert plain.bn.affine and plain.bn.eps == 1e-3
    torch.testing.assert_close(plain(x), (x - mean) / torch.sqrt(var + 1e-3), atol=1e-5, rtol=0)


def test_blocks_match_the_original_operation_order():
    # The shortcuts run the 1x1 conv on the smaller tensor; the original order must agree.
    torch.manual_seed(0)
    up = GBlock(4, 6, num_classes=3).eval()
    randomize_cbn(up)
    with torch.no_grad():
        for bn in (up.bn1.bn, up.bn2.bn):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
    x, y = torch.randn(2, 4, 5, 5), torch.tensor([2, 0])
    with torch.no_grad():
        h = F.interpolate(F.relu(up.bn1(x, y)), scale_factor=2)
        h = up.conv2(F.relu(up.bn2(up.conv1(h), y)))
        ref = h + up.shortcut(F.interpolate(x, scale_factor=2))
        torch.testing.assert_close(up(x, y), ref, atol=1e-5, rtol=1e-5)

        down = DBlock(4, 6, downsample=True).eval()
        x = torch.randn(2, 4, 8, 8)
        h = F.avg_pool2d(down.conv2(F.relu(down.conv1(F.relu(x)))), 2)
        ref = h + F.avg_pool2d(down.shortcut(x), 2)  # conv1x1 then pool, as tensorflow-gan
        torch.testing.assert_close(down(x), ref, atol=1e-5, rtol=1e-5)

        same = DBlock(6, 6, downsample=False).eval()
        assert same.shortcut is None
        x = torch.randn(2, 6, 4, 4)
        torch.testing.assert_close(same(x), x + same.conv2(F.relu(same.conv1(F.relu(x)))))

        first = DBlockOptimized(3, 6).eval()
        x = torch.randn(2, 3, 8, 8)
        ref = F.avg_pool2d(first.conv2(F.relu(first.conv1(x))), 2) + first.shortcut(
            F.avg_pool2d(x, 2)
        )
        torch.testing.assert_close(first(x), ref)


def test_glorot_init_and_spectral_norm():
    torch.manual_seed(0)
    conv = sn_conv2d(8, 16, 3)
    w = conv.parametrizations.weight.original
    bound = (6 / (8 * 9 + 16 * 9)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert w.detach().std() == pytest.approx(
        bound / 3**0.5, rel=0.1
    )  # uniform(-b, b) has std b/sqrt3
    assert (conv.bias == 0).all()
    # A few training-mode forwards: power iteration converges, the used weight has sigma 1.
    lin = sn_linear(12, 7)
    with torch.no_grad():
        lin.parametrizations.weight.original.mul_(5)
        for _ in range(30):
            lin(torch.randn(2, 12))
    lin.eval()
    sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
    assert sigma == pytest.approx(1.0, abs=1e-3)
    sigma = torch.linalg.matrix_norm(conv.weight.detach().reshape(16, -1), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.05)  # 15 iterations at registration


def test_gradients_reach_every_parameter():
    G, D = models(32, "ylg", num_classes=3)
    with torch.no_grad():
        G.attention.gamma.fill_(0.5)
        D.attention.gamma.fill_(0.5)
    z, y = torch.randn(4, 128), torch.tensor([0, 1, 2, 1])
    loss = D(G(z, y), y).mean()  # not the hinge: its relu may be 0 on every sample
    loss.backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------- errors


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"resolution=48.*32, 64, 128, 256"):
        Generator(48, 10)
    with pytest.raises(ValueError, match=r"resolution=100"):
        Discriminator(100, 10)
    with pytest.raises(ValueError, match="'ylg-fast'.*valid"):
        Generator(32, 10, "ylg-fast", width=16)
    with pytest.raises(ValueError, match="num_classes"):
        Discriminator(32, -1, width=16)
    with pytest.raises(ValueError, match=r"generator at 16x16 \(32 channels = 4 \* width=8\)"):
        Generator(32, 0, "ylg", width=8)
    with pytest.raises(ValueError, match=r"discriminator at 32x32 \(16 channels = 2 \* width=8"):
        Discriminator(64, 0, "ylg", width=8)
    G, D = models(32, "none", num_classes=10)
    z, x = torch.randn(2, 128), torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"label 10 is out of range.*\[0, 10\)"):
        G(z, torch.tensor([3, 10]))
    with pytest.raises(ValueError, match=r"label -1 is out of range"):
        D(x, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="required"):
        G(z)
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        D(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="int64"):
        G(z, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"z must have shape \[B, 128\], got \(2, 64\)"):
        G(torch.randn(2, 64), torch.tensor([1, 2]))
    with pytest.raises(
        ValueError, match=r"x must have shape \[B, 3, 32, 32\], got \(2, 3, 64, 64\)"
    ):
        D(torch.zeros(2, 3, 64, 64), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="attention='none'"):
        G(z, torch.tensor([1, 2]), return_attention=True)
    with pytest.raises(ValueError, match="attention='none'"):
        D(x, torch.tensor([1, 2]), return_attention=True)


def test_custom_attention_dict_and_none():
    G = Generator(32, 0, {"heads": 2, "layout": "dense"}, width=16)
    assert G.attention_variant == "custom" and G.attention.heads == 2
    _, probs = G(torch.randn(2, 128), return_attention=True)
    assert probs.shape == (2, 2, 256, 64)
    assert Generator(32, 0, None, width=16).attention is None
    D = Discriminator(32, 0, "sagan", width=16, attention_backend="reference")
    assert D.attention.backend == "reference"
