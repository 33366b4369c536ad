"""A small vision transformer on the emoji data, trained on the CPU: dense vs YLG attention.

    python benchmarks/vit.py                                  # 3 patterns x 2 seeds, resumable
    python benchmarks/vit.py --patterns dense ylg --seeds 0 --steps 100 --out /tmp/vit.json
    python benchmarks/vit.py --steps 3 --subset 256 --eval-every 2 --out /tmp/vit-smoke.json

The task: the emoji's category (the 9 ``labels`` of ``ylg data emoji``: Smileys & Emotion,
People & Body, ..., Flags) from its 32x32 image. Split: a fixed random 15% of the images of
``--data`` (``numpy.random.default_rng(0)``, whatever ``--seeds`` are) is held out, the rest
trains. The split is by image, not by emoji: the same emoji drawn in another style (twemoji,
noto, fluent) may be in the training split, so held-out accuracy measures recognising a new
drawing of mostly seen emoji, not unseen emoji.

The model (timm-style ViT, pre-norm): a ``--patch`` x ``--patch`` conv patch embedding (patch
2: a 16x16 grid of 256 tokens), a learned class token in front (``extra_tokens=1``: a global
token that sees and is seen by every token), learned position embeddings, ``--depth`` blocks
``x + attn(norm(x))``, ``x + mlp(norm(x))`` with ``ylg.attention.YLGSelfAttention(dim, heads,
grid, pattern=P, extra_tokens=1)`` as the attention, a final LayerNorm and a linear head on the
class token. Only the attention's mask differs between patterns (same parameters, same
initialisation and the same batches for a given seed).

Training: the same budget for every run: ``--steps`` AdamW steps of ``--batch-size``, lr
linear warm-up over the first 5% of the steps then cosine to 0, weight decay 0.05, random
horizontal flips. Held-out accuracy every ``--eval-every`` steps and at the end (the learning
curve). Seconds per step: the median training step (evaluation not counted). Peak memory: the
run's process's peak RSS (each run is a fresh spawned process; it includes the data set).

Each (pattern, seed) run is stored in ``--out`` (default ``benchmarks/results/vit-emoji.json``)
as soon as it finishes; a rerun skips the runs stored with the same settings. ``--plot PATH``
(default ``benchmarks/results/vit-emoji.png``) draws the learning curves.

Cost (an estimate from a 6-step run of each pattern at the defaults, one thread, on the
2-core CPU while other jobs held both cores, the benchmark at nice 15): median seconds per
step dense 0.81, ylg 0.46, neighborhood 2.48 (wall; the process's CPU time was about 60% of
that), an evaluation of the 812 held-out images about 5 s (dense, ylg) to 25 s
(neighborhood). So the 6 default runs (120 steps, 3 evaluations each) take about 17 minutes
there and about 11 on a quiet core. At this budget (120 x 32 images, under one epoch) the
accuracies are low; ``--steps 1000`` gives a fairer comparison at about 8x the time.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import queue
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ylg.attention import YLGSelfAttention
from ylg.runtime.machine import machine_record

RESULTS = Path(__file__).parent / "results"
PATTERNS = ("dense", "ylg", "neighborhood")


class Block(nn.Module):
    """timm's ViT block, pre-norm: ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, grid, pattern: str, extra: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = YLGSelfAttention(dim, heads, grid, pattern=pattern, extra_tokens=extra)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, C] -> [B, N, C]
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small ViT classifier whose attention is ``YLGSelfAttention(pattern=...)``.

    images ``[B, 3, S, S]`` -> logits ``[B, num_classes]``; tokens: 1 class token, then the
    ``(S / patch) x (S / patch)`` patches in raster order.
    """

    def __init__(
        self,
        *,
        image_size: int = 32,
        patch: int = 2,
        dim: int = 96,
        depth: int = 4,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        num_classes: int = 9,
        pattern: str = "ylg",
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch={patch} must divide image_size={image_size}")
        side = image_size // patch
        self.grid = (side, side)
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + side * side, dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(dim, heads, self.grid, pattern, 1, mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, H*W, C], raster order
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # [B, 1+H*W, C]
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))  # [B, num_classes], from the class token


# --- data --------------------------------------------------------------------------------


def load_split(path: Path, holdout: float = 0.15, subset: int | None = None):
    """(train images, train labels, held-out images, held-out labels, class names); images
    float ``[N, 3, 32, 32]`` in [-1, 1]. The held-out split is a fixed random ``holdout`` share
    of the images (seed 0); ``subset`` keeps the first ``subset`` of each split (smoke tests)."""
    import numpy as np

    data = np.load(path)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    labels = torch.from_numpy(data["labels"]).long()
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(labels)))
    n_held = round(holdout * len(labels))
    held, train = perm[:n_held], perm[n_held:]
    if subset:
        held, train = held[:subset], train[:subset]
    names = [str(n) for n in data["class_names"]]
    return images[train], labels[train], images[held], labels[held], names


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch):
        correct += (model(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum().item()
    model.train()
    return correct / len(labels)


# --- one run -----------------------------------------------------------------------------


def train_run(cfg: dict, pattern: str, seed: int) -> dict:
    """Train one (pattern, seed) run in this process; returns its result."""
    import resource

    torch.set_num_threads(cfg["threads"])
    x_tr, y_tr, x_ho, y_ho, names = load_split(Path(cfg["data"]), subset=cfg["subset"])
    torch.manual_seed(seed)  # the same initialisation and batches for every pattern
    model = ViT(
        patch=cfg["patch"],
        dim=cfg["dim"],
        depth=cfg["depth"],
        heads=cfg["heads"],
        mlp_ratio=cfg["mlp_ratio"],
        num_classes=len(names),
        pattern=pattern,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.05)
    steps, warmup = cfg["steps"], max(1, cfg["steps"] // 20)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to 0
        if step < warmup:
            return cfg["lr"] * (step + 1) / warmup
        return cfg["lr"] * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    gen = torch.Generator().manual_seed(seed)
    curve, times = [], []
    for step in range(steps):
        start = time.perf_counter()
        idx = torch.randint(len(y_tr), (cfg["batch_size"],), generator=gen)
        x, y = x_tr[idx], y_tr[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)  # random horizontal flips
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        if (step + 1) % cfg["eval_every"] == 0 or step + 1 == steps:
            acc = accuracy(model, x_ho, y_ho, cfg["eval_batch"])
            curve.append({"step": step + 1, "accuracy": acc, "loss": loss.item()})
            print(
                f"  {pattern} seed {seed} step {step + 1}/{steps}: loss {loss.item():.3f}, "
                f"held-out accuracy {acc:.3f}",
                file=sys.stderr,
                flush=True,
            )
    return {
        "pattern": pattern,
        "seed": seed,
        "curve": curve,
        "final_accuracy": curve[-1]["accuracy"],
        "s_per_step": statistics.median(times[2:] or times),  # after 2 warm-up steps
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB -> MiB
        "params": sum(p.numel() for p in model.parameters()),
        "train_images": len(y_tr),
        "heldout_images": len(y_ho),
        "threads": torch.get_num_threads(),
        "settings": cfg,
    }


def _child(cfg: dict, pattern: str, seed: int, out) -> None:
    try:
        out.put(train_run(cfg, pattern, seed))
    except Exception as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def run_in_process(cfg: dict, pattern: str, seed: int) -> dict:
    """``train_run`` in a fresh spawned process, so that its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(cfg, pattern, seed, out))
    proc.start()
    result = None
    while result is None:
        try:
            result = out.get(timeout=1.0)
        except queue.Empty:
            if not proc.is_alive():
                result = {"error": f"process died (exit code {proc.exitcode})"}
    proc.join()
    return result


