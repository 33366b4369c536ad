"""Model folders: trained G and D that anyone can load, share and check; the shipped ones.

A model folder (``ylg export RUN --out DIR`` writes one) holds:

- ``G.safetensors``: the generator (its EMA weights when the run kept an EMA);
- ``D.safetensors``: the discriminator;
- ``model.json``: the format, the options that shape the models, the class names, the step,
  batch size and images seen, the training recipe and precision, and the SHA-256 of every
  other file of the folder;
- ``MODEL_CARD.md``: how it was trained and what it is for (a skeleton until filled in), and
  any licence files that travel with the weights.

Shipped models are such folders in ``ylg/models/weights/NAME/``. safetensors holds plain
tensors only (no pickled code), so loading a model cannot run code; the hashes are checked on
every load, so a damaged or edited file fails with one line naming it.

    from ylg.models.pretrained import PRETRAINED, export_model, load_pretrained
    m = load_pretrained("emoji32-ylg")           # a shipped model: m.G, m.D in eval mode, ...
    m = load_pretrained("exports/my-model")      # any model folder
    export_model("runs/emoji32-ylg", "exports/my-model")
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
    "FORMAT",
    "PRETRAINED",
    "WEIGHTS_DIR",
    "available",
    "export_model",
    "is_model_folder",
    "load_models",
    "load_pretrained",
    "model_info",
]

#: where the shipped model folders live
WEIGHTS_DIR = Path(__file__).with_name("weights")
FORMAT = "ylg-model-1"
META = "model.json"
#: the training options a model folder records as its recipe
RECIPE_OPTIONS = (
    "batch_size", "g_lr", "d_lr", "beta1", "beta2", "d_steps", "augment", "lecam", "ema",
    "ema_decay", "ema_start", "steps", "seed", "precision", "data",
)  # fmt: skip


def is_model_folder(path: str | os.PathLike) -> bool:
    """True for a folder with a ``model.json``."""
    return (Path(path) / META).is_file()


def available(folder: str | os.PathLike = WEIGHTS_DIR) -> list[str]:
    """Names of the model folders in ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if is_model_folder(p)) if folder.is_dir() else []


#: the names of the models shipped with this installation
PRETRAINED: tuple[str, ...] = tuple(available())


def _model_dir(name: str | os.PathLike, folder: Path) -> Path:
    """The folder of ``name``: a model folder path, else ``folder / name``."""
    if is_model_folder(name):
        return Path(name)
    if str(name) in available(folder):
        return folder / str(name)
    valid = ", ".join(available(folder)) or "none in this installation"
    raise ValueError(
        f"unknown pretrained model {str(name)!r}; valid: {valid} (or a model folder, "
        f"which holds a {META})"
    )


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path} is not valid JSON ({err}): a damaged model file") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a ylg model folder's {META} (format {FORMAT!r})")
    return meta


def model_info(name: str | os.PathLike, *, folder: str | os.PathLike = WEIGHTS_DIR) -> dict:
    """What a run started from model ``name`` records of it (``--init-from``): its name,
    step, images seen, number of classes and G's SHA-256, read from its ``model.json``."""
    root = _model_dir(name, Path(folder))
    meta = _read_meta(root / META)
    return {
        "name": meta.get("name", root.name),  # not where it lay: no machine's path
        "step": meta.get("step"),
        "images_seen": meta.get("images_seen"),
        "num_classes": meta.get("num_classes"),
        "G_sha256": meta.get("sha256", {}).get("G.safetensors"),
    }


def load_pretrained(
    name: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    folder: str | os.PathLike = WEIGHTS_DIR,
) -> LoadedModels:
    """G and D of the shipped model ``name`` (or of the model folder at path ``name``), in
    eval mode on ``device``.

    Raises ValueError, with one line naming the file, for an unknown name (listing the valid
    ones), a file whose SHA-256 differs from the one in ``model.json`` (damaged or edited), or
    a ``model.json`` whose options do not fit the weights."""
    root = _model_dir(name, Path(folder))
    meta_path = root / META
    meta = _read_meta(meta_path)
    for file, digest in meta["sha256"].items():
        path = root / file
        if not path.is_file():
            raise ValueError(f"{path} is missing from the model folder ({meta_path} lists it)")
        actual = file_digest(path)
        if actual != digest:
            raise ValueError(
                f"{path} has SHA-256 {actual}, expected {digest} (damaged or edited file)"
            )
    try:
        G, D = build_models(meta["config"], meta["num_classes"], device="cpu")
        G.load_state_dict(load_file(root / "G.safetensors"))
        D.load_state_dict(load_file(root / "D.safetensors"))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{meta_path} does not fit the weights beside it ({first})") from None
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


