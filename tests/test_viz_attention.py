"""ylg.viz.attention: query cells and maps against explicit indexing, figure contents, PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ylg.viz.attention import (
    head_masks_figure,
    query_attention_figure,
    query_cell,
    query_maps,
    saliency_figure,
    save_figure,
    square_side,
)


def test_query_cell_maps_pixels_to_grid_cells():
    assert query_cell((0, 0), 32, 16) == (0, 0)
    assert query_cell((31, 31), 32, 16) == (15, 15)
    assert query_cell((5, 20), 32, 16) == (2, 10)
    assert query_cell((5, 20), 32, 8) == (1, 5)
    with pytest.raises(ValueError, match=r"query point \(32, 0\) is outside the 32x32 image"):
        query_cell((32, 0), 32, 16)


def test_query_maps_pick_the_rows_of_the_query_cells():
    heads, gq, gk = 3, 4, 2
    probs = torch.rand(heads, gq * gq, gk * gk)
    cells = [(0, 0), (1, 2), (3, 3)]
    maps = query_maps(probs, cells)
    assert maps.shape == (3, heads, gk, gk)
    for i, (r, c) in enumerate(cells):
        for h in range(heads):
            expected = probs[h, r * gq + c].view(gk, gk)  # raster order of keys
            torch.testing.assert_close(maps[i, h], expected)
    assert square_side(64, "Nk") == 8
    with pytest.raises(ValueError, match="Nk=10 tokens do not form a square grid"):
        square_side(10, "Nk")


def test_saliency_figure_has_one_panel_per_head_and_layer(tmp_path):
    image = torch.rand(3, 32, 32) * 2 - 1
    sal = torch.rand(4, 8, 8)
    fig = saliency_figure(image, sal, title="t")
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes][1:] == [f"head {h}" for h in range(4)]
    two = saliency_figure(image, torch.rand(2, 4, 8, 8), labels=["G", "D"])
    assert len(two.axes) == 10 and two.axes[5].get_title() == "D"
    path = save_figure(fig, tmp_path / "sub" / "s.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 50
    with pytest.raises(ValueError, match=r"saliency must be \[heads, hk, wk\]"):
        saliency_figure(image, torch.rand(8, 8))


def test_query_figure_marks_the_query_at_its_cell_centre():
    image = torch.zeros(3, 32, 32)
    probs = torch.softmax(torch.randn(2, 16 * 16, 8 * 8), dim=-1)
    fig = query_attention_figure(image, probs, [(5, 20), (31, 0)])
    assert len(fig.axes) == 2 * 3
    # query (5, 20) lies in cell (2, 10) of the 16x16 grid, 2 px per cell: centre x=20.5, y=4.5
    x, y = fig.axes[0].lines[0].get_data()
    assert (float(x[0]), float(y[0])) == (20.5, 4.5)
    # the heat map of head 1 at query (31, 0) is that query's row, upsampled (nearest)
    heat = fig.axes[5].images[-1].get_array()
    row = probs[1, 15 * 16 + 0].view(8, 8)
    expected = row.repeat_interleave(4, 0).repeat_interleave(4, 1) / row.max()
    np.testing.assert_allclose(np.asarray(heat), expected.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="at least one query point"):
        query_attention_figure(image, probs, [])


def test_head_masks_figure_reports_each_heads_density():
    masks = torch.zeros(3, 16, 4, dtype=torch.bool)
    masks[0] = True
    masks[1, :, :1] = True
    fig = head_masks_figure(masks)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["head 0: 100.0% of 16x4", "head 1: 25.0% of 16x4", "head 2: 0.0% of 16x4"]
    assert len(fig.axes) == 3
    np.testing.assert_array_equal(np.asarray(fig.axes[1].images[0].get_array()), masks[1].float())
