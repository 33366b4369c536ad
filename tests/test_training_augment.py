"""DiffAugment against its definitions, and LeCam against its formula."""

from __future__ import annotations

import pytest
import torch

from ylg.training.augment import Augment, AugmentDraw, parse_policy
from ylg.training.lecam import LeCam


def _images(n=5, size=16, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _draw(aug: Augment, n: int, seed: int = 1) -> AugmentDraw:
    return aug.draw(n, torch.Generator().manual_seed(seed))


def test_parse_policy():
    assert parse_policy("translation,cutout") == ("translation", "cutout")
    assert parse_policy(" color , translation ") == ("color", "translation")
    assert parse_policy("") == parse_policy("none") == parse_policy(None) == ()
    with pytest.raises(ValueError, match=r"'flip' is not one of color, translation, cutout"):
        parse_policy("translation,flip")
    with pytest.raises(ValueError, match="twice"):
        parse_policy("cutout,cutout")


def test_off_is_the_identity():
    x = _images()
    aug = Augment("", 16)
    assert not aug and aug.apply(x, AugmentDraw()) is x


@pytest.mark.parametrize("size", [16, 17])
def test_translation_moves_pixels_by_the_drawn_offsets_with_zero_padding(size):
    x = _images(n=40, size=size)
    aug = Augment("translation", size)
    d = _draw(aug, 40)
    r = round(size / 8)
    assert d.shift.min() >= -r and d.shift.max() <= r
    assert len(set(d.shift[:, 0].tolist())) > 1  # offsets vary per image
    out = aug.apply(x, d)
    ref = torch.zeros_like(x)
    for i, (dy, dx) in enumerate(d.shift.tolist()):
        for y in range(size):
            for xx in range(size):
                sy, sx = y - dy, xx - dx
                if 0 <= sy < size and 0 <= sx < size:
                    ref[i, :, y, xx] = x[i, :, sy, sx]
    assert torch.equal(out, ref)


@pytest.mark.parametrize("size", [16, 15])
def test_cutout_zeroes_exactly_the_drawn_square(size):
    x = _images(n=30, size=size) + 5.0  # no pixel is 0 before the cutout
    aug = Augment("cutout", size)
    d = _draw(aug, 30)
    out = aug.apply(x, d)
    k = round(size / 2)
    for i, (cy, cx) in enumerate(d.cutout.tolist()):
        mask = torch.ones(size, size, dtype=torch.bool)
        y0, x0 = cy - k // 2, cx - k // 2
        mask[max(y0, 0) : max(y0 + k, 0), max(x0, 0) : max(x0 + k, 0)] = False
        assert torch.equal(out[i], x[i] * mask), i
        assert (out[i] == 0).any()  # every drawn square overlaps the image


def test_color_ops_follow_their_formulas_and_ranges():
    x = _images(n=200)
    aug = Augment("color", 16)
    d = _draw(aug, 200)
    assert d.brightness.min() >= -0.5 and d.brightness.max() < 0.5
    assert d.saturation.min() >= 0 and d.saturation.max() < 2
    assert d.contrast.min() >= 0.5 and d.contrast.max() < 1.5
    out = aug.apply(x, d)
    b, s, c = (t.view(-1, 1, 1, 1) for t in (d.brightness, d.saturation, d.contrast))
    ref = x.double() + b.double()
    ref = (ref - ref.mean(1, keepdim=True)) * s.double() + ref.mean(1, keepdim=True)
    ref = (ref - ref.mean((1, 2, 3), keepdim=True)) * c.double() + ref.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_draws_are_deterministic_and_gradients_flow():
    aug = Augment("color,translation,cutout", 16)
    a, b = _draw(aug, 6, seed=3), _draw(aug, 6, seed=3)
    for k, v in vars(a).items():
        assert torch.equal(v, vars(b)[k])
    assert not torch.equal(a.shift, _draw(aug, 6, seed=4).shift)
    x = _images(n=6).requires_grad_()
    out = aug.apply(x, a)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # slices and concatenation keep each image's parameters
    both = AugmentDraw.cat(a.slice(0, 2), a.slice(2, 6))
    assert torch.equal(aug.apply(x.detach(), both), aug.apply(x.detach(), a))
    with pytest.raises(ValueError, match="6 augmentation draws for a batch of 5"):
        aug.apply(x[:5], a)


def test_the_loss_augments_reals_and_fakes_and_leaves_labels_alone():
    from ylg.training.loss import HingeLoss

    class D(torch.nn.Module):  # remembers what it saw
        def forward(self, x, y):
            self.seen = (x.detach().clone(), None if y is None else y.clone())
            return x.mean(dim=(1, 2, 3)) + y.float()

    class G(torch.nn.Module):
        def forward(self, z, y):
            return torch.tanh(z[:, :768].view(-1, 3, 16, 16) + y.view(-1, 1, 1, 1))

    g, dnet = G(), D()
    aug = Augment("translation,cutout", 16)
    loss = HingeLoss(g, dnet, augment=aug)
    real, ry = _images(n=4), torch.tensor([0, 1, 2, 3])
    z, fy = torch.randn(4, 768), torch.tensor([3, 2, 1, 0])
    d = _draw(aug, 8)
    loss.d_phase(real, ry, z, fy, d)
    x_seen, y_seen = dnet.seen
    assert torch.equal(x_seen, aug.apply(torch.cat([real, g(z, fy)]), d))
    assert torch.equal(y_seen, torch.cat([ry, fy]))
    z.requires_grad_()
    out, _ = loss.g_phase(z, fy, d.slice(4, 8))
    assert torch.equal(dnet.seen[0], aug.apply(g(z, fy), d.slice(4, 8)).detach())
    out.backward()
    assert z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs the draw"):
        loss.g_phase(z, fy)


def test_lecam_penalty_and_anchors():
    lc = LeCam(0.3, decay=0.9, start=2)
    real, fake = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.2, -0.4])
    # anchors at 0: relu(real - 0)^2 mean + relu(0 - fake)^2 mean
    want = 0.3 * ((0.25 + 0 + 4) / 3 + (0 + 0.16) / 2)
    torch.testing.assert_close(lc.penalty(real, fake), torch.tensor(want))
    lc.update(1.0, -1.0)  # before `start`: the anchors are the current means
    assert (lc.real_ema, lc.fake_ema) == (1.0, -1.0)
    lc.update(3.0, 1.0)
    assert (lc.real_ema, lc.fake_ema) == (3.0, 1.0)
    lc.update(13.0, 11.0)  # from `start` on: decay 0.9
    assert lc.real_ema == pytest.approx(0.9 * 3 + 0.1 * 13)
    assert lc.fake_ema == pytest.approx(0.9 * 1 + 0.1 * 11)
    other = LeCam(0.3)
    other.load_state_dict(lc.state_dict())
    assert other.state_dict() == lc.state_dict()
    assert not LeCam(0.0)
    with pytest.raises(ValueError, match="lecam weight=-1"):
        LeCam(-1)
