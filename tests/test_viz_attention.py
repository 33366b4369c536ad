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
    assert len(fig.axes) == 5 + 1  # image, 4 heads, the colour bar
    assert [ax.get_title() for ax in fig.axes][1:5] == [f"head {h}" for h in range(4)]
    # One colour scale for all heads, from 0 to the largest value, not each map to its own max
    for ax in fig.axes[1:5]:
        assert ax.images[-1].get_clim() == (0.0, float(sal.max()))
    np.testing.assert_allclose(
        np.asarray(fig.axes[2].images[-1].get_array()),
        sal[1].repeat_interleave(4, 0).repeat_interleave(4, 1).numpy(),
    )
    named = saliency_figure(image, sal, head_names=["a", "b", "c", "d"], vmax=2.0)
    assert [ax.get_title() for ax in named.axes][1:5] == ["a", "b", "c", "d"]
    assert named.axes[1].images[-1].get_clim() == (0.0, 2.0)
    with pytest.raises(ValueError, match="head_names has 2 names for 4 heads"):
        saliency_figure(image, sal, head_names=["a", "b"])
    two = saliency_figure(image, torch.rand(2, 4, 8, 8), labels=["G", "D"])
    assert len(two.axes) == 10 + 1 and two.axes[5].get_title() == "D"
    path = save_figure(fig, tmp_path / "sub" / "s.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 50
    with pytest.raises(ValueError, match=r"saliency must be \[heads, hk, wk\]"):
        saliency_figure(image, torch.rand(8, 8))


def test_query_figure_marks_the_query_at_its_cell_centre():
    image = torch.zeros(3, 32, 32)
    probs = torch.softmax(torch.randn(2, 16 * 16, 8 * 8), dim=-1)
    fig = query_attention_figure(image, probs, [(5, 20), (31, 0)])
    assert len(fig.axes) == 2 * 3 + 1  # and the colour bar
    # query (5, 20) lies in cell (2, 10) of the 16x16 grid, 2 px per cell: centre x=20.5, y=4.5
    x, y = fig.axes[0].lines[0].get_data()
    assert (float(x[0]), float(y[0])) == (20.5, 4.5)
    # the heat map of head 1 at query (31, 0) is that query's row relative to the uniform
    # share 1/64 of its (dense) row, upsampled (nearest)
    heat = fig.axes[5].images[-1].get_array()
    row = probs[1, 15 * 16 + 0].view(8, 8)
    expected = row.repeat_interleave(4, 0).repeat_interleave(4, 1) * 64
    np.testing.assert_allclose(np.asarray(heat), expected.numpy(), rtol=1e-5)
    plain = query_attention_figure(image, probs, [(31, 0)], relative=False)
    np.testing.assert_allclose(
        np.asarray(plain.axes[2].images[-1].get_array()), expected.numpy() / 64, rtol=1e-5
    )
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


# ----------------------------------------------------------------------------------------
# The maps show the model, not the mask


def content_attention(seed: int = 0):
    """A ylg-layout attention layer (8 heads, 64 channels, pooled keys) whose queries and keys
    are both channel 0 of the input: logit[q, k] = d * x0[q] * x0[k] (times the spectral
    normalisation), so bright queries look at bright keys and the maps follow the image."""
    from ylg.attention import YLGAttention2d

    torch.manual_seed(seed)
    layer = YLGAttention2d(64, heads=8, layout="ylg").eval()
    with torch.no_grad():
        for conv in (layer.theta, layer.phi):
            w = torch.zeros_like(conv.parametrizations.weight.original)  # [8, 64, 1, 1]
            w[:, 0] = 1.0  # every query / key channel reads input channel 0
            conv.parametrizations.weight.original.copy_(w)
        layer.train()  # let the spectral norm's power iteration find sigma (sqrt 8) first
        for _ in range(3):
            layer(blob_features((0, 0)))
    return layer.eval()


def blob_features(centre: tuple[int, int], size: int = 16, strength: float = 6.0):
    """[1, 64, size, size] features: channel 0 is a bright Gaussian blob at ``centre``."""
    r = torch.arange(size).float()
    d2 = (r[:, None] - centre[0]) ** 2 + (r[None, :] - centre[1]) ** 2
    x = torch.zeros(1, 64, size, size)
    x[0, 0] = strength * torch.exp(-d2 / 8)
    return x


def test_different_images_give_clearly_different_maps_on_a_content_dependent_model():
    from ylg.attention.analysis import head_names, saliency_from_probs
    from ylg.viz.snapshots import attention_snapshot, relative_saliency

    layer = content_attention()
    masks = layer.masks(16, 16)
    maps, papers = [], []
    for centre in ((3, 3), (12, 11)):
        with torch.no_grad():
            _, probs = layer(blob_features(centre), return_attention=True)  # [1, 8, 256, 64]
        maps.append(saliency_from_probs(probs, (8, 8), "relative", masks)[0])  # [8, 8, 8]
        papers.append(saliency_from_probs(probs, (8, 8), "paper")[0])
        torch.testing.assert_close(relative_saliency(probs, masks)[0], maps[-1])
    a, b = maps
    seen = masks.any(dim=1).view(8, 8, 8)  # keys some query of the head may attend
    for h in range(8):
        corr = torch.corrcoef(torch.stack([a[h].flatten(), b[h].flatten()]))[0, 1]
        assert corr < 0.5, (h, corr)
        # more than uniform attention on the blob's key cell (centre (3, 3) -> key (1, 1)),
        # for every head whose mask lets some query see that key
        if seen[h, 1, 1]:
            assert a[h][1, 1] > 1.5, (h, a[h][1, 1])
    # The paper's mean over all queries correlates much more between the two images: the
    # number of queries that see each key (the mask) dominates it.
    paper_corr = torch.corrcoef(torch.stack([papers[0].flatten(), papers[1].flatten()]))[0, 1]
    rel_corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
    assert paper_corr > rel_corr + 0.3
    assert len(head_names(layer)) == 8
    pic = attention_snapshot(torch.zeros(1, 3, 32, 32), probs)
    assert pic.dtype == torch.uint8 and pic.shape[0] == 3


def test_uniform_attention_within_the_mask_is_flat_and_the_mask_no_longer_shows():
    """A blank input: all logits 0, every head attends uniformly within its mask. The
    snapshot maps (relative) are exactly 1; the old mean over queries showed the mask."""
    from ylg.viz.snapshots import attention_snapshot_figure, key_saliency, relative_saliency

    layer = content_attention()
    with torch.no_grad():
        _, probs = layer(blob_features((5, 5), strength=0.0), return_attention=True)
    rel = relative_saliency(probs)
    seen = layer.masks(16, 16).any(dim=1).view(8, 8, 8)
    torch.testing.assert_close(rel[0][seen], torch.ones(int(seen.sum())))
    old = key_saliency(probs)[0]  # scaled to its max: 1 at the most-seen key
    assert (old.flatten(1).amin(dim=1) < 0.5).any()  # the mask's structure
    pic = attention_snapshot_figure(torch.zeros(2, 3, 32, 32), probs.expand(2, -1, -1, -1),
                                    head_names=[f"h{i}" for i in range(8)])  # fmt: skip
    assert pic.dtype == torch.uint8 and pic.shape[0] == 3 and pic.shape[2] > pic.shape[1]
