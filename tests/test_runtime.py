"""The foundation floor (ylg.runtime): atomic writes, file digests, the cache folder, devices."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

from ylg.runtime.cache import ENV, cache_dir
from ylg.runtime.device import resolve_device
from ylg.runtime.files import (
    atomic_path,
    atomic_torch_save,
    atomic_write_text,
    file_digest,
    temp_path,
)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_an_interrupted_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "stats.npz"
    target.write_bytes(b"old content")
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            assert tmp.exists() and tmp != target
            raise error
        assert target.read_bytes() == b"old content"
        assert not temp_path(target).exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.npz"]


def test_an_interrupted_first_write_leaves_no_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_keeps_the_suffix_so_numpy_adds_none(tmp_path):
    import numpy as np

    target = tmp_path / "a.npz"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == target.parent
        np.savez(tmp, x=np.arange(3))
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_atomic_torch_save_round_trips(tmp_path):
    obj = {"w": torch.arange(5.0), "step": 3}
    path = atomic_torch_save(obj, tmp_path / "x.pt")
    back = torch.load(path, weights_only=True)
    assert back["step"] == 3 and torch.equal(back["w"], obj["w"])


def test_file_digest_streams_a_file_larger_than_its_block(tmp_path):
    blob = os.urandom(3 * (1 << 20) + 12345)  # more than three 1 MiB blocks
    path = tmp_path / "big.bin"
    path.write_bytes(blob)
    assert file_digest(path) == hashlib.sha256(blob).hexdigest()
    assert file_digest(path, "md5") == hashlib.md5(blob).hexdigest()
    path.write_bytes(blob[:-1])  # a changed file (size differs) is hashed again
    assert file_digest(path) == hashlib.sha256(blob[:-1]).hexdigest()


def test_file_digest_does_not_read_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (2 * (1 << 20) + 1))
    sizes = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            sizes.append(n)
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: Spy(real_open(p, mode)))
    file_digest(path, "sha1")
    assert sizes and all(0 < n <= 1 << 20 for n in sizes)


def test_cache_folder_honours_the_variable_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    assert cache_dir("stats") == tmp_path / "mine" / "stats"
    monkeypatch.delenv(ENV)
    assert cache_dir("npm") == tmp_path / "xdg" / "ylg" / "npm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "ylg"


def test_every_cache_user_takes_its_folder_from_the_one_variable(tmp_path, monkeypatch):
    from ylg.data.sources import default_cache_dir
    from ylg.metrics import gan_test, stats

    monkeypatch.setenv(ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    assert stats.cache_dir() == tmp_path / "stats"
    assert gan_test.default_cache_dir() == tmp_path / "gan-test"


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    with pytest.raises(ValueError, match="'gpu0' is not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
