"""`ylg demo`: the main job: train the `demo` preset on the built-in shapes, on the CPU.

Leaves in ``runs/demo/`` (``--out``): the pattern figures (``patterns/``), sample grids and
attention snapshots during training (``samples/``, ``attention/``), the loss curves
(``loss.png``, from ``stats.jsonl``), a final truncated sample grid and interpolation GIF
(``final/``), TensorBoard logs and the checkpoint (``latest.pt``), and prints where they are.
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
    """DataLoader workers of the demo preset (for the thread rule of :mod:`ylg.threads`)."""
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

    from ylg.generate import generate
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
    final = generate(out, out / "final", n=64, grid=True, interpolate=12, truncation=2.0)
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
        f"  loss curves         {out / 'loss.png'}  (data: {out / 'stats.jsonl'})",
        f"  checkpoint          {result.checkpoint}",
        f"  tensorboard         tensorboard --logdir {out / 'tensorboard'}",
        f"  more samples        ylg generate {out} --n 64 --grid --out {out / 'more'}",
    ]
    return "\n".join(lines)
