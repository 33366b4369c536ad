"""Reference statistics (compute, save/load, cache) and evaluate_generator, with a cheap
stand-in for Inception so that the plumbing is checked against direct computations."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ylg.metrics import (
    ReferenceStats,
    compute_reference_stats,
    evaluate_generator,
    feature_statistics,
    fid_from_statistics,
    inception_score,
    kid_from_features,
    reference_stats,
    to_uint8,
)
from ylg.metrics import stats as stats_module
from ylg.metrics.inception import check_uint8_images

DIM = 24  # feature size of the stand-in (Inception's 2048 makes every FID an 8 s eig)


class FakeInception(nn.Module):
    """A fixed random map uint8 [N, 3, H, W] -> (features [N, DIM] >= 0, logits [N, 50]).

    Computed in float64 and rounded to float32, so a row does not depend on its batch.
    """

    def __init__(self, extractor_id: str = "fake-extractor", seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.proj = nn.Parameter(torch.randn(48, DIM, generator=g).double(), requires_grad=False)
        self.head = nn.Parameter(torch.randn(DIM, 50, generator=g).double(), requires_grad=False)
        self.extractor_id = extractor_id
        self.calls = 0

    def forward(self, x):
        check_uint8_images(x)
        self.calls += 1
        small = nn.functional.adaptive_avg_pool2d(x.double() / 255, 4).flatten(1)  # [N, 48]
        pool = torch.relu(small @ self.proj - 0.5 * self.proj.sum(0))  # [N, DIM]
        return pool.float(), (pool @ self.head).float()


class FakeG(nn.Module):
    def __init__(self, resolution=8, num_classes=3, z_dim=6):
        super().__init__()
        self.resolution, self.num_classes, self.z_dim = resolution, num_classes, z_dim
        self.fc = nn.Linear(z_dim, 3 * resolution * resolution)
        self.embed = nn.Embedding(max(num_classes, 1), 3 * resolution * resolution)
        self.seen_training = []

    def forward(self, z, y=None):
        self.seen_training.append(self.training)
        h = self.fc(z)
        if self.num_classes:
            h = h + self.embed(y)
        return torch.tanh(h).view(-1, 3, self.resolution, self.resolution)


def fake_dataset(n=40, resolution=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, resolution, resolution, generator=g) * 2 - 1
    return TensorDataset(images, torch.arange(n) % 3)


@pytest.fixture(autouse=True)
def quiet_undersampling():
    # The fake sets are far smaller than 2048 samples; that warning is tested on its own.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fewer than the feature dimension")
        yield


# --- compute_reference_stats ---------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_reference_stats_equal_np_cov_of_the_features(batch_size):
    data = fake_dataset()
    inception = FakeInception()
    ref = compute_reference_stats(
        data, batch_size=batch_size, inception=inception, progress=False, keep_features=15
    )
    pool, _ = inception(to_uint8(data.tensors[0]))
    pool = pool.double().numpy()
    np.testing.assert_allclose(ref.mu, pool.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ref.sigma, np.cov(pool, rowvar=False), rtol=1e-8, atol=1e-10)
    assert (ref.n, ref.resolution, ref.extractor) == (40, 8, "fake-extractor")
    # 15 kept rows, all distinct rows of the full feature matrix.
    assert ref.features.shape == (15, DIM) and ref.features.dtype == np.float32
    rows = {tuple(r) for r in pool.astype(np.float32)}
    assert all(tuple(r) in rows for r in ref.features)
    assert len({tuple(r) for r in ref.features}) == 15


def test_reference_stats_of_a_subset_use_n_distinct_images():
    data = fake_dataset(n=40)
    inception = FakeInception()
    ref = compute_reference_stats(data, n=10, inception=inception, progress=False, seed=3)
    pool, _ = inception(to_uint8(data.tensors[0]))
    idx = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:10]
    np.testing.assert_allclose(ref.mu, pool[idx].double().mean(0).numpy(), rtol=1e-10)
    assert ref.n == 10 and ref.features.shape == (10, DIM)


def test_reference_stats_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"n must be an integer in \[2, 40\].*got 41"):
        compute_reference_stats(fake_dataset(), n=41, inception=FakeInception(), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        compute_reference_stats(
            fake_dataset(), batch_size=0, inception=FakeInception(), progress=False
        )


def test_few_reference_images_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match=f"10 images, fewer than the feature dimension {DIM}"):
            compute_reference_stats(fake_dataset(), n=10, inception=FakeInception(), progress=False)


# --- save / load -------------------------------------------------------------------------


def test_save_load_round_trip_and_checks(tmp_path):
    ref = compute_reference_stats(fake_dataset(), inception=FakeInception(), progress=False)
    ref.source = "somewhere"
    path = ref.save(tmp_path / "ref.npz")
    back = ReferenceStats.load(path, resolution=8, extractor="fake-extractor")
    assert np.array_equal(back.mu, ref.mu) and np.array_equal(back.sigma, ref.sigma)
    assert np.array_equal(back.features, ref.features)
    assert (back.n, back.resolution, back.extractor, back.source) == (
        40,
        8,
        "fake-extractor",
        "somewhere",
    )
    with pytest.raises(ValueError, match=r"8x8 images, but the images to compare are 16x16"):
        ReferenceStats.load(path, resolution=16)
    with pytest.raises(
        ValueError, match="feature extractor 'fake-extractor', not the loaded 'other'"
    ):
        ReferenceStats.load(path, extractor="other")
    np.savez(tmp_path / "foreign.npz", mu=ref.mu, sigma=ref.sigma)
    with pytest.raises(ValueError, match="not a ylg reference statistics file"):
        ReferenceStats.load(tmp_path / "foreign.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        ReferenceStats.load(tmp_path / "missing.npz")
    ref.features = None
    ref.save(path)
    assert ReferenceStats.load(path).features is None


# --- disk cache --------------------------------------------------------------------------


def test_cache_is_reused_only_for_the_same_key(tmp_path, monkeypatch):
    monkeypatch.setenv("YLG_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    source = tmp_path / "data.npz"
    np.savez(source, images=rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8))
    inception = FakeInception()

    def stats(source=source, resolution=8, **kw):
        args = dict(n=None, seed=0, keep_features=5, inception=inception, progress=False)
        return reference_stats(source, resolution, **{**args, **kw})

    first = stats()
    calls = inception.calls
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == 1
    again = stats()
    assert inception.calls == calls  # from the cache, no feature extraction
    assert np.array_equal(first.sigma, again.sigma) and again.source == str(source.resolve())

    stats(n=10)  # another subset size
    stats(resolution=4)  # another resolution
    stats(inception=FakeInception("other-weights"))  # another weight file
    os.utime(source, ns=(1, 1))  # the data changed
    stats()
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == 5
    assert stats(cache=False).n == 12
    with pytest.raises(FileNotFoundError, match="nowhere"):
        stats(source=tmp_path / "nowhere")


def test_cache_key_fingerprints_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1")
    before = stats_module.source_fingerprint(tmp_path / "a")
    (tmp_path / "a" / "y.png").write_bytes(b"2")
    assert stats_module.source_fingerprint(tmp_path / "a") != before
    assert stats_module.source_fingerprint(None) == "builtin"


# --- evaluate_generator ------------------------------------------------------------------


@pytest.fixture
def reference():
    return compute_reference_stats(
        fake_dataset(n=60), inception=FakeInception(), progress=False, keep_features=30
    )


def direct_metrics(G, n, reference, seed=0):
    """What evaluate_generator should compute: the same samples, features and definitions."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    y = torch.randint(0, G.num_classes, (n,), generator=gen) if G.num_classes else None
    G.eval()
    with torch.no_grad():
        pool, logits = FakeInception()(to_uint8(G(z, y)))
    mu, sigma = feature_statistics(pool)
    return {
        "fid": fid_from_statistics(mu, sigma, reference.mu, reference.sigma),
        "is": inception_score(logits)[0],
        "kid": kid_from_features(pool, reference.features, subset_size=min(n, 30))[0],
    }


