"""The README figure of the shipped emoji models: real images beside each model's samples.

One row per class: ``--k`` real training images of that class, then ``--k`` samples of each
model (EMA generator, untruncated unless ``--truncation``, sample seed 0), separated by a
blank column, with the class names in a left margin.

    python benchmarks/emoji_figure.py --models emoji32-ylg emoji32-sagan \\
        --data data/emoji32-train.npz --out docs/img/emoji32-real-vs-samples.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ylg.generate import sample
from ylg.models.pretrained import load_models
from ylg.viz.grids import save_grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--k", type=int, default=6, help="images per class and block")
    p.add_argument("--truncation", type=float, default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    d = np.load(args.data)
    images = torch.from_numpy(d["images"]).permute(0, 3, 1, 2)  # uint8 [N, 3, R, R]
    labels = torch.from_numpy(d["labels"]).long()
    models = [load_models(m) for m in args.models]
    names = models[0].class_names
    classes = len(names)
    g = torch.Generator().manual_seed(0)
    blank = torch.zeros(1, 3, *images.shape[2:], dtype=torch.uint8)
    rows = []
    for c in range(classes):
        idx = (labels == c).nonzero().squeeze(1)
        pick = idx[torch.randperm(len(idx), generator=g)[: args.k]]
        row = [images[pick]]
        for m in models:
            x, _ = sample(m.G, args.k, classes=[c], truncation=args.truncation, seed=c)
            row += [blank, ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)]
        rows.append(torch.cat(row))
    per_row = rows[0].shape[0]
    save_grid(torch.cat(rows), args.out, nrow=per_row, row_labels=names)
    print(f"wrote {args.out}: real | " + " | ".join(args.models) + f", {args.k} per block")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
