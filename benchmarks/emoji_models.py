"""FID, KID (with bootstrap intervals) and GAN-test of the emoji models, dense vs YLG.

For each model (a shipped name such as ``emoji32-ylg``, or a run folder / checkpoint):

- FID and KID of ``--n`` samples (EMA generator, untruncated, random classes) against
  ``--ref-n`` real images of the training styles (``emoji32-train.npz``: Twemoji, Noto,
  Fluent), true Inception weights, with 95% bootstrap intervals (``--bootstrap``
  resamples; ``ylg.metrics.bootstrap``);
- the real-vs-real floor: the same FID and KID (with intervals) between two disjoint sets of
  ``--n`` real training images, so a reader knows what "perfect" reads at this n;
- GAN-test on the 9 emoji categories: a small CNN (``ylg.metrics.gan_test``) trained on 85%
  of the real training images, its accuracy on the other 15% (real data: the ceiling to read
  the GAN-test number against, overall and per class), and the share of ``--per-class``
  samples per category it assigns to the category they were generated for (untruncated, and
  at truncation 2).

    python benchmarks/emoji_models.py --models emoji32-ylg emoji32-sagan \\
        --data data/emoji32-train.npz --n 1000 --ref-n 1000 --bootstrap 100 \\
        --out benchmarks/results/emoji-models.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ylg import metrics
from ylg.metrics.bootstrap import bootstrap_fid, bootstrap_kid
from ylg.metrics.gan_test import accuracy, gan_test, predict, train_classifier
from ylg.models.pretrained import load_models
from ylg.runtime.files import atomic_write_text
from ylg.runtime.machine import machine_record


def real_floor(data: str, n: int, inception, bootstrap: int, seed: int = 0) -> dict:
    """FID and KID (with bootstrap intervals) between two disjoint random sets of ``n`` real
    images of ``data``: what a perfect generator would read at this n."""
    images = torch.from_numpy(np.load(data)["images"]).permute(0, 3, 1, 2)  # uint8 [N, 3, R, R]
    if len(images) < 2 * n:
        raise ValueError(f"{data} has {len(images)} images; the floor needs 2 x {n}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    a, _ = metrics.extract_features(inception, images[order[:n]].contiguous())
    b, _ = metrics.extract_features(inception, images[order[n : 2 * n]].contiguous())
    mu, sigma = metrics.feature_statistics(a)
    kid, _ = metrics.kid_from_features(b, a, subset_size=min(1000, n))
    return {
        "n_each": n,
        "fid": metrics.fid_from_features(b, a),
        "kid": kid,
        "fid_ci95": bootstrap_fid(b, mu, sigma, bootstrap, seed=seed)["ci"],
        "kid_ci95": bootstrap_kid(b, a, bootstrap, seed=seed)["ci"],
        "sets": f"two disjoint random sets of {n} training images (permutation seed {seed})",
    }


def model_record(m) -> dict:
    """What the model folder records about its training (images seen, recipe, precision)."""
    if m.path is None or m.path.name != "model.json":
        return {"step": m.step}
    meta = json.loads(m.path.read_text())
    keys = ("step", "batch_size", "images_seen", "precision", "recipe")
    return {k: meta.get(k) for k in keys} | {"G_sha256": meta["sha256"]["G.safetensors"]}


def emoji_classifier(data: str, seed: int = 0, epochs: int = 10):
    """(classifier, held-out real accuracy, n_train, n_held_out, per-class held-out
    accuracy) on the 9 categories."""
    d = np.load(data)
    x = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(d["labels"]).long()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.85 * len(x))
    tr, te = order[:cut], order[cut:]
    clf = train_classifier(x[tr], y[tr], int(y.max()) + 1, epochs=epochs, seed=seed)
    pred = predict(clf, x[te])
    per_class = [float((pred[y[te] == c] == c).float().mean()) for c in range(int(y.max()) + 1)]
    return clf, accuracy(clf, x[te], y[te]), len(tr), len(te), per_class


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--data", required=True, help="npz of the real training images")
    p.add_argument("--n", type=int, default=1000, help="generated samples per model")
    p.add_argument("--ref-n", type=int, default=1000, help="real images of the reference")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--per-class", type=int, default=100, help="GAN-test samples per class")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/emoji-models.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    inception = metrics.load_inception(progress=False)
    ref = metrics.reference_stats(
        args.data, 32, n=args.ref_n, inception=inception, keep_features=args.ref_n, progress=True
    )
    clf, real_acc, n_tr, n_te, real_per_class = emoji_classifier(args.data)
    floor = real_floor(args.data, args.n, inception, args.bootstrap)
    print("real vs real:", json.dumps(floor), flush=True)
    out: dict = {
        "protocol": {
            "reference": f"{args.data}: {ref.n} images at 32 px ({ref.extractor})",
            "n_generated": args.n,
            "bootstrap": args.bootstrap,
            "gan_test": f"CNN trained on {n_tr} real training images (85%), 10 epochs; "
            f"{args.per_class} samples per class",
            "classifier_real_accuracy": real_acc,
            "classifier_real_accuracy_per_class": real_per_class,
            "machine": machine_record(threads=torch.get_num_threads()),
            "classifier_real_held_out": n_te,
            "threads": torch.get_num_threads(),
        },
        "real_vs_real": floor,
        "models": {},
    }
    for name in args.models:
        m = load_models(name)
        t = time.perf_counter()
        values = metrics.evaluate_generator(
            m.G, n=args.n, reference=ref, metrics=("fid", "kid"), inception=inception,
            kid_subset_size=min(1000, args.n, args.ref_n), bootstrap=args.bootstrap, seed=0,
        )  # fmt: skip
        tests = {
            str(trunc): gan_test(
                m.G, clf, n_per_class=args.per_class, truncation=trunc, class_names=m.class_names
            ).to_dict()  # fmt: skip
            for trunc in (None, 2.0)
        }
        out["models"][name] = {
            **model_record(m), **values, "gan_test": tests, "seconds": time.perf_counter() - t,
        }  # fmt: skip
        atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
        accs = {k: v["gan_test_accuracy"] for k, v in tests.items()}
        print(name, json.dumps(values), accs, flush=True)
    out["protocol"]["seconds_total"] = time.perf_counter() - t0
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    print(f"\nGAN-test classifier: {100 * real_acc:.1f}% on {n_te} held-out real images")
    fc, kc = floor["fid_ci95"], floor["kid_ci95"]
    print(f"| real vs real (floor) | - | {floor['fid']:.1f} [{fc[0]:.1f}, {fc[1]:.1f}] | "
          f"{1e3 * floor['kid']:.2f} [{1e3 * kc[0]:.2f}, {1e3 * kc[1]:.2f}] | "
          f"{100 * real_acc:.1f}% (real) | |")  # fmt: skip
    print("| model | step | FID [95% CI] | KID x 1e3 [95% CI] | GAN-test | GAN-test (trunc. 2) |")
    print("|---|---|---|---|---|---|")
    for name, e in out["models"].items():
        f, k = e["fid_ci95"], e["kid_ci95"]
        g = e["gan_test"]
        print(f"| {name} | {e['step']} | {e['fid']:.1f} [{f[0]:.1f}, {f[1]:.1f}] | "
              f"{1e3 * e['kid']:.2f} [{1e3 * k[0]:.2f}, {1e3 * k[1]:.2f}] | "
              f"{100 * g['None']['gan_test_accuracy']:.1f}% | "
              f"{100 * g['2.0']['gan_test_accuracy']:.1f}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
