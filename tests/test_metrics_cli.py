"""`ylg stats` and `ylg eval` on a tiny trained checkpoint, with a cheap stand-in for Inception
(the real network is exercised end to end in the slow test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import ylg.metrics
from ylg.cli import main
from ylg.metrics import ReferenceStats, evaluate_generator
from ylg.metrics.inception import check_uint8_images


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
    from ylg.training.checkpoint import load_for_inference

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
        (["eval", str(tmp_path / "nope"), "--ref", str(ref_file)], "does not exist"),
        (["eval", str(run_dir), "--ref", str(tmp_path / "x.npz")], "x.npz' not found"),
        (["eval", str(run_dir), "--ref", str(ref_file), "--metrics", "fid,lpips"], "lpips"),
        (["stats", str(tmp_path / "nodata"), "--resolution", "8", "--out", "x.npz"], "nodata"),
    ]
    for argv, message in cases:
        assert main(argv + ["--device", "cpu", "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


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
