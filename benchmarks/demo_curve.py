"""GAN-test accuracy along a demo run: how many steps does a recipe need to draw its classes?

    python benchmarks/demo_curve.py NAME [option=value ...]    # e.g. seed=1 batch_size=16
    OMP_NUM_THREADS=1 python benchmarks/demo_curve.py lr3 g_lr=3e-4 d_lr=6e-4 steps=1600

Trains the ``demo`` preset with the given training options (``--set`` syntax) into
``--root/NAME``, keeping a checkpoint every ``checkpoint_every`` steps (default 100), then
scores each checkpoint's EMA and raw generator with GAN-test (:mod:`ylg.metrics.gan_test`,
50 untruncated samples per class; chance 10 %). Prints one line per checkpoint and appends
one JSON row per run to ``--json`` (default ``benchmarks/results/demo-curves.jsonl``). This is
how the demo preset was tuned; ``benchmarks/demo_gan_test.py`` times the demo end to end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "demo-curves.jsonl"


def main() -> None:
    from ylg.metrics.gan_test import gan_test_run
    from ylg.training.config import parse_assignments, resolve
    from ylg.training.loop import train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="run name (a folder under --root)")
    p.add_argument("options", nargs="*", metavar="option=value", help="training options")
    p.add_argument("--root", default="/tmp/ylg-demo-curves", help="folder of the runs")
    p.add_argument("--json", default=str(RESULTS), help="JSON-lines file to append to")
    args = p.parse_args()

    try:
        given = parse_assignments(args.options, flag="option")
    except ValueError as err:
        p.error(str(err))
    overrides = {"keep_checkpoints": True, "checkpoint_every": 100, **given}
    config = resolve("demo", overrides)
    out = Path(args.root) / args.name
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    train(config, out, progress=False)
    train_s = time.perf_counter() - start

    curve = []
    for ckpt in sorted(out.glob("ckpt-*.pt")):
        ema = gan_test_run(ckpt, n_per_class=50, truncation=None, use_ema=True)
        raw = gan_test_run(ckpt, n_per_class=50, truncation=None, use_ema=False)
        step = int(ckpt.stem.split("-")[1])
        curve.append({"step": step, "ema": round(ema.accuracy, 3), "raw": round(raw.accuracy, 3)})
        ema_pct, raw_pct = 100 * ema.accuracy, 100 * raw.accuracy
        print(f"step {step:5d}  GAN-test EMA {ema_pct:5.1f}%  raw {raw_pct:5.1f}%")
    row = {
        "name": args.name,
        "overrides": {k: v for k, v in overrides.items() if k not in ("keep_checkpoints",)},
        "threads": torch.get_num_threads(),
        "train_s": round(train_s, 1),
        "curve": curve,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
