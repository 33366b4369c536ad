"""What D's attention heads look at on real held-out images, and whether it depends on them.

The paper's figures show per-head saliency of D on real images that follows their 2-D
structure. For a trained discriminator this script computes, on held-out real images (e.g.
OpenMoji, a style the model never saw), each head's ``relative`` saliency map (attention
relative to the uniform share within the head's mask; 1 = uniform) and reports per head:

- the median Pearson correlation of its maps across pairs of different images (near 1: the
  map is the same whatever the image, a property of the mask rather than of the image);
- the range of its values (near 1 everywhere: the head attends uniformly);

and draws a figure (rows: images; columns: the image, then one overlay per head).

    python benchmarks/attention_heads.py --model emoji32-ylg \\
        --images data/openmoji32.npz --n 64 \\
        --out benchmarks/results/attention-heads.json --figure docs/img/attention-heads-emoji.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ylg.attention.analysis import head_names, median_cross_correlation, saliency_maps
from ylg.models.pretrained import load_models
from ylg.runtime.files import atomic_write_text
from ylg.viz.attention import save_figure


def grid_figure(images: torch.Tensor, maps: torch.Tensor, names: list[str]):
    """Rows: images ``[B, 3, R, R]``; columns: the image, then each head's map ``[B, H, h, w]``
    upsampled to the image and drawn over it, on one colour scale (1st to 99th percentile)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    b, heads = maps.shape[:2]
    r = images.shape[-1]
    up = F.interpolate(maps, size=(r, r), mode="nearest")  # [B, H, R, R]
    vmin, vmax = float(up.quantile(0.01)), float(up.quantile(0.99))
    fig, axes = plt.subplots(b, heads + 1, figsize=(1.5 * (heads + 1), 1.6 * b), squeeze=False)
    for i in range(b):
        img = ((images[i].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
        axes[i, 0].imshow(img)
        for h in range(heads):
            ax = axes[i, h + 1]
            ax.imshow(img)
            im = ax.imshow(up[i, h].numpy(), cmap="inferno", alpha=0.65, vmin=vmin, vmax=vmax)
            if i == 0:
                ax.set_title(names[h], fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention / uniform share")
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="shipped model name, run dir or checkpoint")
    p.add_argument("--images", required=True, help="npz of real images (images, labels)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--rows", type=int, default=4, help="images in the figure")
    p.add_argument("--out", default="benchmarks/results/attention-heads.json")
    p.add_argument("--figure", default=None)
    args = p.parse_args(argv)
    m = load_models(args.model)
    D = m.D
    data = np.load(args.images)
    idx = np.sort(np.random.default_rng(0).permutation(len(data["images"]))[: args.n])
    x = torch.from_numpy(data["images"][idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
    rel = saliency_maps(D, x, normalization="relative")  # [n, heads, hk, wk]
    names = head_names(D.attention)
    heads = []
    for h, name in enumerate(names):
        maps = rel[:, h]
        heads.append(
            {
                "head": name,
                "median_cross_image_correlation": median_cross_correlation(maps),
                "min": float(maps.min()),
                "max": float(maps.max()),
                "p5_p95": [float(maps.quantile(0.05)), float(maps.quantile(0.95))],
            }
        )
    out = {
        "model": f"{args.model} (step {m.step})",
        "images": f"{args.images}: {args.n} drawn with seed 0",
        "gamma": D.attention.gamma.item(),
        "normalization": "relative (1 = uniform within the head's mask)",
        "heads": heads,
    }
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    print(f"D's attention gamma {out['gamma']:.3f}; {args.n} images")
    print("| head | median cross-image corr. | min | max | p5-p95 |\n|---|---|---|---|---|")
    for e in heads:
        lo, hi = e["p5_p95"]
        print(f"| {e['head']} | {e['median_cross_image_correlation']:.3f} | {e['min']:.2f} | "
              f"{e['max']:.2f} | {lo:.2f}-{hi:.2f} |")  # fmt: skip
    if args.figure:
        save_figure(grid_figure(x[: args.rows], rel[: args.rows], names), args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
