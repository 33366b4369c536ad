"""`ylg data` machinery: image conversion (modes, crops, tf-bilinear), the npz / zip writers
and readers, bad inputs, atomic writes."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ylg.data import NpzDataset, ZipDataset, make_dataset
from ylg.data.crop_resize import prepare_image
from ylg.data.images import uint8_to_tensor
from ylg.data.items import Item, SkipItem
from ylg.data.prepare import write_dataset

RNG = np.random.default_rng(0)


def _rgb(h, w, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))


def _item(image: Image.Image, label=0, style=0, name="x") -> Item:
    return Item(name, lambda: image.copy(), label, style)


# ---------------------------------------------------------------------------------------------
# prepare_image


def _tf_reference(image: Image.Image, r: int) -> np.ndarray:
    """tf.image.crop_and_resize of the largest central square (ceil offsets), pixel by pixel."""
    x = np.asarray(image, dtype=np.float64)
    h, w = x.shape[:2]
    s = min(h, w)
    top, left = math.ceil((h - s) / 2), math.ceil((w - s) / 2)
    out = np.zeros((r, r, 3))
    for i in range(r):
        for j in range(r):
            yy = top + (i * (s - 1) / (r - 1) if r > 1 else 0.5 * (s - 1))
            xx = left + (j * (s - 1) / (r - 1) if r > 1 else 0.5 * (s - 1))
            y0, x0 = int(math.floor(yy)), int(math.floor(xx))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = yy - y0, xx - x0
            top_row = x[y0, x0] * (1 - dx) + x[y0, x1] * dx
            bottom_row = x[y1, x0] * (1 - dx) + x[y1, x1] * dx
            out[i, j] = top_row * (1 - dy) + bottom_row * dy
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("h", "w", "r"), [(40, 40, 16), (37, 52, 8), (50, 33, 12), (9, 9, 9)])
def test_tf_bilinear_matches_crop_and_resize_reference(h, w, r):
    image = _rgb(h, w, seed=h * w)
    got = prepare_image(image, r, resize="tf-bilinear")
    assert np.array_equal(got, _tf_reference(image, r))


def test_tf_bilinear_aliases_where_lanczos_does_not():
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    image = Image.fromarray(np.stack([board] * 3, -1))
    lanczos = prepare_image(image, 8).astype(int)
    tf = prepare_image(image, 8, resize="tf-bilinear").astype(int)
    assert np.abs(lanczos - 128).max() <= 2  # antialiased: flat grey
    assert tf.max() - tf.min() > 100  # 2-tap sampling keeps the checkerboard's extremes


def test_center_crop_and_none_crop():
    image = Image.new("RGB", (60, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # a blue left third
    centre = prepare_image(image, 20)  # the middle 20 x 20: all red
    assert (centre == [255, 0, 0]).all()
    padded = prepare_image(image, 60, crop="none")  # 60 x 60, image in the middle rows
    assert (padded[:20] == 255).all() and (padded[40:] == 255).all()  # white padding
    assert (padded[20:40, :20] == [0, 0, 255]).all() and (padded[20:40, 20:] == [255, 0, 0]).all()


def test_modes_are_converted():
    grey = Image.fromarray(np.full((8, 8), 77, np.uint8), "L")
    assert (prepare_image(grey, 8) == 77).all()
    sixteen = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert (prepare_image(sixteen, 8) == 255).all()
    rgba = Image.new("RGBA", (8, 8), (100, 0, 200, 64))
    expected = np.round(np.array([100, 0, 200]) * 64 / 255 + 255 * (1 - 64 / 255))
    assert np.abs(prepare_image(rgba, 8).astype(int) - expected).max() <= 1
    cmyk_black = Image.new("CMYK", (8, 8), (0, 0, 0, 255))
    cmyk_white = Image.new("CMYK", (8, 8), (0, 0, 0, 0))
    assert (prepare_image(cmyk_black, 8) == 0).all() and (prepare_image(cmyk_white, 8) == 255).all()


def test_bad_choices_and_min_size():
    image = _rgb(8, 8)
    with pytest.raises(ValueError, match="crop must be one of"):
        prepare_image(image, 8, crop="random")
    with pytest.raises(ValueError, match="resize must be one of"):
        prepare_image(image, 8, resize="bicubic")
    with pytest.raises(SkipItem, match="min-size 16"):
        prepare_image(image, 8, min_size=16)


# ---------------------------------------------------------------------------------------------
# Writers and readers


def _items(n=7, size=20):
    return [
        _item(_rgb(size, size + i, seed=i), label=i % 3, style=i % 2, name=f"i{i}")
        for i in range(n)
    ]


def test_zip_and_npz_readers_give_the_same_items(tmp_path):
    kwargs = dict(class_names=["a", "b", "c"], style_names=["s0", "s1"], progress=False)
    write_dataset(_items(), tmp_path / "d.npz", 16, **kwargs)
    write_dataset(_items(), tmp_path / "d.zip", 16, **kwargs)
    npz, zipped = make_dataset(tmp_path / "d.npz", 16), make_dataset(tmp_path / "d.zip", 16)
    assert isinstance(npz, NpzDataset) and isinstance(zipped, ZipDataset)
    assert len(npz) == len(zipped) == 7
    for i in range(7):
        (a, la), (b, lb) = npz[i], zipped[i]
        assert torch.equal(a, b) and la == lb == i % 3
        # and both equal the direct conversion of the source image
        direct = prepare_image(_rgb(20, 20 + i, seed=i), 16)
        assert torch.equal(a, uint8_to_tensor(direct))
    for ds in (npz, zipped):
        assert ds.class_names == ["a", "b", "c"] and ds.num_classes == 3
        assert ds.style_names == ["s0", "s1"] and ds.styles.tolist() == [i % 2 for i in range(7)]
    with np.load(tmp_path / "d.npz", allow_pickle=False) as d:  # no pickled objects
        assert d["images"].dtype == np.uint8 and d["labels"].dtype == np.int64
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        info = json.loads(z.read("dataset.json"))
    assert info["labels"][0] == ["00000000.png", 0] and info["class_names"] == ["a", "b", "c"]


def test_zip_reader_pickles_and_checks(tmp_path):
    import pickle

    write_dataset(_items(4), tmp_path / "d.zip", 8, class_names=["a", "b", "c"], progress=False)
    ds = ZipDataset(tmp_path / "d.zip", 8)
    first = ds[0][0]
    clone = pickle.loads(pickle.dumps(ds))  # worker processes: own handle
    assert torch.equal(clone[0][0], first)
    with pytest.raises(ValueError, match="label index out of range"):
        ZipDataset(tmp_path / "d.zip", 8, num_classes=2)
    assert ZipDataset(tmp_path / "d.zip", 8, num_classes=0).class_names is None
    # a plain zip of images, no dataset.json: sorted names, unlabeled
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        for name in ("b.png", "a.png", "__MACOSX/._a.png"):
            buf = io.BytesIO()
            _rgb(8, 8).save(buf, "PNG")
            z.writestr(name, buf.getvalue())
    plain = ZipDataset(tmp_path / "plain.zip", 8)
    assert plain.files == ["a.png", "b.png"] and plain.num_classes == 0
    assert plain.class_names is None
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read zip file"):
        ZipDataset(tmp_path / "bad.zip", 8)


def test_bad_items_are_counted_not_fatal(tmp_path):
    def corrupt():
        return Image.open(io.BytesIO(b"not an image at all"))

    def truncated():
        buf = io.BytesIO()
        _rgb(32, 32).save(buf, "PNG")
        image = Image.open(io.BytesIO(buf.getvalue()[:-40]))
        image.load()
        return image

    items = [
        _item(_rgb(16, 16)),
        Item("corrupt", corrupt),
        Item("truncated", truncated),
        _item(_rgb(3, 3), name="tiny"),
        _item(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), name="cmyk"),
        _item(Image.new("LA", (16, 16), (10, 0)), name="la"),
    ]
    summary = write_dataset(items, tmp_path / "o.npz", 8, min_size=8, progress=False)
    assert summary.written == 3
    assert summary.skipped == {
        "unreadable (UnidentifiedImageError)": 1,
        "unreadable (OSError)": 1,
        "smaller than --min-size 8 px": 1,
    }
    assert summary.skipped_examples["smaller than --min-size 8 px"] == "tiny"
    assert summary.converted == {"CMYK": 1, "LA": 1}
    images = np.load(tmp_path / "o.npz")["images"]
    assert (images[1] == 255).all() and (images[2] == 255).all()  # white CMYK, transparent LA
    assert "skipped 3" in summary.format()


@pytest.mark.parametrize("suffix", [".npz", ".zip"])
def test_failure_mid_write_leaves_no_output(tmp_path, suffix):
    def boom():
        raise KeyboardInterrupt  # a killed run (Ctrl-C), mid-way through the items

    items = [*_items(3), Item("boom", boom), *_items(2)]
    out = tmp_path / f"o{suffix}"
    with pytest.raises(KeyboardInterrupt):
        write_dataset(items, out, 8, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither OUT nor a temporary file
    # an existing OUT survives a failed --overwrite run untouched
    write_dataset(_items(2), out, 8, progress=False)
    before = out.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        write_dataset(items, out, 8, progress=False, overwrite=True)
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in one of \['.npz', '.zip'\]"):
        write_dataset(_items(1), tmp_path / "o.tar", 8)
    write_dataset(_items(1), tmp_path / "o.npz", 8, progress=False)
    with pytest.raises(ValueError, match="exists"):
        write_dataset(_items(1), tmp_path / "o.npz", 8, progress=False)
    with pytest.raises(ValueError, match="no image could be written"):
        write_dataset([_item(_rgb(2, 2))], tmp_path / "p.npz", 8, min_size=4, progress=False)
    assert not (tmp_path / "p.npz").exists()


def test_sigterm_mid_write_leaves_no_output(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from PIL import Image\n"
        "from ylg.cli.data import _sigterm_as_interrupt\n"
        "from ylg.data.items import Item\n"
        "from ylg.data.prepare import write_dataset\n"
        "def slow():\n"
        "    time.sleep(0.02)\n"
        "    return Image.new('RGB', (8, 8))\n"
        "with _sigterm_as_interrupt():\n"
        "    write_dataset([Item(str(i), slow) for i in range(5000)], sys.argv[1], 8,\n"
        "                  progress=False)\n"
    )
    out = tmp_path / "o.zip"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], env=env,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 60
    while not list(tmp_path.glob("o.zip.partial-*")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob("o.zip.partial-*")), "the writer never started"
    time.sleep(0.2)  # some images written
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert list(tmp_path.iterdir()) == []


def test_licence_and_summary_land_before_the_data(tmp_path, monkeypatch):
    """A kill between the files: never data without its licence (the re-run overwrites
    a licence without data)."""
    import os

    from ylg.runtime import files

    out = tmp_path / "d.npz"
    real_replace, order = os.replace, []

    def replace(src, dst):
        order.append(os.path.basename(dst))
        if os.path.basename(dst) == out.name:
            raise KeyboardInterrupt  # killed just before the data is renamed into place
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    extra = {"d.LICENSE.txt": "CC BY-SA"}
    with pytest.raises(KeyboardInterrupt):
        write_dataset(_items(2), out, 8, progress=False, extra_files=extra, summary_extra={})
    assert order == ["d.LICENSE.txt", "d.npz.summary.json", "d.npz"]
    assert not out.exists() and (tmp_path / "d.LICENSE.txt").read_text() == "CC BY-SA"
    monkeypatch.setattr(files.os, "replace", real_replace)
    summary = write_dataset(
        _items(2), out, 8, progress=False, extra_files=extra, summary_extra={"x": 1}
    )
    record = json.loads((tmp_path / "d.npz.summary.json").read_text())
    assert record["x"] == 1 and record["written"] == summary.written == 2


@pytest.mark.parametrize(
    "info", [[1, 2], {"labels": 5}, {"labels": [[1]]}, {"labels": [["a.png", "x"]]}]
)
def test_a_malformed_dataset_json_is_one_value_error_naming_the_file(tmp_path, info):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("dataset.json", json.dumps(info))
        z.writestr("a.png", b"x")
    with pytest.raises(ValueError, match=r"dataset.json in '.*bad.zip' is malformed"):
        ZipDataset(str(path), 8)
