"""YLGJointAttnProcessor in a tiny, randomly initialised SD3Transformer2DModel on CPU."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers import SD3Transformer2DModel  # noqa: E402
from diffusers.models.attention_processor import JointAttnProcessor2_0  # noqa: E402

from ylg.attention.diffusers_processor import YLGJointAttnProcessor  # noqa: E402

TEXT_TOKENS = 5
PATCH = 2


def tiny_sd3(seed: int = 0) -> SD3Transformer2DModel:
    """2 blocks (the first with SD3.5's dual attention, the last context_pre_only), 4 heads
    of dim 8, inner dim 32; latents up to 32 x 32 (16 x 16 patch tokens)."""
    torch.manual_seed(seed)
    return SD3Transformer2DModel(
        sample_size=16,
        patch_size=PATCH,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=16,
        caption_projection_dim=32,
        pooled_projection_dim=16,
        out_channels=4,
        pos_embed_max_size=16,
        dual_attention_layers=(0,),
    ).eval()


def inputs(h: int = 16, w: int = 16, batch: int = 2, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(batch, 4, h, w, generator=g),  # latents [B, C, h, w]
        "encoder_hidden_states": torch.randn(batch, TEXT_TOKENS, 16, generator=g),
        "pooled_projections": torch.randn(batch, 16, generator=g),
        "timestep": torch.tensor([10.0, 500.0][:batch]),
    }


def run(model, processor, x) -> torch.Tensor:
    model.set_attn_processor(processor)
    return model(**x, return_dict=False)[0]


@pytest.fixture(scope="module")
def model():
    return tiny_sd3()


def test_processor_is_set_on_every_attention(model):
    proc = YLGJointAttnProcessor("ylg")
    model.set_attn_processor(proc)
    procs = model.attn_processors
    assert len(procs) == 3  # attn + attn2 of block 0, attn of block 1
    assert all(p is proc for p in procs.values())


@pytest.mark.parametrize("backend", ["reference", "blocks"])
def test_dense_equals_stock_processor(model, backend):
    x = inputs()
    with torch.no_grad():
        stock = run(model, JointAttnProcessor2_0(), x)
        ylg = run(model, YLGJointAttnProcessor("dense", backend=backend), x)
    assert ylg.shape == stock.shape == x["hidden_states"].shape
    torch.testing.assert_close(ylg, stock, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pattern", ["ylg", "strided", "neighborhood"])
def test_sparse_pattern_differs_from_dense(model, pattern):
    x = inputs()
    with torch.no_grad():
        dense = run(model, YLGJointAttnProcessor("dense"), x)
        sparse = run(model, YLGJointAttnProcessor(pattern, radius=1), x)
    assert sparse.shape == dense.shape and torch.isfinite(sparse).all()
    assert (sparse - dense).abs().max() > 1e-3


def test_backends_agree(model):
    x = inputs()
    with torch.no_grad():
        ref = run(model, YLGJointAttnProcessor("ylg", backend="reference"), x)
        blk = run(model, YLGJointAttnProcessor("ylg", backend="blocks"), x)
    torch.testing.assert_close(blk, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "blocks"])
def test_finite_parameter_gradients(backend):
    model = tiny_sd3().train()
    model.set_attn_processor(YLGJointAttnProcessor("ylg", backend=backend))
    out = model(**inputs(), return_dict=False)[0]
    out.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    attn_grads = [g for n, g in grads.items() if ".attn" in n]
    assert attn_grads and all(g is not None for g in attn_grads)
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    assert any(g.abs().sum() > 0 for g in attn_grads)


def test_non_square_grid_from_constructor(model):
    x = inputs(h=16, w=24)  # 8 x 12 patch tokens
    with torch.no_grad():
        stock = run(model, JointAttnProcessor2_0(), x)
        dense = run(model, YLGJointAttnProcessor("dense", grid=(8, 12)), x)
        ylg = run(model, YLGJointAttnProcessor("ylg", grid=(8, 12)), x)
    assert ylg.shape == x["hidden_states"].shape
    torch.testing.assert_close(dense, stock, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="96 image tokens are not a square"):
        run(model, YLGJointAttnProcessor("ylg"), x)
    with pytest.raises(ValueError, match=r"grid=\(8, 8\) has 64 cells"):
        run(model, YLGJointAttnProcessor("ylg", grid=(8, 8)), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pattern": "diagonal"}, "pattern='diagonal'"),
        ({"curve": "zigzag"}, "curve='zigzag'"),
        ({"backend": "triton"}, "backend='triton'"),
        ({"grid": (8, 0)}, r"grid must be None or \(rows, cols\)"),
        ({"radius": -1}, "radius=-1"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YLGJointAttnProcessor(**kwargs)


def test_dense_parameter_gradients_equal_stock():
    grads = []
    for proc in (JointAttnProcessor2_0(), YLGJointAttnProcessor("dense", backend="blocks")):
        model = tiny_sd3().train()
        model.set_attn_processor(proc)
        model(**inputs(), return_dict=False)[0].square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6, msg=name)
