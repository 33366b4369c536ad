"""Where the Inception weights come from: a path, ``$YLG_INCEPTION_WEIGHTS``, or one download.

The standard file is torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (the same
tensors as pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``): the 2015-12-05 TF Inception
graph converted to PyTorch. As in ``torch.hub``, the 8 hex digits in a file name are the
prefix of its SHA-256; a download is checked against them and kept in the torch hub cache
(``<torch.hub.get_dir()>/checkpoints``), so it happens once.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
from pathlib import Path

import torch

from ylg.metrics.inception import InceptionV3FID

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
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention

_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (memoised on path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def default_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_message(url: str, cache_dir: Path, reason: str) -> str:
    name = url.rsplit("/", 1)[-1]
    return (
        f"Inception weights not available ({reason}). Download {name} from {url} "
        f"(or pt_inception-2015-12-05-6726825d.pth from {PYTORCH_FID_URL}) and either put it "
        f"at {cache_dir / name}, pass its path with --inception-weights, or set ${ENV_VAR}"
    )


def resolve_weights(
    weights: str | os.PathLike | None = None,
    *,
    url: str = WEIGHTS_URL,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Path of the weight file: ``weights``, else ``$YLG_INCEPTION_WEIGHTS``, else the cache.

    A file missing from the cache is downloaded from ``url`` and checked against the hash
    prefix in its name. Raises FileNotFoundError (naming the file to get and where to put it)
    when it cannot be had, ValueError when a download has the wrong hash.
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


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, without the ``num_batches_tracked`` counters (unused here)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"cannot read Inception weights from {str(path)!r}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} does not hold a state dict (got {type(state).__name__})")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def extractor_id(path: str | os.PathLike) -> str:
    """The name statistics are keyed by: the network and the weight file's SHA-256 prefix."""
    return f"{EXTRACTOR_NAME}:sha256-{file_sha256(path)[:16]}"


def load_inception(
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    *,
    url: str = WEIGHTS_URL,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> InceptionV3FID:
    """The FID Inception with the standard weights, in eval mode on ``device``.

    ``weights``: a weight file path; else ``$YLG_INCEPTION_WEIGHTS``; else the torch hub cache,
    downloading once. The state dict must match exactly (472 tensors; ``num_batches_tracked``
    may be absent). ``model.extractor_id`` names the network and the file's hash, so statistics
    made with other weights are never mistaken for these.
    """
    path = resolve_weights(weights, url=url, cache_dir=cache_dir, progress=progress)
    state = load_state_dict_file(path)
    model = InceptionV3FID()
    # The module's own counters are not in the file; load them from the module itself.
    full = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    full.update(state)
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{str(path)!r} is not an FID Inception-v3 state dict (expected the 472 tensors of "
            f"{WEIGHTS_URL.rsplit('/', 1)[-1]}): {err}"
        ) from None
    model.extractor_id = extractor_id(path)
    model.weights_path = str(path)
    return model.to(device).eval()
