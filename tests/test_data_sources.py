"""`ylg data folder | cifar10 | celeba` on small inputs that the tests make (no downloads)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from ylg.cli import main as cli_main
from ylg.data import make_dataset
from ylg.data.sources import cifar10 as C
from ylg.data.sources.celeba import celeba_source
from ylg.data.sources.folder import folder_source

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]  # fmt: skip


def _run(*argv) -> int:
    return cli_main(["data", *map(str, argv), "--quiet"])


# ---------------------------------------------------------------------------------------------
# CIFAR-10: a tiny tarball in the official format (Python 2 style pickles, bytes keys)


def _cifar_tarball(path, per_batch=3, seed=0):
    rng = np.random.default_rng(seed)
    truth = {}
    files = {}
    for name in [*C._TRAIN, *C._TEST]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        truth[name] = (data, labels)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [b"f.png"] * per_batch}  # fmt: skip
        files[name] = pickle.dumps(batch, protocol=2)
    files["batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}, protocol=2
    )
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return truth


def test_cifar10_reads_the_official_layout(tmp_path):
    truth = _cifar_tarball(tmp_path / "c.tar.gz")
    images, labels, names = C.read_cifar10(tmp_path / "c.tar.gz", "train")
    assert names == CIFAR_NAMES and images.shape == (15, 32, 32, 3)
    # reference: row k of a batch is 1024 red values, then 1024 green, then 1024 blue,
    # each a 32 x 32 image in row-major order
    data, batch_labels = truth["data_batch_2"]
    for k in range(3):
        for c in range(3):
            for y, x in [(0, 0), (5, 17), (31, 31)]:
                assert images[3 + k, y, x, c] == data[k, c * 1024 + y * 32 + x]
    assert labels[3:6].tolist() == batch_labels
    test_images, _, _ = C.read_cifar10(tmp_path / "c.tar.gz", "test")
    assert len(test_images) == 3
    assert len(C.read_cifar10(tmp_path / "c.tar.gz", "all")[0]) == 18


def test_cifar10_cli_writes_npz_with_class_names(tmp_path):
    truth = _cifar_tarball(tmp_path / "c.tar.gz")
    with pytest.warns(UserWarning, match="not the official CIFAR-10 tarball"):
        rc = _run("cifar10", "--archive", tmp_path / "c.tar.gz", "--out", tmp_path / "c.npz")
    assert rc == 0
    ds = make_dataset(tmp_path / "c.npz", 32)
    assert ds.class_names == CIFAR_NAMES and ds.num_classes == 10 and len(ds) == 15
    expected = truth["data_batch_1"][0][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(ds.images[0], expected)  # 32 px: stored exactly
    summary = json.loads((tmp_path / "c.npz.summary.json").read_text())
    assert summary["written"] == 15 and sum(summary["per_class"].values()) == 15


def test_cifar10_refuses_code_in_pickles_and_bad_archives(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    blob = pickle.dumps({b"data": Evil()}, protocol=2)
    with pytest.raises(ValueError, match=r"refusing to load (builtins|__builtin__)\.print"):
        C._load_batch(blob, "data_batch_1")
    with tarfile.open(tmp_path / "partial.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="data_batch_1 is missing"):
        C.read_cifar10(tmp_path / "partial.tar.gz")
    with pytest.raises(ValueError, match="split must be one of"):
        C.read_cifar10(tmp_path / "partial.tar.gz", "val")
    with pytest.raises(FileNotFoundError):
        C.read_cifar10(tmp_path / "nope.tar.gz")


class _FakeResponse(io.BytesIO):
    headers: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cifar10_download_checks_md5(tmp_path, monkeypatch):
    _cifar_tarball(tmp_path / "c.tar.gz")
    blob = (tmp_path / "c.tar.gz").read_bytes()
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return _FakeResponse(blob)

    monkeypatch.setattr(C.urllib.request, "urlopen", fake_urlopen)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=f"expected {C.MD5}"):
        C.download_cifar10(cache, progress=False)
    assert urls == [C.URL] and list((cache / "cifar10").iterdir()) == []  # nothing kept
    monkeypatch.setattr(C, "MD5", hashlib.md5(blob).hexdigest())
    path = C.download_cifar10(cache, progress=False)
    assert path.read_bytes() == blob
    C.download_cifar10(cache, progress=False)  # cached: no second download
    assert len(urls) == 2
    source = C.cifar10_source(None, split="test", cache_dir=cache, progress=False)
    assert source.total == 3 and source.class_names == CIFAR_NAMES


# ---------------------------------------------------------------------------------------------
# Image folders


def _save(path, image, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt)


def test_folder_with_classes_and_bad_files(tmp_path):
    src = tmp_path / "src"
    rgb = Image.new("RGB", (20, 30), (10, 20, 30))
    _save(src / "cat" / "a.png", rgb)
    _save(src / "cat" / "b.jpg", Image.new("CMYK", (20, 20), (0, 0, 0, 0)), "JPEG")
    _save(src / "dog" / "sub" / "c.png", Image.new("RGBA", (16, 16), (0, 0, 0, 0)))
    _save(src / "dog" / "d.png", Image.fromarray(np.full((16, 16), 65535, np.uint16)))
    _save(src / "dog" / "e.png", Image.new("L", (16, 16), 90))
    _save(src / "dog" / "tiny.png", rgb.resize((2, 2)))
    (src / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    _save(src / "stray.png", rgb)  # beside class folders: left out and counted
    (src / "empty").mkdir()
    buf = io.BytesIO()
    rgb.save(buf, "PNG")
    (src / "dog" / "trunc.png").write_bytes(buf.getvalue()[:-30])

    source = folder_source(src, resolution=8)
    assert source.class_names == ["cat", "dog"] and source.total == 8
    assert source.dropped == {"image directly in a folder with class subfolders": 1}
    out = tmp_path / "f.zip"
    assert _run("folder", src, "--resolution", 8, "--min-size", 4, "--out", out) == 0
    ds = make_dataset(out, 8)
    assert ds.class_names == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1, 1, 1]
    pixels = np.stack([np.asarray(ds.read_image(i)) for i in range(len(ds))])
    # a, CMYK white, 16-bit white, grey 90, transparent -> white (dog/sub/c.png comes last)
    assert [tuple(p[0, 0]) for p in pixels] == [(10, 20, 30), (255, 255, 255),
                                                (255, 255, 255), (90, 90, 90),
                                                (255, 255, 255)]  # fmt: skip
    summary = json.loads((tmp_path / "f.zip.summary.json").read_text())
    assert summary["skipped"] == {
        "smaller than --min-size 4 px": 1,
        "unreadable (OSError)": 1,  # the truncated PNG
        "unreadable (UnidentifiedImageError)": 1,  # the JPEG header with garbage after it
    }
    assert summary["per_class"] == {"cat": 2, "dog": 3}


def test_flat_folder_is_unlabeled_and_errors(tmp_path, capsys):
    for i in range(3):
        _save(tmp_path / "flat" / f"{i}.png", Image.new("RGB", (8, 8), (i, i, i)))
    source = folder_source(tmp_path / "flat")
    assert source.class_names is None and source.total == 3
    assert _run("folder", tmp_path / "flat", "--resolution", 8, "--out", tmp_path / "o.npz") == 0
    ds = make_dataset(tmp_path / "o.npz", 8)
    assert ds.num_classes == 0 and ds.class_names is None
    (tmp_path / "none").mkdir()
    assert _run("folder", tmp_path / "none", "--resolution", 8, "--out", tmp_path / "n.npz") == 2
    assert "no images found" in capsys.readouterr().err
    assert _run("folder", tmp_path / "flat", "--resolution", 8, "--out", tmp_path / "o.npz") == 2
    assert "exists" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# CelebA


def _face(seed: int) -> Image.Image:
    """178 x 218 with the face box (25, 57)-(153, 185) in one colour, the rest in another."""
    colour = (seed * 40 % 256, 200, 100)
    image = Image.new("RGB", (178, 218), (0, 0, 255))
    image.paste(colour, (25, 57, 153, 185))
    return image


def test_celeba_folder_and_zip_give_the_face_crop(tmp_path):
    folder = tmp_path / "img_align_celeba"
    for i in range(1, 4):
        _save(folder / f"{i:06d}.png", _face(i))
    with zipfile.ZipFile(tmp_path / "img_align_celeba.zip", "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"img_align_celeba/{f.name}")
    assert _run("celeba", folder, "--resolution", 16, "--out", tmp_path / "a.npz") == 0
    assert (
        _run("celeba", tmp_path / "img_align_celeba.zip", "--resolution", 16,
             "--out", tmp_path / "b.npz") == 0
    )  # fmt: skip
    a, b = np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"]
    assert np.array_equal(a, b) and a.shape == (3, 16, 16, 3)
    for i in range(3):  # the crop is exactly the face box: one colour
        assert (a[i] == np.array(_face(i + 1).getpixel((89, 121)), np.uint8)).all()
    # --crop center keeps the 178 x 178 middle square, which shows the blue border
    assert _run("celeba", folder, "--resolution", 16, "--crop", "center",
                "--out", tmp_path / "c.npz") == 0  # fmt: skip
    assert (np.load(tmp_path / "c.npz")["images"][0, 0, 0] == [0, 0, 255]).all()


def test_celeba_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="img_align_celeba"):
        celeba_source(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(ValueError, match="neither a folder nor a zip"):
        celeba_source(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="crop must be one of"):
        celeba_source(tmp_path, crop="face64")
