"""The demo job: train the ``demo`` preset on the built-in shapes, then draw and score it.

    from ylg.demo import run_demo
    print(run_demo("runs/demo", steps=200))   # what `ylg demo --steps 200` does

:func:`run_demo` leaves in its folder: the pattern figures (``patterns/``), sample grids and
attention snapshots during training (``samples/``, ``attention/``), the loss curves
(``loss.png``, from ``stats.jsonl``), a final truncated sample grid (one labelled row per
class) and interpolation GIF (``final/``), TensorBoard logs and the checkpoint
(``latest.pt``). It ends with the GAN-test accuracy of the EMA generator
(:mod:`ylg.metrics.gan_test`, untruncated samples), written to ``final/gan-test.json``.
Called again on the same folder it continues the run (:func:`demo_config`); ``restart=True``
(:func:`clear_run`) starts over.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from ylg.generate import generate, sample
from ylg.metrics.gan_test import GanTestResult, default_cache_dir, gan_test_run
from ylg.models.loading import load_for_inference
from ylg.training.config import TrainConfig, resolve
from ylg.training.loop import train
from ylg.training.resume import saved_config
from ylg.training.stats import plot_stats
from ylg.viz.grids import save_grid

try:
    from ylg.viz.patterns import render_patterns
except ImportError:  # matplotlib is optional: no pattern figures without it
    render_patterns = None

__all__ = ["GAN_TEST_PER_CLASS", "GRID_PER_CLASS", "RUN_OUTPUTS", "clear_run", "run_demo"]

# What a demo run writes into its folder (``restart`` removes exactly these).
RUN_OUTPUTS = (
    "latest.pt",
    "config.json",
    "stats.jsonl",
    "loss.png",
    "samples",
    "attention",
    "tensorboard",
    "final",
)

# Samples per class in the final grid (one row per class) and in the GAN-test.
GRID_PER_CLASS = 8
GAN_TEST_PER_CLASS = 50


def clear_run(out: str | Path) -> None:
    """Delete a previous demo run's outputs (:data:`RUN_OUTPUTS`) from ``out``."""
    for name in RUN_OUTPUTS:
        target = Path(out) / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def demo_config(out: Path, overrides: dict) -> tuple[TrainConfig, bool]:
    """``(config, resume)``: the run in ``out`` continued (its config.json plus
    ``overrides``) when it has a checkpoint, else the ``demo`` preset plus ``overrides``."""
    if (out / "config.json").exists() and (out / "latest.pt").exists():
        return saved_config(overrides, run_dir=out)[0], True
    return resolve("demo", overrides), False


def run_demo(
    out: str | Path,
    *,
    steps: int | None = None,
    attention: str | None = None,
    patterns: bool = True,
    progress: bool = True,
    restart: bool = False,
) -> str:
    """Train (or continue) the demo run in ``out``; return a report of where things are.

    Args:
        out: the run folder.
        steps: training steps (default: the preset's).
        attention: attention variant (default: the preset's, ``ylg``).
        patterns: also draw the pattern figures into ``out/patterns`` (needs matplotlib).
        progress: progress bars.
        restart: delete a previous demo run in ``out`` first (:func:`clear_run`).
    """
    out = Path(out)
    if restart:
        clear_run(out)
    lines = []
    if patterns and render_patterns is not None:
        files, _ = render_patterns(str(out / "patterns"))
        lines.append(f"  pattern figures     {out / 'patterns'}/ ({len(files)} files)")

    overrides = {}
    if steps is not None:
        overrides["steps"] = steps
    if attention is not None:
        overrides["attention"] = attention
    config, resume = demo_config(out, overrides)
    if resume:
        print(f"ylg demo: continuing the run in {out} (use --restart to start over)")
    print(
        f"ylg demo: training {config.attention} at {config.resolution}x{config.resolution}, "
        f"batch {config.batch_size}, {config.steps} steps on the built-in shapes, "
        f"{torch.get_num_threads()} CPU thread(s) -> {out}",
        file=sys.stderr,
    )
    result = train(config, out, resume=resume, progress=progress)

    plot_stats(out / "stats.jsonl", out / "loss.png")
    final, score = final_outputs(out, config, progress=progress)
    samples = sorted((out / "samples").glob("*.png"))
    snaps = sorted((out / "attention").glob("*.png"))
    status = "finished" if result.stopped == "finished" else "stopped by signal"
    lines = [
        f"ylg demo: {status} at step {result.step} of {config.steps}",
        *lines,
        f"  samples (training)  {samples[-1] if samples else '-'}  ({len(samples)} grids)",
        f"  attention snapshots {snaps[-1] if snaps else '-'}  ({len(snaps)} snapshots)",
        f"  final samples       {final[0]}",
        f"  interpolation       {final[1]}",
        *(
            [f"  GAN-test accuracy   {score.summary()}  ({out / 'final' / 'gan-test.json'})"]
            if score is not None
            else []
        ),
        f"  loss curves         {out / 'loss.png'}  (data: {out / 'stats.jsonl'})",
        f"  checkpoint          {result.checkpoint}",
        f"  tensorboard         tensorboard --logdir {out / 'tensorboard'}",
        f"  more samples        ylg generate {out} --n 64 --grid --out {out / 'more'}",
    ]
    return "\n".join(lines)


def final_outputs(
    out: Path, config: TrainConfig, *, progress: bool = True
) -> tuple[list[Path], GanTestResult | None]:
    """The final grid (one labelled row per class), the interpolation GIF and, for a
    class-conditional run on the built-in shapes, the GAN-test accuracy of the EMA generator
    on untruncated samples (written to ``final/gan-test.json``). Returns ``(paths, result)``;
    ``result`` is ``None`` when GAN-test does not apply."""
    models = load_for_inference(out)
    num_classes = int(getattr(models.G, "num_classes", 0))
    classes = [c for c in range(num_classes) for _ in range(GRID_PER_CLASS)] or None
    n = len(classes) if classes else 64
    final = generate(out, out / "final", n=n, classes=classes, grid=True, interpolate=12)
    if classes:  # the same samples again (same seed and truncation), rows named by class
        images, _ = sample(models.G, n, classes=classes, truncation=2.0, seed=0)
        names = models.class_names or [str(c) for c in range(num_classes)]
        save_grid(images, final[0], nrow=GRID_PER_CLASS, row_labels=list(names))
    if config.data is not None or not num_classes:
        return final, None
    print(
        f"ylg demo: GAN-test of the EMA generator ({GAN_TEST_PER_CLASS} untruncated samples "
        f"per class; the classifier is cached in {default_cache_dir()})",
        file=sys.stderr,
    )
    result = gan_test_run(out, n_per_class=GAN_TEST_PER_CLASS, truncation=None, progress=progress)
    result.save(out / "final" / "gan-test.json")
    return final, result