CARD_SKELETON = """# Model card: {name}

A class-conditional GAN from ylg ({attention} attention, {resolution}x{resolution}), exported
from a training run at step {step} ({images_seen} images seen, precision {precision}).

## Files

| file | SHA-256 |
|---|---|
{files}

## Data

(What it was trained on, and the data's licence.)

## Training

Recipe (from the run's options): {recipe}

## Metrics

(FID / KID with intervals, at which n, against which reference; GAN-test if labelled.)

## Limits

(What it is for, and what it is not.)
"""


def export_model(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    card: str | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write the model folder ``out`` from a run folder or checkpoint ``run``: G (EMA weights
    when kept) and D as safetensors, ``model.json``, ``MODEL_CARD.md`` (``card``, else a
    skeleton) and ``extra_files`` (``{file name: text}``, e.g. a data licence); no optimizer
    state. Returns ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; a model folder is a directory")
    ckpt = load_checkpoint(run)
    out.mkdir(parents=True, exist_ok=True)
    name = name or out.name
    ema = ckpt.get("G_ema") is not None
    _save_state(ckpt["G_ema"] if ema else ckpt["G"], out / "G.safetensors")
    _save_state(ckpt["D"], out / "D.safetensors")
    config = ckpt["config"]
    step, batch = int(ckpt["step"]), config.get("batch_size")
    # a run started from a model folder (--init-from) adds the images that model had seen
    init = (ckpt.get("extra") or {}).get("init")
    images_seen = step * batch if batch else None
    if init and images_seen is not None:
        images_seen = images_seen + init["images_seen"] if init.get("images_seen") else None
    recipe = {k: config[k] for k in RECIPE_OPTIONS if k in config}
    if isinstance(recipe.get("data"), str):
        recipe["data"] = Path(recipe["data"]).name  # the file's name, not where it lay
    precision = ckpt.get("precision", "fp32")
    for file, text in (extra_files or {}).items():
        atomic_write_text(out / file, text)
    weights = ("G.safetensors", "D.safetensors", *sorted(extra_files or {}))
    if card is None:
        card = CARD_SKELETON.format(
            name=name, attention=config["attention"], resolution=config["resolution"],
            step=step, images_seen=images_seen or "?", precision=precision,
            files="\n".join(f"| `{f}` | `{file_digest(out / f)}` |" for f in weights),
            recipe=", ".join(f"{k}={v}" for k, v in recipe.items()),
        )  # fmt: skip
    atomic_write_text(out / "MODEL_CARD.md", card)
    meta = {
        "format": FORMAT,
        "name": name,
        "config": {k: config[k] for k in MODEL_OPTIONS},
        "num_classes": int(ckpt["num_classes"]),
        "class_names": ckpt.get("class_names"),
        "step": step,
        "batch_size": batch,
        "images_seen": images_seen,
        "precision": precision,
        "recipe": recipe,
        "init_from": init or None,
        "used_ema": ema,
        "sha256": {f: file_digest(out / f) for f in (*weights, "MODEL_CARD.md")},
    }
    atomic_write_text(out / META, json.dumps(meta, indent=2) + "\n")
    return out


def load_models(
    source: str | os.PathLike, device: str | torch.device = "cpu", *, use_ema: bool = True
) -> LoadedModels:
    """G and D from a model folder, a run directory or checkpoint file, else from the shipped
    model of that name (:data:`PRETRAINED`); what ``generate``, ``invert`` and ``attention``
    load.

    Model folders hold only the EMA generator, so ``use_ema=False`` is refused for them."""
    path = Path(source)
    if is_model_folder(path) or (not path.exists() and str(source) in available()):
        if not use_ema:
            raise ValueError(f"{source} is a model folder: it holds only the EMA generator")
        return load_pretrained(source, device)
    if not path.exists():
        names = ", ".join(available()) or "none in this installation"
        raise FileNotFoundError(
            f"checkpoint or run directory {source} does not exist, and it is not the name of a "
            f"shipped model ({names})"
        )
    return load_for_inference(path, device=device, use_ema=use_ema)
