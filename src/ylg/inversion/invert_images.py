"""Invert image files with a checkpoint and write every result to a folder (``ylg invert``).

For each image ``<stem>`` and method ``M`` (one method, or several with ``compare``)::

    OUT/<stem>/target.png               the image as the model sees it (crop, resize)
    OUT/<stem>[/M]/reconstruction.png   G(z*) at the model's resolution
    OUT/<stem>[/M]/comparison.png       target | reconstruction, enlarged
    OUT/<stem>[/M]/losses.png           the loss curve of every restart (best in bold)
    OUT/<stem>/attention.png            D's attention on the target, per head (``relative``
                                        maps: 1 = uniform within the head's mask)
    OUT/<stem>[/M]/latent.pt            {"z": [z_dim], "label": int | None, ...}
    OUT/<stem>[/M]/result.json          PSNR, SSIM, final loss, class, settings, seconds
    OUT/comparison.png                  with ``compare``: target | method 1 | method 2 | ...
    OUT/summary.json                    every result.json in one list
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ylg.attention.analysis import head_names, saliency_maps
from ylg.data import load_image
from ylg.inversion.invert import InversionResult, invert
from ylg.inversion.losses import METHODS, check_method, original_heads
from ylg.inversion.quality import reconstruction_quality
from ylg.models.pretrained import load_models
from ylg.runtime.device import resolve_device
from ylg.viz.attention import saliency_figure, save_figure
from ylg.viz.grids import make_grid, save_image

__all__ = ["check_methods_usable", "invert_images"]


def check_methods_usable(methods: Sequence[str], D: nn.Module) -> None:
    """ValueError if a method is unknown or needs D's attention and D has none."""
    for method in methods:
        check_method(method)
        if METHODS[method][1] and getattr(D, "attention", None) is None:
            raise ValueError(
                f"method {method!r} needs the discriminator's attention, but this checkpoint "
                f"has none (attention variant "
                f"{getattr(D, 'attention_variant', 'none')!r}); use 'pixel' or 'features'"
            )
        if method == "original":
            original_heads(D.attention)  # raises when D has no RTL head


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    stems, seen = [], {}
    for p in paths:
        stem = p.stem or "image"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        stems.append(stem if n == 0 else f"{stem}-{n}")
    return stems


