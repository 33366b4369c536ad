"""Trained models that ship inside the package: load them by name, no training, no download.

Each model is three files in ``ylg/models/weights/``: ``NAME-G.safetensors`` (the generator's
EMA weights), ``NAME-D.safetensors`` (the discriminator) and ``NAME.json`` (the options that
shape the models, the class names, the training step and the SHA-256 of both weight files).
The model card, ``weights/MODEL_CARD.md``, says how they were trained and on which data.

    from ylg.models.pretrained import PRETRAINED, load_pretrained
    m = load_pretrained("emoji32-ylg")              # m.G, m.D in eval mode, m.class_names, ...
    export_pretrained("runs/emoji32-ylg", "emoji32-ylg", "src/ylg/models/weights")

safetensors holds plain tensors only (no pickled code), so loading a shipped file cannot run
code; the hashes are checked on every load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ylg.models.loading import MODEL_OPTIONS, LoadedModels, build_models, load_for_inference
from ylg.runtime.checkpoint import load_checkpoint
from ylg.runtime.files import atomic_path, atomic_write_text, file_digest

__all__ = [
    "PRETRAINED",
    "WEIGHTS_DIR",
    "available",
    "export_pretrained",
    "load_models",
    "load_pretrained",
]

#: where the shipped files live
WEIGHTS_DIR = Path(__file__).with_name("weights")
FORMAT = "ylg-pretrained-1"


def available(folder: str | os.PathLike = WEIGHTS_DIR) -> list[str]:
    """Names of the models in ``folder`` (those with a ``NAME.json``), sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.json"))


#: the names of the models shipped with this installation
PRETRAINED: tuple[str, ...] = tuple(available())


def _files(name: str, folder: Path) -> tuple[Path, Path, Path]:
    return (
        folder / f"{name}.json",
        folder / f"{name}-G.safetensors",
        folder / f"{name}-D.safetensors",
    )


def load_pretrained(
    name: str, device: str | torch.device = "cpu", *, folder: str | os.PathLike = WEIGHTS_DIR
) -> LoadedModels:
    """G (EMA weights) and D of the shipped model ``name``, in eval mode on ``device``.

    Raises ValueError for an unknown name (listing the valid ones) or a weight file whose
    SHA-256 differs from the one recorded in ``NAME.json``."""
    folder = Path(folder)
    meta_path, g_path, d_path = _files(name, folder)
    if not meta_path.is_file():
        valid = ", ".join(available(folder)) or "none in this installation"
        raise ValueError(f"unknown pretrained model {name!r}; valid: {valid}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path} is not valid JSON ({err}): a damaged model file") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a ylg pretrained model (format {FORMAT!r})")
    for path, key in ((g_path, "G_sha256"), (d_path, "D_sha256")):
        digest = file_digest(path)
        if digest != meta[key]:
            raise ValueError(f"{path} has SHA-256 {digest}, expected {meta[key]} (damaged file)")
    G, D = build_models(meta["config"], meta["num_classes"], device="cpu")
    G.load_state_dict(load_file(g_path))
    D.load_state_dict(load_file(d_path))
    return LoadedModels(
        G=G.to(device).eval(),
        D=D.to(device).eval(),
        config=meta["config"],
        step=int(meta["step"]),
        path=meta_path,
        used_ema=bool(meta["used_ema"]),
        class_names=meta.get("class_names"),
    )


def _save_state(state: dict[str, torch.Tensor], path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    path.chmod(0o644)  # safetensors writes 0600; shipped files must be readable by all


def export_pretrained(
    checkpoint: str | os.PathLike, name: str, folder: str | os.PathLike = WEIGHTS_DIR
) -> Path:
    """Write ``checkpoint``'s EMA generator (else its raw one) and discriminator as the
    pretrained model ``name`` in ``folder``; no optimizer state. Returns ``NAME.json``."""
    folder = Path(folder)
    ckpt = load_checkpoint(checkpoint)
    meta_path, g_path, d_path = _files(name, folder)
    ema = ckpt.get("G_ema") is not None
    _save_state(ckpt["G_ema"] if ema else ckpt["G"], g_path)
    _save_state(ckpt["D"], d_path)
    meta = {
        "format": FORMAT,
        "name": name,
        "config": {k: ckpt["config"][k] for k in MODEL_OPTIONS},
        "num_classes": int(ckpt["num_classes"]),
        "class_names": ckpt.get("class_names"),
        "step": int(ckpt["step"]),
        "used_ema": ema,
        "G_sha256": file_digest(g_path),
        "D_sha256": file_digest(d_path),
    }
    return atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")


def load_models(
    source: str | os.PathLike, device: str | torch.device = "cpu", *, use_ema: bool = True
) -> LoadedModels:
    """G and D from a run directory or checkpoint file, else from the shipped model of that
    name (:data:`PRETRAINED`); what ``generate``, ``invert`` and ``attention`` load.

    Shipped models hold only the EMA generator, so ``use_ema=False`` is refused for them."""
    path = Path(source)
    if not path.exists() and str(source) in available():
        if not use_ema:
            raise ValueError(f"{source} is a shipped model: it holds only the EMA generator")
        return load_pretrained(str(source), device)
    if not path.exists():
        names = ", ".join(available()) or "none in this installation"
        raise FileNotFoundError(
            f"checkpoint or run directory {source} does not exist, and it is not the name of a "
            f"shipped model ({names})"
        )
    return load_for_inference(path, device=device, use_ema=use_ema)
