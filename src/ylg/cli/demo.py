"""`ylg demo`: the main job: train the `demo` preset on the built-in shapes, on the CPU.

Leaves in ``runs/demo/`` (``--out``): the pattern figures (``patterns/``), sample grids and
attention snapshots during training (``samples/``, ``attention/``), the loss curves
(``loss.png``, from ``stats.jsonl``), a final truncated sample grid (one labelled row per
class) and interpolation GIF (``final/``), TensorBoard logs and the checkpoint
(``latest.pt``), and prints where they are. It ends with the GAN-test accuracy of the EMA
generator (:mod:`ylg.metrics.gan_test`, untruncated samples), printed and written to
``final/gan-test.json``.
Running it again continues an unfinished demo run; ``--restart`` starts over.
"""

from __future__ import annotations

import sys

# What a demo run writes into its folder (``--restart`` removes exactly these).
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


def register(sub) -> None:
    from ylg.cli import LazyChoices, attention_variants

    p = sub.add_parser(
        "demo",
        help="the main job: train the demo preset on the built-in data (minutes on a CPU)",
        description="Train YLG-SAGAN (demo preset: 32x32, small widths) on the built-in "
        "procedural shapes, then write samples, attention snapshots, loss curves and a "
        "checkpoint.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: preset)")
    p.add_argument(
        "--attention",
        default=None,
        choices=LazyChoices(attention_variants),
        metavar="VARIANT",
        help="attention variant, one of %(choices)s (default: ylg)",
    )
    p.add_argument(
        "--restart", action="store_true", help="delete a previous demo run in --out first"
    )
    p.add_argument("--no-patterns", action="store_true", help="skip the pattern figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, data_workers=_data_workers)


def _data_workers(args) -> int:
    """DataLoader workers of the demo preset (for the thread rule of :mod:`ylg.runtime.threads`)."""
    from ylg.training.config import resolve

    return resolve("demo").workers


def run(args) -> int:
    from pathlib import Path

    out = Path(args.out)
    if args.restart:
        import shutil

        for name in RUN_OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    report = run_demo(
        out,
        steps=args.steps,
        attention=args.attention,
        patterns=not args.no_patterns,
        progress=not args.no_progress,
    )
    print(report)
    return 0


def run_demo(
    out,
    *,
    steps: int | None = None,
    attention: str | None = None,
    patterns: bool = True,
    progress: bool = True,
) -> str:
    """Train (or continue) the demo run in ``out``; return a report of where things are."""
    from pathlib import Path

    from ylg.training.config import resolve
    from ylg.training.loop import train
    from ylg.training.stats import plot_stats

    out = Path(out)
    lines = []
    if patterns:
        try:
            from ylg.viz.patterns import render_patterns
        except ImportError:
            render_patterns = None
        if render_patterns is not None:
            files, _ = render_patterns(str(out / "patterns"))
            lines.append(f"  pattern figures     {out / 'patterns'}/ ({len(files)} files)")

    overrides = {}
    if steps is not None:
        overrides["steps"] = steps
    if attention is not None:
        overrides["attention"] = attention
    resume = (out / "config.json").exists() and (out / "latest.pt").exists()
    if resume:
        import json

        from ylg.training.config import TrainConfig

        config = TrainConfig.from_dict(
            {**json.loads((out / "config.json").read_text()), **overrides}
        ).validate()
        print(f"ylg demo: continuing the run in {out} (use --restart to start over)")
    else:
        config = resolve("demo", overrides)
    import torch

    print(
        f"ylg demo: training {config.attention} at {config.resolution}x{config.resolution}, "
        f"batch {config.batch_size}, {config.steps} steps on the built-in shapes, "
        f"{torch.get_num_threads()} CPU thread(s) -> {out}",
        file=sys.stderr,
    )
    result = train(config, out, resume=resume, progress=progress)

    plot_stats(out / "stats.jsonl", out / "loss.png")
    final, score = _final_outputs(out, config, progress=progress)
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


# Samples per class in the final grid (one row per class) and in the GAN-test.
GRID_PER_CLASS = 8
GAN_TEST_PER_CLASS = 50


def _final_outputs(out, config, *, progress: bool = True):
    """The final grid (one labelled row per class), the interpolation GIF and, for a
    class-conditional run on the built-in shapes, the GAN-test accuracy of the EMA generator
    on untruncated samples (written to ``final/gan-test.json``). Returns ``(paths, result)``;
    ``result`` is ``None`` when GAN-test does not apply."""
    from ylg.generate import generate, sample
    from ylg.models.loading import load_for_inference
    from ylg.viz.grids import save_grid

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
    from ylg.metrics.gan_test import default_cache_dir, gan_test_run

    print(
        f"ylg demo: GAN-test of the EMA generator ({GAN_TEST_PER_CLASS} untruncated samples "
        f"per class; the classifier is cached in {default_cache_dir()})",
        file=sys.stderr,
    )
    result = gan_test_run(out, n_per_class=GAN_TEST_PER_CLASS, truncation=None, progress=progress)
    result.save(out / "final" / "gan-test.json")
    return final, result
