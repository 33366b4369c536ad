"""Does `ylg demo` make recognisable shapes? GAN-test accuracy of the demo, and its wall time.

    python benchmarks/demo_gan_test.py                       # run the demo end to end, 2 threads
    python benchmarks/demo_gan_test.py --threads 1 --out /tmp/demo-1t
    python benchmarks/demo_gan_test.py --run runs/demo       # score a finished run only

By default this runs ``python -m ylg demo --out OUT --restart`` in a subprocess with
``OMP_NUM_THREADS`` set to ``--threads`` (so the demo's own thread choice does not interfere)
and with an empty GAN-test classifier cache (``YLG_CACHE`` in a temporary folder), so the wall
time is that of a first ``make demo`` on a fresh machine: pattern figures, training, final
grid and GIF, and the classifier's training, everything included. It then reads the demo's own
``final/gan-test.json`` (EMA generator, untruncated samples, 50 per class) and also scores
the same generator at truncation 2.0 (the truncation of the final grid). GAN-test accuracy is
the share of generated class-``c`` samples that a small CNN trained on the real scenes
(:mod:`ylg.metrics.gan_test`) assigns to ``c``; chance is 10 %.

Prints a table and writes JSON to ``benchmarks/results/demo-gan-test.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "demo-gan-test.json"
RECIPE_FIELDS = (
    "resolution", "attention", "shapes_style", "g_width", "d_width", "z_dim", "batch_size",
    "g_lr", "d_lr", "beta1", "beta2", "d_steps", "ema_decay", "ema_start", "steps", "seed",
)  # fmt: skip


def run_demo(out: Path, threads: int, fresh_cache: bool) -> dict:
    """``python -m ylg demo --out OUT --restart`` in a subprocess; wall time and load."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cache = tempfile.TemporaryDirectory(prefix="ylg-cache-") if fresh_cache else None
    if cache is not None:
        env["YLG_CACHE"] = cache.name
    load_before = os.getloadavg()
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "ylg", "demo", "--out", str(out), "--restart", "--no-progress"]
    proc = subprocess.run(cmd, env=env)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    if cache is not None:
        cache.cleanup()
    if proc.returncode:
        raise SystemExit(f"ylg demo failed with exit status {proc.returncode}")
    return {
        "command": f"OMP_NUM_THREADS={threads} python -m ylg demo --out {out} --restart",
        "wall_s": round(wall, 1),
        "threads": threads,
        "fresh_classifier_cache": fresh_cache,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def score(run: Path) -> dict:
    """The run's own ``final/gan-test.json`` (untruncated) and the truncation-2 score."""
    from ylg.metrics.gan_test import gan_test_run

    saved = run / "final" / "gan-test.json"
    if saved.is_file():
        untruncated = json.loads(saved.read_text())
    else:  # a run from before the demo wrote it
        untruncated = gan_test_run(run, n_per_class=50, truncation=None).to_dict()
    truncated = gan_test_run(run, n_per_class=50, truncation=2.0).to_dict()
    config = json.loads((run / "config.json").read_text())
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return {
        "run": str(run),
        "steps": stats[-1]["step"] if stats else 0,
        "train_s": round(stats[-1]["time"], 1) if stats else None,
        "recipe": {
            k: config.get(k, "scenes" if k == "shapes_style" else None) for k in RECIPE_FIELDS
        },  # fmt: skip
        "gan_test": untruncated,
        "gan_test_truncation_2": truncated,
    }


def table(result: dict) -> str:
    untr, tr2 = result["gan_test"], result["gan_test_truncation_2"]
    rows = [("class", "untruncated", "truncation 2")]
    rows += [(name, f"{100 * a:.0f}%", f"{100 * tr2['per_class'][name]:.0f}%")
             for name, a in untr["per_class"].items()]  # fmt: skip
    rows.append(("all", f"{100 * untr['gan_test_accuracy']:.1f}%",
                 f"{100 * tr2['gan_test_accuracy']:.1f}%"))  # fmt: skip
    lines = [f"{a:<10} {b:>12} {c:>13}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(-1, "-" * len(lines[0]))
    recipe = result["recipe"]
    lines.append(
        f"steps {result['steps']}, batch {recipe['batch_size']}, widths "
        f"{recipe['g_width']}/{recipe['d_width']}, lr {recipe['g_lr']}/{recipe['d_lr']}, EMA "
        f"{recipe['ema_decay']} from step {recipe['ema_start']}, style {recipe['shapes_style']}"
    )
    if "wall_s" in result:
        lines.append(
            f"wall {result['wall_s']:.0f} s end to end (training {result['train_s']:.0f} s), "
            f"{result['threads']} thread(s), load average before "
            f"{result['load_average_before'][0]:.2f}, classifier held-out accuracy "
            f"{100 * untr.get('classifier_held_out_accuracy', float('nan')):.1f}%"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="score this finished run folder (no training)")
    p.add_argument("--out", type=Path, default=Path("/tmp/demo-gan-test"), help="demo folder")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the demo run")
    p.add_argument(
        "--keep-cache", action="store_true", help="use the usual classifier cache (not fresh)"
    )
    p.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = p.parse_args(argv)

    result: dict = {}
    if args.run is None:
        result.update(run_demo(args.out, args.threads, fresh_cache=not args.keep_cache))
        run = args.out
    else:
        run = args.run
    import torch

    from ylg.runtime.machine import machine_record

    result = {**score(run), **result}
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        **machine_record(),
    }
    result["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
