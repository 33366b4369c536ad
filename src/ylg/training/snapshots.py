"""Snapshots during training: a sample grid of fixed latents (one class per row) and the
attention maps of the first few, into ``samples/`` and ``attention/`` (and TensorBoard)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ylg.attention.analysis import head_names
from ylg.training.sampler import latents
from ylg.training.state import Run, to_device
from ylg.training.stats import StatsWriter
from ylg.viz.grids import make_grid, save_image
from ylg.viz.snapshots import attention_snapshot_figure

FIXED = 2_000_000  # latent-stream id of the fixed sample grid


@dataclass
class FixedLatents:
    """The latents (and classes) every snapshot of a run draws: ``z`` [n, z_dim], ``y`` [n]."""

    z: torch.Tensor
    y: torch.Tensor | None
    nrow: int  # images per row of the grid

    @property
    def n(self) -> int:
        return len(self.z)


def fixed_latents(seed: int, resolution: int, z_dim: int, num_classes: int) -> FixedLatents:
    """8 per row up to 64 px (else 4); one row per class up to twice as many rows as columns
    (the built-in 10 shapes: 10 rows), else a square grid."""
    nrow = 8 if resolution <= 64 else 4
    n = nrow * (num_classes if nrow < num_classes <= 2 * nrow else nrow)
    z, _ = latents(seed, 0, FIXED, n, z_dim, 0)
    y = (torch.arange(n) // nrow) % num_classes if num_classes > 0 else None  # a class per row
    return FixedLatents(z, y, nrow)


@torch.no_grad()
def write_snapshot(run: Run, fixed: FixedLatents, writer: StatsWriter, step: int) -> None:
    """Sample grid of the fixed latents, and attention maps of the first few (rank 0)."""
    if not run.ctx.main:
        return
    Gs = run.nets.G_sample
    class_names, device, run_dir = run.data.class_names, run.ctx.device, run.run_dir
    was_training = Gs.training
    Gs.eval()  # BN running statistics: the same image for the same latent
    z, y = fixed.z.to(device), to_device(fixed.y, device)
    images = Gs(z, y).float().cpu()
    row_labels = None
    if class_names is not None and fixed.y is not None:  # one class per row
        row_labels = [
            class_names[c] if c < len(class_names) else str(c)
            for c in fixed.y[:: fixed.nrow].tolist()
        ]
    grid = make_grid(images, nrow=fixed.nrow, row_labels=row_labels)
    save_image(grid, run_dir / "samples" / f"step-{step:07d}.png")
    writer.image("samples", grid, step)
    if getattr(Gs, "attention", None) is not None:
        k = min(4, fixed.n)
        few, probs = Gs(z[:k], None if y is None else y[:k], return_attention=True)
        pic = attention_snapshot_figure(  # relative maps, head names, one colour bar
            few.float().cpu(),
            probs.float().cpu(),
            head_names=head_names(Gs.attention),
            title=f"G attention, step {step}",
        )
        save_image(pic, run_dir / "attention" / f"step-{step:07d}.png")
        writer.image("attention", pic, step)
    Gs.train(was_training)
