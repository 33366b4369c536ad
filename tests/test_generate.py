"""`ylg generate`: truncation trick, slerp, grids, files and GIFs from a checkpoint;
attention snapshots."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ylg.generate import (
    generate,
    gif_scale_for,
    parse_seeds,
    resolve_classes,
    sample,
    sample_seeds,
    slerp,
    truncated_normal,
    upscale_nearest,
)
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
    from ylg.models.loading import load_for_inference

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


# ----------------------------------------------------------------------------------------
# StyleGAN-style conveniences: --seeds ranges, --class NAME; the enlarged GIF


def test_parse_seeds_ranges():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("7") == [7]
    want = [*range(0, 8), 12, *range(20, 24)]
    assert parse_seeds("0-7,12,20-23") == want
    assert parse_seeds(" 5 , 2-3") == [5, 2, 3]  # order kept
    assert parse_seeds("0-63") == list(range(64))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("5-2", "the range '5-2' is empty (start > end)"),
        ("1,x", "'x' is not a seed"),
        ("", "'' is not a seed"),
        ("3-", "'3-' is not a seed"),
        ("-3", "'-3' is not a seed"),
        ("1-2-3", "'1-2-3' is not a seed"),
        ("0-3,2", "seed(s) [2] given more"),
    ],
)
def test_parse_seeds_errors_name_the_bad_part(text, needle):
    with pytest.raises(ValueError) as err:
        parse_seeds(text)
    assert needle in str(err.value) and repr(text) in str(err.value)


def _one_seed_reference(G, seed, truncation=2.0):
    """Seed -> image, the obvious way: its own generator, its latent then its class."""
    g = torch.Generator().manual_seed(seed)
    z = truncated_normal((1, G.z_dim), truncation, g)
    y = torch.randint(G.num_classes, (1,), generator=g)
    return G(z, y).clamp(-1, 1), int(y)


@torch.no_grad()
def test_a_seeds_image_does_not_depend_on_the_other_seeds(run_dir):
    from ylg.models.loading import load_for_inference

    G = load_for_inference(run_dir).G
    a, ya = sample_seeds(G, [3, 7, 11])
    b, yb = sample_seeds(G, [7])
    c, _ = sample_seeds(G, [11, 9, 3])
    assert torch.equal(a[1], b[0]) and torch.equal(a[0], c[2]) and torch.equal(a[2], c[0])
    for i, seed in enumerate([3, 7, 11]):
        ref, label = _one_seed_reference(G, seed)
        assert torch.equal(a[i], ref[0]) and int(ya[i]) == label
    assert not torch.equal(a[0], a[1])
    d, yd = sample_seeds(G, [3, 7, 11], classes=[4, 1])
    assert yd.tolist() == [4, 1, 4]  # classes cycle by position
    g = torch.Generator().manual_seed(7)
    z = truncated_normal((1, G.z_dim), 2.0, g)
    assert torch.equal(d[1], G(z, torch.tensor([1])).clamp(-1, 1)[0])


def test_generate_seeds_and_class_names(run_dir, tmp_path, capsys):
    from ylg.cli import main
    from ylg.models.loading import load_for_inference

    names = load_for_inference(run_dir).class_names
    assert names is not None and len(names) == 10
    star = names.index("star") if "star" in names else 5
    paths = generate(run_dir, tmp_path / "s", seeds=[2, 0, 1], classes=[names[star]])
    assert [p.name for p in paths] == [f"seed{s:04d}-class{star}.png" for s in (2, 0, 1)]
    argv = ["generate", str(run_dir), "--seeds", "0-1,5", "--class", names[star], "3",
            "--out", str(tmp_path / "cli")]  # fmt: skip
    assert main(argv) == 0
    got = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert got == [f"seed0000-class{star}.png", "seed0001-class3.png",
                   f"seed0005-class{star}.png"]  # fmt: skip
    # the same seed and class: the same file as through the library
    same = tmp_path / "cli" / f"seed0000-class{star}.png"
    assert same.read_bytes() == (tmp_path / "s" / f"seed0000-class{star}.png").read_bytes()
    with pytest.raises(ValueError) as err:
        generate(run_dir, tmp_path / "x", n=2, classes=["unicorn"])
    assert "class 'unicorn' is not a class of this checkpoint; valid: " + ", ".join(names) in str(
        err.value
    )


def test_class_names_resolve():
    names = ["circle", "star"]
    assert resolve_classes(["star", 0, "1"], names, 2) == [1, 0, 1]
    assert resolve_classes(None, names, 2) is None
    with pytest.raises(ValueError, match="no class names; give a number 0..2"):
        resolve_classes(["star"], None, 3)
    with pytest.raises(ValueError, match="unconditional"):
        resolve_classes(["star"], None, 0)


def test_gif_scale_rule_and_nearest_upscale():
    assert [gif_scale_for(w) for w in (8, 32, 64, 100, 128, 256, 300)] == [32, 8, 4, 3, 2, 1, 1]
    img = torch.arange(2 * 3 * 2 * 3).reshape(2, 3, 2, 3)
    up = upscale_nearest(img, 3)
    assert up.shape == (2, 3, 6, 9)
    for r in range(6):
        for c in range(9):
            assert torch.equal(up[..., r, c], img[..., r // 3, c // 3])
    with pytest.raises(ValueError, match="scale 0"):
        upscale_nearest(img, 0)


def _gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        out = []
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append(np.asarray(gif.convert("RGB")))
        return out


def test_interpolation_gif_is_enlarged_with_exact_repeats(run_dir, tmp_path):
    generate(run_dir, tmp_path / "auto", n=1, interpolate=2, classes=[1])
    generate(run_dir, tmp_path / "one", n=1, interpolate=2, classes=[1], gif_scale=1)
    generate(run_dir, tmp_path / "three", n=1, interpolate=2, classes=[1], gif_scale=3)
    auto = _gif_frames(tmp_path / "auto" / "interpolation.gif")
    one = _gif_frames(tmp_path / "one" / "interpolation.gif")
    three = _gif_frames(tmp_path / "three" / "interpolation.gif")
    assert len(auto) == len(one) == len(three) == 4 * 2
    assert auto[0].shape == (256, 256, 3) and one[0].shape == (32, 32, 3)  # 32 px x 8
    assert three[0].shape == (96, 96, 3)
    for big, small, k in [(a, o, 8) for a, o in zip(auto, one)] + [
        (t, o, 3) for t, o in zip(three, one)
    ]:
        assert np.array_equal(big, small.repeat(k, axis=0).repeat(k, axis=1))
    assert not np.array_equal(one[0], one[3])  # the frames move


def test_generate_cli_new_errors(run_dir, tmp_path, capsys):
    from ylg.cli import main
    from ylg.runtime.threads import without_thread_line

    out = ["--out", str(tmp_path / "o")]
    cases = [
        (["--seeds", "5-2"], "the range '5-2' is empty"),
        (["--seeds", "0-3", "--n", "4"], "--n 4 and --seeds 0-3: give one of them"),
        (["--class", "unicorn"], "class 'unicorn' is not a class of this checkpoint; valid: "),
        (["--gif-scale", "0", "--interpolate", "2"], "gif_scale=0 must be an integer >= 1"),
    ]
    for extra, needle in cases:
        assert main(["generate", str(run_dir), *extra, *out]) == 2, extra
        err = without_thread_line(capsys.readouterr().err).strip()
        assert "\n" not in err and needle in err, (extra, err)
    assert not (tmp_path / "o").exists()