def _enlarged(images: Tensor, min_side: int = 128) -> Tensor:
    scale = max(1, min_side // images.shape[-1])
    return images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def _loss_plot(history: Tensor, best: int, labels: Tensor | None, title: str, path: Path):
    """``history [restarts, steps + 1]``: one line per restart, log scale, best in bold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    steps = torch.arange(history.shape[1])
    for r in range(history.shape[0]):
        name = f"restart {r}" + ("" if labels is None else f" (class {int(labels[r])})")
        kw = {"linewidth": 2.2, "zorder": 3} if r == best else {"linewidth": 0.9, "alpha": 0.7}
        ax.plot(steps.numpy(), history[r].clamp_min(1e-12).numpy(), label=name, **kw)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    if history.shape[0] <= 12:
        ax.legend(fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _comparison_sheet(
    targets: Tensor, columns: dict[str, Tensor], scores: dict[str, list[dict]], path: Path
):
    """Rows = images; columns = target | each method (Figure 5 style), PSNR under each."""
    from matplotlib.figure import Figure

    rows, cols = targets.shape[0], 1 + len(columns)
    fig = Figure(figsize=(1.9 * cols, 2.0 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)

    def show(ax, img: Tensor):
        ax.imshow(((img.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy())
        ax.set_xticks([])
        ax.set_yticks([])

    for i in range(rows):
        show(axes[i, 0], targets[i])
        if i == 0:
            axes[i, 0].set_title("target", fontsize=9)
        for j, (method, recon) in enumerate(columns.items(), start=1):
            show(axes[i, j], recon[i])
            if i == 0:
                axes[i, j].set_title(method, fontsize=9)
            s = scores[method][i]
            axes[i, j].set_xlabel(f"{s['psnr']:.1f} dB / {s['ssim']:.2f}", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _write_one(
    folder: Path,
    target: Tensor,
    result: InversionResult,
    i: int,
    record: dict,
) -> dict:
    recon = result.reconstructions[i]
    quality = reconstruction_quality(target, recon)
    folder.mkdir(parents=True, exist_ok=True)
    save_image(recon, folder / "reconstruction.png")
    pair = _enlarged(torch.stack([target, recon]))
    save_image(make_grid(pair, nrow=2, padding=2, pad_value=255), folder / "comparison.png")
    restart_labels = None if result.restart_labels is None else result.restart_labels[i]
    _loss_plot(
        result.history[i],
        int(result.best[i]),
        restart_labels,
        f"{record['image']}: {result.method}",
        folder / "losses.png",
    )
    label = None if result.labels is None else int(result.labels[i])
    torch.save(
        {"z": result.latents[i].clone(), "label": label, "method": result.method,
         "checkpoint": record["checkpoint"], "checkpoint_step": record["checkpoint_step"]},
        folder / "latent.pt",
    )  # fmt: skip
    out = {
        **record,
        "method": result.method,
        "label": label,
        "psnr": quality["psnr"],
        "ssim": quality["ssim"],
        "final_loss": float(result.losses[i]),
        "best_restart": int(result.best[i]),
        "seconds_per_image": result.seconds / result.latents.shape[0],
        "folder": str(folder),
    }
    (folder / "result.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def _attention_figures(D: nn.Module, targets: Tensor, folders: Sequence[Path]) -> None:
    """``folder/attention.png``: D's attention on each target, ``relative`` maps per head."""
    maps = saliency_maps(D, targets, normalization="relative").cpu()  # [B, heads, hk, wk]
    names = head_names(D.attention, maps.shape[1])
    for target, sal, folder in zip(targets.cpu(), maps, folders):
        fig = saliency_figure(
            target, sal, title="D's attention on the target (1 = uniform within the mask)",
            head_names=names,
        )  # fmt: skip
        save_figure(fig, folder / "attention.png")


def invert_images(
    checkpoint: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    methods: Sequence[str] = ("saliency-heads",),
    compare: bool = False,
    label: int | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    top_k: int = 3,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    use_ema: bool = True,
    progress: bool = True,
    lookahead: bool | None = None,
    normalization: str | None = None,
    on_estimate=None,
) -> list[dict]:
    """Invert image files with a checkpoint and write the files listed in the module doc.

    ``methods``: one method, or several with ``compare=True`` (every method inverts every
    image with the same seed and budget). ``label``: the class of all images, or ``None`` to
    search D's ``top_k`` classes (conditional models). ``steps``, ``restarts``, ``lr``,
    ``lookahead``: ``None`` = each method's default (:data:`ylg.inversion.invert.METHOD_DEFAULTS`).
    ``on_estimate(method, seconds)`` is called with each inversion's estimated run time.
    Returns the per-(image, method) records also written to ``OUT/summary.json``.

    Raises:
        FileNotFoundError: the checkpoint or an image does not exist.
        ValueError: unreadable image, class out of range, unknown method, or a saliency
            method with a checkpoint without attention.
    """
    methods = list(methods)
    if not methods:
        raise ValueError("methods must name at least one inversion method")
    if len(methods) > 1 and not compare:
        raise ValueError(f"several methods {methods} need compare=True (--compare)")
    if not images:
        raise ValueError("no images given: pass at least one image file")
    for m in methods:
        check_method(m)
    dev = resolve_device(device)
    models = load_models(checkpoint, device=dev, use_ema=use_ema)
    G, D = models.G, models.D
    check_methods_usable(methods, D)
    num_classes = int(G.num_classes)
    if label is not None:
        if num_classes == 0:
            raise ValueError(f"--class {label} given but the checkpoint's model is unconditional")
        if not 0 <= label < num_classes:
            raise ValueError(
                f"class {label} is out of range: the model has {num_classes} classes "
                f"(valid: 0..{num_classes - 1})"
            )
    paths = [Path(p) for p in images]
    targets = torch.stack([load_image(p, G.resolution) for p in paths])  # [B, 3, R, R]
    stems = _unique_stems(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stem, target in zip(stems, targets):
        save_image(target, out / stem / "target.png")
    if getattr(D, "attention", None) is not None:
        _attention_figures(D, targets.to(dev), [out / stem for stem in stems])

    labels = None if label is None else torch.full((len(paths),), label, dtype=torch.long)
    records: list[dict] = []
    columns: dict[str, Tensor] = {}
    scores: dict[str, list[dict]] = {}
    for method in methods:
        result = invert(
            G, D, targets, labels, method=method, steps=steps, lr=lr, restarts=restarts,
            seed=seed, top_k=top_k, batch_size=batch_size, progress=progress,
            lookahead=lookahead, normalization=normalization,
            on_estimate=None if on_estimate is None else (lambda s, m=method: on_estimate(m, s)),
        )  # fmt: skip
        columns[method] = result.reconstructions
        scores[method] = []
        for i, (path, stem) in enumerate(zip(paths, stems)):
            folder = out / stem / method if compare else out / stem
            record = {
                "image": str(path),
                "label_given": label is not None,
                **result.settings,
                "seed": seed,
                "checkpoint": str(models.path),
                "checkpoint_step": models.step,
            }
            rec = _write_one(folder, targets[i], result, i, record)
            records.append(rec)
            scores[method].append(rec)
    if compare:
        _comparison_sheet(targets, columns, scores, out / "comparison.png")
    (out / "summary.json").write_text(json.dumps(records, indent=2) + "\n")
    return records