@pytest.mark.parametrize("num_classes", [0, 3])
def test_evaluate_generator_equals_direct_computation(reference, num_classes):
    torch.manual_seed(0)
    G = FakeG(num_classes=num_classes)
    got = evaluate_generator(
        G, n=25, reference=reference, metrics=("fid", "is", "kid"), batch_size=4,
        inception=FakeInception(), progress=False,
    )  # fmt: skip
    assert set(got) == {"fid", "is", "is_std", "kid", "kid_std"}
    want = direct_metrics(G, 25, reference)
    for key in ("fid", "is", "kid"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert got["fid"] > 1.0 and got["is"] > 1.0


def test_evaluate_generator_does_not_depend_on_batch_size_and_restores_mode(reference):
    torch.manual_seed(0)
    G = FakeG()
    G.train()
    kwargs = dict(n=40, reference=reference, inception=FakeInception(), progress=False)
    small = evaluate_generator(G, batch_size=3, **kwargs)
    large = evaluate_generator(G, batch_size=64, **kwargs)
    for key in small:
        assert small[key] == pytest.approx(large[key], rel=1e-9, abs=1e-12), key
    assert G.training and not any(G.seen_training)
    other_seed = evaluate_generator(G, batch_size=64, seed=1, **kwargs)
    assert other_seed["fid"] != small["fid"]


def test_evaluate_generator_with_is_only_needs_no_reference():
    got = evaluate_generator(
        FakeG(), n=20, reference=None, metrics="is", inception=FakeInception(), progress=False
    )
    assert set(got) == {"is", "is_std"} and got["is"] >= 1.0


def test_evaluate_generator_errors(reference):
    fake = FakeInception()
    G = FakeG()
    kw = dict(inception=fake, progress=False)
    with pytest.raises(ValueError, match="subset of fid, is, kid.*'fd'"):
        evaluate_generator(G, n=20, reference=reference, metrics=("fd",), **kw)
    with pytest.raises(ValueError, match="fid need reference statistics"):
        evaluate_generator(G, n=20, reference=None, metrics=("fid",), **kw)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        evaluate_generator(G, n=1, reference=reference, metrics=("fid",), **kw)
    with pytest.raises(ValueError, match="8x8 images, but the images to compare are 16x16"):
        evaluate_generator(FakeG(resolution=16), n=20, reference=reference, **kw)
    with pytest.raises(ValueError, match="feature extractor 'fake-extractor', not the loaded 'x'"):
        evaluate_generator(
            G, n=20, reference=reference, inception=FakeInception("x"), progress=False
        )
    reference.features = None
    with pytest.raises(ValueError, match="KID needs reference features"):
        evaluate_generator(G, n=20, reference=reference, metrics=("kid",), **kw)

    class BadG(FakeG):
        def forward(self, z, y=None):
            return super().forward(z, y)[:, :1]

    with pytest.raises(ValueError, match=r"G must return images \[B, 3, R, R\]"):
        evaluate_generator(BadG(), n=20, reference=reference, metrics=("fid",), **kw)

    class NanG(FakeG):
        def forward(self, z, y=None):
            return super().forward(z, y) * float("nan")

    with pytest.raises(ValueError, match="non-finite"):
        evaluate_generator(NanG(), n=20, reference=reference, metrics=("fid",), **kw)
