"""`ylg demo`: its preset's data style, its GAN-test output and its labelled final grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from torch import nn

from ylg.data import SHAPE_NAMES, ShapesDataset, make_dataset
from ylg.training.config import PRESETS, TrainConfig, resolve
from ylg.viz.grids import to_uint8


def test_demo_preset_trains_on_simple_shapes_and_old_configs_keep_scenes():
    demo = resolve("demo")
    assert demo.shapes_style == "simple" and demo.data is None
    # a config.json written before the field existed resumes on the scenes it was trained on
    old = {k: v for k, v in demo.to_dict().items() if k != "shapes_style"}
    assert TrainConfig.from_dict(old).validate().shapes_style == "scenes"
    assert resolve("cifar32").shapes_style == "scenes"
    with pytest.raises(ValueError, match=r"shapes_style='fancy'.*scenes, simple"):
        resolve("demo", {"shapes_style": "fancy"})


def test_make_dataset_passes_the_style_to_the_built_in_shapes():
    simple = make_dataset(None, 16, style="simple")
    reference = ShapesDataset(16, style="simple")
    assert all(np.array_equal(simple.render(i), reference.render(i)) for i in (0, 7))
    assert not np.array_equal(make_dataset(None, 16).render(0), reference.render(0))


class _MeanColourClassifier(nn.Module):
    """A fixed stand-in for the shapes classifier: class = a bucket of the mean red value."""

    num_classes = 10
    held_out_accuracy = 0.5

    def forward(self, x):
        bucket = ((x[:, 0].mean(dim=(1, 2)) + 1) * 5).long().clamp(0, 9)  # [B]
        return nn.functional.one_hot(bucket, 10).float()


def test_run_demo_leaves_its_outputs_and_the_gan_test_of_untruncated_ema_samples(
    tmp_path, monkeypatch
):
    from ylg import demo
    from ylg.generate import sample
    from ylg.metrics import gan_test as gan_test_module
    from ylg.models.loading import load_for_inference
    from ylg.runtime.checkpoint import load_checkpoint

    monkeypatch.setitem(PRESETS, "demo", {**PRESETS["demo"], "sample_every": 2})
    monkeypatch.setattr(demo, "GAN_TEST_PER_CLASS", 4)
    seen = {}

    def fake_classifier(resolution, *, style, num_classes, **_):
        seen.update(resolution=resolution, style=style, num_classes=num_classes)
        return _MeanColourClassifier()

    monkeypatch.setattr(gan_test_module, "shapes_classifier", fake_classifier)
    report = demo.run_demo(tmp_path, steps=2, patterns=False, progress=False)
    outputs = ["samples/step-0000002.png", "attention/step-0000002.png", "loss.png",
               "final/grid.png", "final/interpolation.gif", "final/gan-test.json", "latest.pt",
               "stats.jsonl"]  # fmt: skip
    for name in outputs:
        assert (tmp_path / name).is_file(), name
        assert str(tmp_path / name.split("/")[0]) in report
    assert load_checkpoint(tmp_path)["config"]["attention"] == "ylg"
    assert seen == {"resolution": 32, "style": "simple", "num_classes": 10}

    saved = json.loads((tmp_path / "final" / "gan-test.json").read_text())
    per = demo.GAN_TEST_PER_CLASS
    assert saved["n"] == 10 * per and saved["truncation"] is None
    assert saved["classifier_held_out_accuracy"] == 0.5
    assert list(saved["per_class"]) == list(SHAPE_NAMES)
    # a hand count: the EMA generator's untruncated samples, classified one by one
    G = load_for_inference(tmp_path).G
    images, labels = sample(G, 10 * per, classes=list(range(10)), truncation=None, seed=0)
    hits = dict.fromkeys(range(10), 0)
    for img, label in zip(images, labels.tolist(), strict=True):
        hits[label] += int(_MeanColourClassifier()(img[None]).argmax(1).item() == label)
    for c, name in enumerate(SHAPE_NAMES):
        assert saved["per_class"][name] == pytest.approx(hits[c] / per)
    assert saved["gan_test_accuracy"] == pytest.approx(sum(hits.values()) / (10 * per))
    assert f"GAN-test accuracy   {100 * saved['gan_test_accuracy']:.0f}% (circle " in report

    # the grids: 10 rows (one per class) of 8, with a left margin for the class names
    for name in ("final/grid.png", "samples/step-0000002.png"):
        grid = Image.open(tmp_path / name)
        assert grid.height == 10 * 34 + 2 and grid.width > 8 * 34 + 2, name
    # the final grid's first tile is the first of its samples (truncation 2, classes by row)
    classes = [c for c in range(10) for _ in range(8)]
    images, _ = sample(G, 80, classes=classes, truncation=2.0, seed=0)
    first = np.asarray(grid := Image.open(tmp_path / "final" / "grid.png"))
    first = first[2:34, grid.width - 8 * 34 : grid.width - 7 * 34 - 2]
    assert np.array_equal(first, to_uint8(images[:1])[0].permute(1, 2, 0).numpy())

    # running it again continues the same run (here: already finished, nothing to do)
    report = demo.run_demo(tmp_path, steps=2, patterns=False, progress=False)
    assert "finished at step 2 of 2" in report
