"""Data: image loading (crop, resize, modes), folders, npz, bad files, the built-in scenes."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ylg.data import (
    ImageFolderDataset,
    NpzDataset,
    ShapesDataset,
    load_image,
    make_dataset,
    verify_image,
)
from ylg.data.images import center_crop_box, pil_to_tensor

TOL = 1.5 / 127.5  # one-and-a-half 8-bit steps, in [-1, 1] units


def to_unit(t: torch.Tensor) -> torch.Tensor:
    return (t + 1) / 2


def save(path, array: np.ndarray, **kw) -> str:
    Image.fromarray(array).save(path, **kw)
    return str(path)


def random_rgb(rng, h, w) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- load_image: crop and resize


def test_center_crop_box_odd_margins():
    assert center_crop_box(96, 64) == (16, 0, 80, 64)
    assert center_crop_box(64, 97) == (0, 16, 64, 80)
    assert center_crop_box(65, 64) == (0, 0, 64, 64)
    assert center_crop_box(50, 50) == (0, 0, 50, 50)


def test_load_image_crops_centre_square_and_resizes(tmp_path):
    # Wide image: red bands at the sides, a vertical ramp in green with constant red in the
    # centre square. The output must show no band colour and the ramp at the pixel centres.
    h, w, r = 128, 192, 32
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[:, :32] = (255, 0, 255)
    image[:, -32:] = (255, 0, 255)
    rows = np.arange(h, dtype=np.float64)
    image[:, 32:-32, 0] = 40
    image[:, 32:-32, 1] = np.round(rows * 255 / (h - 1))[:, None]
    path = save(tmp_path / "wide.png", image)
    out = load_image(path, r)
    assert out.shape == (3, r, r) and out.dtype == torch.float32
    red, green, blue = to_unit(out) * 255
    torch.testing.assert_close(red, torch.full((r, r), 40.0), atol=1.0, rtol=0)
    torch.testing.assert_close(blue, torch.zeros(r, r), atol=1.0, rtol=0)
    # Output row i covers source rows [4i, 4i + 4): the ramp's mean there (interior rows,
    # away from the edges where the filter is truncated).
    expected = torch.tensor((4 * np.arange(r) + 1.5) * 255 / (h - 1), dtype=torch.float32)
    torch.testing.assert_close(green[2:-2], expected[2:-2, None].expand(-1, r), atol=1.0, rtol=0)


def test_load_image_antialiases(tmp_path):
    # A 1-pixel checkerboard shrunk 8x must become flat grey, not black/white aliasing.
    board = (np.indices((256, 256)).sum(0) % 2 * 255).astype(np.uint8)
    out = to_unit(load_image(save(tmp_path / "board.png", board), 32))
    assert (out - 0.5).abs().max() < 0.03


def test_load_image_same_size_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    pixels = random_rgb(rng, 16, 16)
    out = load_image(save(tmp_path / "x.png", pixels), 16)
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert out.min() >= -1 and out.max() <= 1


def test_load_image_modes(tmp_path):
    # Grayscale: three equal channels.
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = load_image(save(tmp_path / "g.png", gray), 8)
    expected = torch.from_numpy(gray).float() / 127.5 - 1
    for c in range(3):
        torch.testing.assert_close(out[c], expected, atol=1e-6, rtol=0)
    # RGBA: transparent pixels composited over white, opaque ones unchanged.
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255
    out = to_unit(load_image(save(tmp_path / "a.png", rgba), 8)) * 255
    torch.testing.assert_close(
        out[:, :4], torch.tensor([200.0, 0, 0])[:, None, None].expand(3, 4, 8), atol=0.6, rtol=0
    )
    torch.testing.assert_close(out[:, 4:], torch.full((3, 4, 8), 255.0), atol=0.6, rtol=0)
    # Palette with a transparent index.
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    out = to_unit(load_image(tmp_path / "p.png", 8)) * 255
    torch.testing.assert_close(out[:, 0, 0], torch.full((3,), 255.0), atol=0.6, rtol=0)
    torch.testing.assert_close(out[:, 5, 5], torch.tensor([10.0, 20, 30]), atol=0.6, rtol=0)
    # 16-bit grayscale is scaled, not clipped.
    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    deep.save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png", 8)
    torch.testing.assert_close(out, torch.ones(3, 8, 8), atol=1e-6, rtol=0)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png", 8)
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="junk.png"):
        load_image(tmp_path / "junk.png", 8)
    with pytest.raises(ValueError, match="resolution"):
        load_image(tmp_path / "junk.png", 0)


def test_verify_image_catches_truncation(tmp_path):
    rng = np.random.default_rng(1)
    pixels = random_rgb(rng, 64, 64)
    good_png = save(tmp_path / "good.png", pixels)
    good_jpg = save(tmp_path / "good.jpg", pixels, quality=90)
    assert verify_image(good_png) is None and verify_image(good_jpg) is None
    for name in ("good.png", "good.jpg"):
        data = (tmp_path / name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[: len(data) // 2])
        assert verify_image(cut) is not None, name
        with pytest.raises(ValueError, match=f"cut_{name}"):
            load_image(cut, 16)
    # A complete JPEG with bytes after its end marker is still accepted (decoded to decide).
    trailer = tmp_path / "trailer.jpg"
    trailer.write_bytes((tmp_path / "good.jpg").read_bytes() + b"\x00" * 2000)
    assert verify_image(trailer) is None


# ------------------------------------------------------------------------------ image folders


def make_class_folder(root, rng, classes=("dog", "cat", "ant"), per_class=(2, 3, 1)):
    for name, count in zip(classes, per_class):
        (root / name).mkdir(parents=True)
        for i in range(count):
            save(root / name / f"{i}.png", random_rgb(rng, 20 + i, 24))
    return root


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(2)
    root = make_class_folder(tmp_path / "data", rng)
    (root / ".hidden").mkdir()
    save(root / ".hidden" / "x.png", random_rgb(rng, 8, 8))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not an image")
    (root / "cat" / "sub").mkdir()
    save(root / "cat" / "sub" / "deep.png", random_rgb(rng, 8, 8))
    save(root / "stray.png", random_rgb(rng, 8, 8))
    with pytest.warns(UserWarning, match="ignoring the 1 image"):
        ds = ImageFolderDataset(root, 16)
    assert ds.classes == ["ant", "cat", "dog"] and ds.num_classes == 3
    assert len(ds) == 7
    assert sorted(ds.labels.tolist()) == [0, 1, 1, 1, 1, 2, 2]
    for i in range(len(ds)):
        image, label = ds[i]
        folder = ds.files[i].split("/data/")[1].split("/")[0]
        assert ds.classes[label] == folder
        torch.testing.assert_close(image, load_image(ds.files[i], 16))
    assert ds[-1][1] == ds[len(ds) - 1][1]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_flat_folder_is_unlabeled_and_num_classes_checks(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(3):
        save(tmp_path / f"{i}.jpg", random_rgb(rng, 30, 20))
    ds = make_dataset(tmp_path, 8)
    assert isinstance(ds, ImageFolderDataset)
    assert ds.num_classes == 0 and len(ds) == 3 and {ds[i][1] for i in range(3)} == {0}
    with pytest.raises(ValueError, match="flat folder"):
        ImageFolderDataset(tmp_path, 8, num_classes=4)
    root = make_class_folder(tmp_path / "c", rng)
    with pytest.raises(ValueError, match="out of range.*3 class.*num_classes=2"):
        ImageFolderDataset(root, 8, num_classes=2)
    assert ImageFolderDataset(root, 8, num_classes=5).num_classes == 5
    unlabeled = ImageFolderDataset(root, 8, num_classes=0)
    assert unlabeled.num_classes == 0 and set(unlabeled.labels.tolist()) == {0}


def test_folder_skips_unreadable_files_with_one_warning(tmp_path):
    rng = np.random.default_rng(4)
    root = make_class_folder(tmp_path, rng, classes=("a", "b"), per_class=(3, 3))
    data = (root / "a" / "0.png").read_bytes()
    (root / "a" / "0.png").write_bytes(data[: len(data) // 3])  # truncated
    (root / "b" / "bad.jpg").write_bytes(b"\xff\xd8garbage")  # corrupt
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(root, 8)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "skipped 2 unreadable" in messages[0]
    assert "0.png" in messages[0] and "bad.jpg" in messages[0]
    assert len(ds) == 5 and len(ds.skipped) == 2
    assert all(ds[i][0].shape == (3, 8, 8) for i in range(len(ds)))


def test_folder_falls_back_when_a_file_breaks_after_the_check(tmp_path):
    rng = np.random.default_rng(5)
    for i in range(3):
        save(tmp_path / f"{i}.png", random_rgb(rng, 8, 8))
    ds = ImageFolderDataset(tmp_path, 8)
    (tmp_path / "1.png").write_bytes(b"broken later")
    with pytest.warns(UserWarning, match="1.png"):
        image, _ = ds[1]
    torch.testing.assert_close(image, load_image(tmp_path / "2.png", 8))


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        make_dataset(tmp_path / "missing", 8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no images found"):
        make_dataset(tmp_path / "empty", 8)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1"):
        make_dataset(tmp_path / "bad", 8)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not a .npz"):
        make_dataset(tmp_path / "x.txt", 8)
    with pytest.raises(ValueError, match="resolution"):
        make_dataset(None, 0)


# ------------------------------------------------------------------------------------ npz


def test_npz_layouts_match_the_folder_path(tmp_path):
    rng = np.random.default_rng(6)
    nhwc = rng.integers(0, 256, size=(4, 24, 20, 3), dtype=np.uint8)
    labels = np.array([0, 2, 1, 2])
    np.savez(tmp_path / "a.npz", images=nhwc, labels=labels)
    np.savez_compressed(tmp_path / "b.npz", x=nhwc.transpose(0, 3, 1, 2))  # NCHW, no labels
    a, b = make_dataset(tmp_path / "a.npz", 16), make_dataset(tmp_path / "b.npz", 16)
    assert isinstance(a, NpzDataset) and a.num_classes == 3 and b.num_classes == 0
    for i in range(4):
        expected = pil_to_tensor(Image.fromarray(nhwc[i]), 16)
        save(tmp_path / f"{i}.png", nhwc[i])
        torch.testing.assert_close(a[i][0], expected)
        torch.testing.assert_close(b[i][0], expected)
        torch.testing.assert_close(a[i][0], load_image(tmp_path / f"{i}.png", 16))
        assert a[i][1] == labels[i] and b[i][1] == 0
    # Grayscale [N, H, W] and already-at-resolution RGB (exact fast path).
    gray = rng.integers(0, 256, size=(2, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", images=gray)
    image = make_dataset(tmp_path / "g.npz", 8)[1][0]
    for c in range(3):
        torch.testing.assert_close(image[c], torch.from_numpy(gray[1]).float() / 127.5 - 1)
    exact = make_dataset(tmp_path / "a.npz", 24)  # crop 24x20 -> 20x20, resize up to 24
    assert exact[0][0].shape == (3, 24, 24)


def test_npz_label_checks(tmp_path):
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "ok.npz", images=images, labels=np.array([0, 4, 1]), num_classes=10)
    ds = NpzDataset(tmp_path / "ok.npz", 8)
    assert ds.num_classes == 10
    with pytest.raises(ValueError, match=r"label 4 at index 1 is >= num_classes=3"):
        NpzDataset(tmp_path / "ok.npz", 8, num_classes=3)
    np.savez(tmp_path / "neg.npz", images=images, labels=np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="label -1 at index 1 is negative"):
        make_dataset(tmp_path / "neg.npz", 8)
    np.savez(tmp_path / "short.npz", images=images, labels=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        make_dataset(tmp_path / "short.npz", 8)
    np.savez(tmp_path / "float.npz", images=images.astype(np.float32))
    with pytest.raises(ValueError, match="dtype float32"):
        make_dataset(tmp_path / "float.npz", 8)
    np.savez(tmp_path / "nokey.npz", pictures=images)
    with pytest.raises(ValueError, match="no image array"):
        make_dataset(tmp_path / "nokey.npz", 8)
    np.savez(tmp_path / "frac.npz", images=images, labels=np.array([0.5, 1, 2]))
    with pytest.raises(ValueError, match="expected integers"):
        make_dataset(tmp_path / "frac.npz", 8)


# ------------------------------------------------------------------------ built-in shapes


def test_shapes_deterministic_and_balanced():
    a = ShapesDataset(32, length=30, seed=3)
    b = pickle.loads(pickle.dumps(ShapesDataset(32, length=30, seed=3, cache=False)))
    other = ShapesDataset(32, length=30, seed=4)
    for i in (0, 7, 29):
        (xa, ya), (xb, yb) = a[i], b[i]
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert ya == yb == i % 10
        assert (xa - other[i][0]).abs().max() > 0.1
    assert a[5][0].dtype == torch.float32 and a[5][0].shape == (3, 32, 32)
    torch.testing.assert_close(a[5][0], a[5][0])  # cached copy is the same
    assert [a.label(i) for i in range(20)] == [i % 10 for i in range(20)]
    x = torch.stack([a[i][0] for i in range(10)])
    assert x.min() >= -1 and x.max() <= 1
    assert x.std(dim=(1, 2, 3)).min() > 0.05  # not blank: objects on a background
    with pytest.raises(IndexError):
        a[30]


def test_shapes_classes_and_resolutions():
    unlabeled = ShapesDataset(16, length=5, num_classes=0)
    assert unlabeled.num_classes == 0 and {unlabeled[i][1] for i in range(5)} == {0}
    three = make_dataset(None, 16, num_classes=3)
    assert three.num_classes == 3 and three.classes == ["circle", "square", "triangle"]
    # The same scene at two resolutions: the smaller is close to the larger box-downsampled.
    big, small = ShapesDataset(64, length=4)[2][0], ShapesDataset(32, length=4)[2][0]
    down = torch.nn.functional.avg_pool2d(big[None], 2)[0]
    assert (down - small).abs().mean() < 0.02
    with pytest.raises(ValueError, match="num_classes"):
        ShapesDataset(32, num_classes=11)
    with pytest.raises(ValueError, match="seed"):
        ShapesDataset(32, seed=-1)


def test_shapes_main_shape_is_the_label():
    # With distractors drawn behind or in front, the label's shape must still be the largest
    # object: rendered alone (same rng stream) its mask is visible. Check the circle class
    # against a square: a circle's pixels fill ~pi/4 of its bounding box.
    from ylg.data.shapes import _draw_shape

    mask = Image.new("L", (400, 400), 0)
    _draw_shape(mask, "circle", 200, 200, 100, 0.3)
    fill = np.asarray(mask).astype(bool).mean() * 400 * 400 / (200 * 200)
    assert abs(fill - np.pi / 4) < 0.01
    mask = Image.new("L", (400, 400), 0)
    _draw_shape(mask, "ring", 200, 200, 100, 0.0)
    fill = np.asarray(mask).astype(bool).mean() * 400 * 400 / (200 * 200)
    assert abs(fill - np.pi / 4 * (1 - 0.58**2)) < 0.01


def test_dataloader_with_workers(tmp_path):
    rng = np.random.default_rng(7)
    for i in range(4):
        save(tmp_path / f"{i}.png", random_rgb(rng, 12, 12))
    ds = make_dataset(tmp_path, 8)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    images, labels = batches[1]
    assert images.shape == (2, 3, 8, 8) and labels.dtype == torch.int64
    torch.testing.assert_close(images[0], ds[2][0])


def test_large_jpeg_reduced_decode_matches_full_decode(tmp_path):
    # load_image lets libjpeg decode big JPEGs at a reduced scale; the result must stay close
    # to decoding everything and resizing.
    yy, xx = np.mgrid[0:384, 0:512] / 384.0
    smooth = np.stack([np.sin(3 * xx), np.cos(2 * yy), np.sin(xx + yy)], axis=-1)
    pixels = np.round((smooth + 1) * 127.5).astype(np.uint8)
    path = save(tmp_path / "big.jpg", pixels, quality=95)
    fast = load_image(path, 32)
    with Image.open(path) as image:
        image.load()
        full = pil_to_tensor(image, 32)
    assert (fast - full).abs().max() < 0.04
