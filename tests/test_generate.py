"""`ylg generate`: truncation trick, slerp, grids, files and GIFs from a checkpoint;
attention snapshots."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from ylg.generate import generate, sample, slerp, truncated_normal
from ylg.viz.grids import make_grid, to_uint8
from ylg.viz.snapshots import attention_snapshot, key_saliency


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from ylg.training.config import resolve
    from ylg.training.loop import train

    torch.set_num_threads(1)
    cfg = resolve(
        "demo",
        dict(attention="sagan", g_width=2, d_width=2, z_dim=16, batch_size=4, steps=1,
             workers=0, sample_every=100),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("run")
    train(cfg, out, progress=False)
    return out


def test_truncation_resamples_only_the_large_entries():
    raw = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1))
    z = truncated_normal((2000, 16), 1.5, torch.Generator().manual_seed(1))
    assert z.abs().max() <= 1.5
    keep = raw.abs() <= 1.5
    assert torch.equal(z[keep], raw[keep])  # first draws within the threshold stay
    assert not torch.equal(z[~keep], raw[~keep])
    assert torch.equal(truncated_normal((4, 3), None, torch.Generator().manual_seed(2)),
                       torch.randn(4, 3, generator=torch.Generator().manual_seed(2)))  # fmt: skip
    with pytest.raises(ValueError, match="threshold must be > 0"):
        truncated_normal((2, 2), 0.0)


def test_truncated_normal_has_the_truncated_variance():
    # Var of N(0, 1) truncated to [-t, t] = 1 - 2 t phi(t) / (2 Phi(t) - 1)
    t = 1.0
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(t / math.sqrt(2)))
    want = 1 - 2 * t * phi / (2 * big_phi - 1)
    z = truncated_normal((200_000,), t, torch.Generator().manual_seed(0))
    assert abs(z.var().item() - want) < 0.005
    assert abs(z.mean().item()) < 0.005


def test_slerp_endpoints_and_norm():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[2], b)
    torch.testing.assert_close(path.norm(dim=1), torch.full((3,), 3.0))
    torch.testing.assert_close(path[1], torch.tensor([3 / math.sqrt(2)] * 2))


def test_make_grid_places_images():
    imgs = torch.stack([torch.full((3, 2, 3), v) for v in (-1.0, 0.0, 1.0)])  # [3, 3, 2, 3]
    grid = make_grid(imgs, nrow=2, padding=1, pad_value=7)
    assert grid.shape == (3, 2 * 3 + 1, 2 * 4 + 1) and grid.dtype == torch.uint8
    assert (grid[:, 1:3, 1:4] == 0).all() and (grid[:, 1:3, 5:8] == 128).all()
    assert (grid[:, 4:6, 1:4] == 255).all() and (grid[:, 4:6, 5:8] == 7).all()
    assert (grid[:, 0] == 7).all()
    assert torch.equal(to_uint8(torch.tensor([-2.0, -1.0, 0.0, 1.0])),
                       torch.tensor([0, 0, 128, 255], dtype=torch.uint8))  # fmt: skip


def test_key_saliency_is_the_mean_over_queries():
    probs = torch.softmax(torch.randn(2, 3, 5, 16), dim=-1)  # [B, heads, Nq, Nk]
    sal = key_saliency(probs)
    manual = probs.mean(dim=2).reshape(2, 3, 4, 4)
    manual = manual / manual.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(sal, manual)
    pic = attention_snapshot(torch.zeros(2, 3, 8, 8), probs, scale=2)
    # 2 rows of (1 image + 3 heads) tiles of 16 px with 2 px padding
    assert pic.shape == (3, 2 * 18 + 2, 4 * 18 + 2)
    with pytest.raises(ValueError, match="square grid"):
        key_saliency(torch.rand(1, 1, 4, 15))


def test_generate_files_grid_and_gif(run_dir, tmp_path):
    paths = generate(run_dir, tmp_path / "files", n=5, classes=[3, 7], interpolate=3)
    names = sorted(p.name for p in paths)
    assert names[:5] == ["00000-class3.png", "00001-class7.png", "00002-class3.png",
                         "00003-class7.png", "00004-class3.png"]  # fmt: skip
    assert names[5] == "interpolation.gif"
    with Image.open(paths[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    with Image.open(tmp_path / "files" / "interpolation.gif") as gif:
        assert gif.n_frames == 4 * 3  # 4 keyframes x 3 steps, looping
    (grid,) = generate(run_dir, tmp_path / "grid", n=6, grid=True)
    with Image.open(grid) as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)


def test_sample_is_deterministic_and_uses_the_classes(run_dir):
    from ylg.training.checkpoint import load_for_inference

    G = load_for_inference(run_dir).G
    a, ya = sample(G, 4, classes=[2], seed=5)
    b, _ = sample(G, 4, classes=[2], seed=5, batch_size=3)
    assert torch.equal(ya, torch.tensor([2, 2, 2, 2]))
    torch.testing.assert_close(a, b)  # batching does not change the images (eval-mode BN)
    c, _ = sample(G, 4, classes=[2], seed=6)
    assert not torch.equal(a, c)


def test_generate_cli_and_errors(run_dir, tmp_path, capsys):
    from ylg.cli import main

    assert main(["generate", str(run_dir), "--n", "3", "--out", str(tmp_path / "o"),
                 "--truncation", "0"]) == 0  # fmt: skip
    assert len(list((tmp_path / "o").glob("*.png"))) == 3
    assert main(["generate", str(run_dir), "--n", "2", "--out", str(tmp_path / "p"),
                 "--classes", "12"]) == 2  # fmt: skip
    assert "classes [12] out of range; valid: 0..9" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing"), "--out", str(tmp_path / "q")]) == 2
    assert "does not exist" in capsys.readouterr().err
