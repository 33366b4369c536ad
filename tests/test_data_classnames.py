"""Class names travel with the data: datasets, checkpoints, run folders, sample grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ylg.data import SHAPE_NAMES, ShapesDataset, class_names_of, make_dataset
from ylg.viz.grids import add_row_labels, make_grid


def _npz(path, n=8, r=32, names=("ant", "bee", "cow")):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        images=rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8),
        labels=np.arange(n) % len(names),
        class_names=np.asarray(names),
    )
    return path


def test_every_dataset_exposes_class_names(tmp_path):
    assert make_dataset(None, 8).class_names == list(SHAPE_NAMES)
    assert make_dataset(None, 8, num_classes=3).class_names == list(SHAPE_NAMES[:3])
    assert make_dataset(None, 8, num_classes=0).class_names is None
    assert class_names_of(ShapesDataset(8, num_classes=4)) == list(SHAPE_NAMES[:4])
    ds = make_dataset(_npz(tmp_path / "a.npz"), 32)
    assert ds.class_names == ["ant", "bee", "cow"] and ds.num_classes == 3
    assert class_names_of(ds) == ["ant", "bee", "cow"]
    assert make_dataset(tmp_path / "a.npz", 32, num_classes=0).class_names is None
    # names fix the class count even when the last class has no image
    np.savez(
        tmp_path / "b.npz",
        images=np.zeros((2, 4, 4, 3), np.uint8),
        labels=np.array([0, 0]),
        class_names=np.asarray(["x", "y"]),
    )
    assert make_dataset(tmp_path / "b.npz", 4).num_classes == 2
    for name in ("b", "a"):
        (tmp_path / "f" / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "f" / name / "0.png")
    assert make_dataset(tmp_path / "f", 4).class_names == ["a", "b"]
    np.savez(tmp_path / "plain.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    assert make_dataset(tmp_path / "plain.npz", 4).class_names is None


def test_row_labels_add_a_margin_and_keep_the_grid():
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    plain = make_grid(images, nrow=3)
    labelled = make_grid(images, nrow=3, row_labels=["first", "a much longer name"])
    margin = labelled.shape[2] - plain.shape[2]
    assert labelled.shape[1] == plain.shape[1] and margin > 20
    assert torch.equal(labelled[:, :, margin:], plain)  # the images are untouched
    text = labelled[:, :, :margin].amax(0) > 128  # [H, margin]: white ink on black
    row_band = [range(2 + r * 18, 2 + r * 18 + 16) for r in range(2)]
    assert all(text[list(band)].any() for band in row_band)
    outside = torch.ones(text.shape[0], dtype=torch.bool)
    for band in row_band:
        outside[list(band)] = False
    assert not text[outside].any()  # ink only beside its row
    with pytest.raises(ValueError, match="3 row labels for a grid of 2 rows"):
        add_row_labels(plain, ["a", "b", "c"], 16)


def test_trainer_stores_class_names(tmp_path):
    from ylg.models.loading import load_for_inference
    from ylg.runtime.checkpoint import load_checkpoint
    from ylg.training.config import resolve
    from ylg.training.loop import train

    cfg = resolve(
        "demo",
        dict(attention="none", g_width=2, d_width=2, z_dim=8, batch_size=4, steps=1,
             log_every=1, sample_every=1, checkpoint_every=1000, workers=0, ema=False,
             data=str(_npz(tmp_path / "d.npz"))),
    )  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["class_names"] == ["ant", "bee", "cow"] and ckpt["num_classes"] == 3
    meta = json.loads((tmp_path / "run" / "classes.json").read_text())
    assert meta == {"num_classes": 3, "class_names": ["ant", "bee", "cow"]}
    assert load_for_inference(tmp_path / "run").class_names == ["ant", "bee", "cow"]
    grid = np.asarray(Image.open(tmp_path / "run" / "samples" / "step-0000001.png"))
    unlabelled_width = 8 * (32 + 2) + 2
    assert grid.shape[1] > unlabelled_width  # the labelled margin is there
