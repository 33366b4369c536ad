"""TF1 bilinear resize and uint8 quantisation against slow per-pixel references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ylg.metrics import resize_bilinear_tf1, to_uint8


def slow_tf1_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Per-pixel TF1 resize_bilinear(align_corners=False) of one image [H, W], in float64.

    Source coordinate d * in / out (the scale rounded to float32, as the TF kernel), no
    half-pixel offset, neighbours floor and floor + 1 clamped to the edge.
    """
    in_h, in_w = img.shape
    sy, sx = np.float32(in_h / out_h), np.float32(in_w / out_w)
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        y = float(np.float32(i) * sy)
        y0 = int(math.floor(y))
        y1 = min(y0 + 1, in_h - 1)
        ty = y - y0
        for j in range(out_w):
            x = float(np.float32(j) * sx)
            x0 = int(math.floor(x))
            x1 = min(x0 + 1, in_w - 1)
            tx = x - x0
            top = img[y0, x0] * (1 - tx) + img[y0, x1] * tx
            bottom = img[y1, x0] * (1 - tx) + img[y1, x1] * tx
            out[i, j] = top * (1 - ty) + bottom * ty
    return out


@settings(max_examples=25, deadline=None)
@given(
    in_h=st.integers(1, 12),
    in_w=st.integers(1, 12),
    out_h=st.integers(1, 20),
    out_w=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_resize_equals_per_pixel_reference(in_h, in_w, out_h, out_w, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(2, 3, in_h, in_w)).astype(np.float32)
    got = resize_bilinear_tf1(torch.from_numpy(x), (out_h, out_w)).numpy()
    assert got.shape == (2, 3, out_h, out_w) and got.dtype == np.float32
    for b in range(2):
        for c in range(3):
            want = slow_tf1_resize(x[b, c].astype(np.float64), out_h, out_w)
            np.testing.assert_allclose(got[b, c], want, rtol=0, atol=2e-4)


def test_resize_to_299_from_generator_size():
    x = torch.randint(0, 256, (1, 3, 32, 32)).float()
    got = resize_bilinear_tf1(x, (299, 299))
    want = slow_tf1_resize(x[0, 1].double().numpy(), 299, 299)
    np.testing.assert_allclose(got[0, 1].numpy(), want, rtol=0, atol=2e-4)


def test_integer_upsampling_has_no_half_pixel_offset():
    # 2x upsampling: even outputs copy the source, odd ones average two neighbours; the last
    # output repeats the edge. PyTorch's align_corners=False (half-pixel) would differ.
    x = torch.tensor([[[[0.0, 10.0, 30.0]]]])  # [1, 1, 1, 3]
    got = resize_bilinear_tf1(x, (1, 6))[0, 0, 0]
    torch.testing.assert_close(got, torch.tensor([0.0, 5.0, 10.0, 20.0, 30.0, 30.0]))
    torch_half_pixel = F.interpolate(x, size=(1, 6), mode="bilinear", align_corners=False)
    assert not torch.allclose(torch_half_pixel[0, 0, 0], got)


def test_downsampling_has_no_antialiasing():
    # 4x downsampling picks every 4th pixel exactly (src = 4 d, integer): no averaging.
    x = torch.arange(64.0).view(1, 1, 8, 8)
    got = resize_bilinear_tf1(x, (2, 2))
    torch.testing.assert_close(got, x[:, :, ::4, ::4])


def test_resize_to_the_same_size_is_the_identity():
    x = torch.randint(0, 256, (1, 3, 299, 299)).float()
    assert torch.equal(resize_bilinear_tf1(x, (299, 299)), x)


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError, match="4-D"):
        resize_bilinear_tf1(torch.zeros(3, 4, 4), (5, 5))
    with pytest.raises(ValueError, match="size"):
        resize_bilinear_tf1(torch.zeros(1, 3, 4, 4), (0, 5))


def test_to_uint8_rounds_like_saving_a_png():
    x = torch.tensor([-1.0, -2.0, 1.0, 3.0, 0.0, -1 + 0.5 / 127.5, -1 + 0.49 / 127.5])
    got = to_uint8(x.view(1, 1, 1, -1).expand(1, 3, 1, -1))[0, 0, 0]
    # (x + 1) * 127.5 = 0, <0, 255, >255, 127.5, 0.5, 0.49 -> round half up, clamped.
    assert got.tolist() == [0, 0, 255, 255, 128, 1, 0]


def test_to_uint8_round_trips_every_level():
    levels = torch.arange(256, dtype=torch.uint8)
    as_float = levels.float() / 127.5 - 1  # what reading a PNG into [-1, 1] gives
    got = to_uint8(as_float.view(1, 1, 1, -1).expand(1, 3, 1, -1))[0, 0, 0]
    assert torch.equal(got, levels)


def test_to_uint8_rejects_bad_input():
    with pytest.raises(ValueError, match="floating-point"):
        to_uint8(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        to_uint8(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="non-finite"):
        to_uint8(torch.full((1, 3, 2, 2), float("nan")))
