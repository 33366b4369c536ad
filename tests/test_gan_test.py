"""GAN-test accuracy and the demo's simple shapes style."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ylg.data.shapes import SHAPE_NAMES, ShapesDataset
from ylg.metrics.gan_test import ShapeClassifier, gan_test


class _LabelG(nn.Module):
    """A fake conditional G whose image encodes its label in pixel (0, 0)."""

    num_classes = 4
    z_dim = 3

    def forward(self, z, y):
        x = torch.zeros(len(z), 3, 8, 8)
        x[:, 0, 0, 0] = y.float() / 10
        return x


class _Decoder(nn.Module):
    """Reads the label back, but calls every class 3 sample class 0."""

    def forward(self, x):
        y = (x[:, 0, 0, 0] * 10).round().long()
        y = torch.where(y == 3, torch.zeros_like(y), y)
        return nn.functional.one_hot(y, 4).float()


def test_gan_test_is_the_share_classified_as_their_class():
    result = gan_test(_LabelG(), _Decoder(), n_per_class=5, truncation=None)
    assert result.n == 20
    assert result.per_class == [1.0, 1.0, 1.0, 0.0]
    assert result.accuracy == 0.75
    assert result.to_dict()["per_class"]["3"] == 0.0


def test_classifier_shapes():
    assert ShapeClassifier(10)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_simple_style_is_deterministic_and_leaves_scenes_unchanged():
    a = ShapesDataset(16, length=10, style="simple")
    b = ShapesDataset(16, length=10, style="simple", cache=False)
    assert all(np.array_equal(a.render(i), b.render(i)) for i in range(10))
    scenes = ShapesDataset(16, length=10)
    assert not np.array_equal(a.render(0), scenes.render(0))
    assert a[3][1] == 3 and a.classes == list(SHAPE_NAMES)
    # plain background: the corner pixels of a simple scene are one colour
    img = a.render(1).astype(int)
    assert np.abs(img[0, 0] - img[-1, -1]).max() <= 1


def test_simple_shapes_have_one_outline_per_class():
    """Items of a class differ only in colour: the same pixels are shape; classes differ."""
    data = ShapesDataset(32, length=40, style="simple")

    def outline(i):
        img = data.render(i).astype(int)
        return np.abs(img - img[0, 0]).max(axis=2) > 60  # [32, 32]: away from the background

    for c in range(10):
        first = outline(c)
        for i in (c + 10, c + 20, c + 30):  # other items of class c, other colours
            assert not np.array_equal(data.render(i), data.render(c))
            assert (outline(i) != first).mean() < 0.02  # antialiased edges may differ
    outlines = [outline(c) for c in range(10)]
    for a in range(10):
        for b in range(a + 1, 10):
            assert (outlines[a] != outlines[b]).mean() > 0.03, (SHAPE_NAMES[a], SHAPE_NAMES[b])
    # an upright square fills its bounding box (tilted by 15 degrees it would fill 0.67)
    ys, xs = np.nonzero(outlines[1])
    assert outlines[1].sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)) > 0.9