# --- summary -----------------------------------------------------------------------------


def summary_table(runs: list[dict], patterns: list[str]) -> str:
    def mean_std(values, fmt):
        if len(values) < 2:
            return fmt.format(values[0]) if values else "-"
        return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"

    lines = [
        "| pattern | seeds | held-out accuracy | s / step | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in patterns:
        rs = [r for r in runs if r["pattern"] == p]
        acc = mean_std([100 * r["final_accuracy"] for r in rs], "{:.1f}%")
        sps = mean_std([r["s_per_step"] for r in rs], "{:.3f}")
        mem = mean_std([r["peak_mb"] for r in rs], "{:.0f}")
        lines.append(f"| {p} | {len(rs)} | {acc} | {sps} | {mem} |")
    return "\n".join(lines)


def plot(runs: list[dict], patterns: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    styles = ["-", "--", ":", "-."]
    for i, p in enumerate(patterns):
        for r in (r for r in runs if r["pattern"] == p):
            xs = [c["step"] for c in r["curve"]]
            ys = [100 * c["accuracy"] for c in r["curve"]]
            ax.plot(
                xs,
                ys,
                color=f"C{i}",
                ls=styles[r["seed"] % len(styles)],
                label=f"{p} (seed {r['seed']})",
            )
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out accuracy (%)")
    side = 32 // runs[0]["settings"]["patch"]
    ax.set_title(f"ViT on emoji 32x32 (9 categories), {side}x{side} tokens + class token")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--data",
        type=Path,
        default=Path("data/emoji32-train.npz"),
        help="an `ylg data emoji` npz (images, labels, class_names)",
    )
    p.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=PATTERNS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=40)
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--patch", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--mlp-ratio", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--subset", type=int, default=None, help="first N images of each split")
    p.add_argument("--out", type=Path, default=RESULTS / "vit-emoji.json")
    p.add_argument("--plot", type=Path, default=RESULTS / "vit-emoji.png")
    args = p.parse_args(argv)

    from ylg.runtime.files import atomic_write_text

    settings = {
        k: v for k, v in vars(args).items() if k not in ("patterns", "seeds", "out", "plot")
    }
    settings["data"] = str(args.data)
    stored = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    runs = stored["runs"]
    split = (
        "held-out: a fixed random 15% of the images of the data file (numpy default_rng(0)); "
        "labels: the 9 emoji categories (`labels`, `class_names`)"
    )
    print(split, file=sys.stderr)
    for pattern in args.patterns:
        for seed in args.seeds:
            done = [
                r
                for r in runs
                if r["pattern"] == pattern and r["seed"] == seed and r["settings"] == settings
            ]
            if done:
                print(f"{pattern} seed {seed}: stored, skipped", file=sys.stderr)
                continue
            print(f"{pattern} seed {seed}: training", file=sys.stderr, flush=True)
            r = run_in_process(settings, pattern, seed)
            if "error" in r:
                print(f"{pattern} seed {seed} failed: {r['error']}", file=sys.stderr)
                continue
            runs = [x for x in runs if not (x["pattern"] == pattern and x["seed"] == seed)]
            runs.append(r)
            doc = {
                "split": split,
                "command": "python benchmarks/vit.py " + " ".join(sys.argv[1:]),
                "torch": torch.__version__,
                "machine": machine_record(),
                "runs": runs,
            }
            atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    current = [r for r in runs if r["settings"] == settings and r["seed"] in args.seeds]
    print(f"\n{split}\n")
    print(summary_table(current, args.patterns))
    if args.plot and current:
        plot(current, args.patterns, args.plot)
        print(f"\nwrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
