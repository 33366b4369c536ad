"""benchmarks/vit.py's ViT trains a few steps with every pattern (small sizes, seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vit.py"


@pytest.fixture(scope="module")
def vit():
    """The script as a module (``benchmarks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("benchmarks_vit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("pattern", ["dense", "ylg", "neighborhood"])
def test_vit_shapes_and_gradients(vit, pattern):
    torch.manual_seed(0)
    model = vit.ViT(image_size=16, patch=2, dim=16, depth=1, heads=4, pattern=pattern)
    logits = model(torch.randn(3, 3, 16, 16))
    assert logits.shape == (3, 9)
    logits.logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())


def test_vit_patterns_share_parameters(vit):
    """Only the mask differs: same seed, same initial weights for every pattern."""
    states = []
    for pattern in ("dense", "ylg", "neighborhood"):
        torch.manual_seed(0)
        states.append(vit.ViT(dim=16, depth=1, heads=8, pattern=pattern).state_dict())
    for other in states[1:]:
        assert states[0].keys() == other.keys()
        assert all(torch.equal(states[0][k], other[k]) for k in other)


def test_train_run_tiny(vit, tmp_path):
    """The whole run on a tiny synthetic data file: split, steps, curve, result fields."""
    rng = np.random.default_rng(0)
    path = tmp_path / "emoji.npz"
    names = np.array([f"class {i}" for i in range(9)])
    labels = np.arange(40) % 9
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=labels, class_names=names)
    cfg = dict(
        data=str(path),
        steps=3,
        batch_size=4,
        lr=1e-3,
        eval_every=2,
        eval_batch=8,
        patch=8,
        dim=16,
        depth=1,
        heads=8,
        mlp_ratio=2.0,
        threads=1,
        subset=None,
    )
    threads = torch.get_num_threads()
    try:
        r = vit.train_run(cfg, "ylg", seed=0)
    finally:
        torch.set_num_threads(threads)
    assert [c["step"] for c in r["curve"]] == [2, 3]
    assert r["heldout_images"] == 6 and r["train_images"] == 34  # round(0.15 * 40) held out
    assert 0.0 <= r["final_accuracy"] <= 1.0 and r["s_per_step"] > 0
