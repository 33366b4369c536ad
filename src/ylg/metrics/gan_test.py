"""GAN-test accuracy on the built-in shapes: do generated samples show their class's shape?

GAN-test (Shmelkov, Schmid and Alahari, "How good is my GAN?", ECCV 2018) trains a classifier
on real data and scores a class-conditional generator by the share of its class-``c`` samples
that the classifier assigns to ``c``. Here the classifier is a small CNN trained on the
built-in shape scenes (:class:`ylg.data.ShapesDataset`); it trains in seconds on a CPU and is
cached on disk under a key naming the data (resolution, style, classes) and the recipe, so it
is trained once per machine::

    from ylg.metrics.gan_test import gan_test, shapes_classifier
    clf = shapes_classifier(32, style="simple")       # trained once, then loaded from cache
    result = gan_test(G, clf, n_per_class=50)          # result.accuracy in [0, 1]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ylg.data.shapes import ShapesDataset
from ylg.generate import sample
from ylg.models.loading import load_for_inference
from ylg.runtime.cache import cache_dir
from ylg.runtime.files import atomic_torch_save, atomic_write_text

# Bump when the classifier or its training recipe changes: old cache entries are not reused.
RECIPE = "gan-test-cnn-5"  # 5: simple shapes with one fixed outline per class
# The classifier's training and held-out scenes use seeds the training runs do not (the demo
# trains on seed 0): it is scored on scenes it has never seen.
TRAIN_SEED = 10_001
HELD_OUT_SEED = 10_002


class ShapeClassifier(nn.Module):
    """A small CNN: ``[B, 3, R, R]`` in [-1, 1] -> logits ``[B, num_classes]``.

    Three conv-BN-ReLU-maxpool stages (16, 32, 64 channels), global average pooling and a
    linear layer; any resolution divisible by 8. Small on purpose: it trains in seconds.
    """

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for mult in (1, 2, 4):
            c_out = width * mult
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # [B, 4 * width, R / 8, R / 8]
        return self.head(h.mean(dim=(2, 3)))  # [B, num_classes]


def _dataset_tensors(dataset, n: int) -> tuple[Tensor, Tensor]:
    items = [dataset[i] for i in range(n)]
    x = torch.stack([img for img, _ in items])  # [n, 3, R, R]
    y = torch.tensor([label for _, label in items])  # [n]
    return x, y


@torch.no_grad()
def accuracy(classifier: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256):
    """Share of ``images`` ``[N, 3, R, R]`` that ``classifier`` assigns to ``labels`` ``[N]``."""
    return float((predict(classifier, images, batch_size) == labels).float().mean())


@torch.no_grad()
def predict(classifier: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted class ``[N]`` of ``images`` ``[N, 3, R, R]`` (classifier in eval mode)."""
    was_training = classifier.training
    classifier.eval()
    out = [classifier(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), 256)]
    classifier.train(was_training)
    return torch.cat(out)


def train_classifier(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 5e-3,
    seed: int = 0,
    progress: bool = False,
) -> ShapeClassifier:
    """Train a :class:`ShapeClassifier` on ``images`` ``[N, 3, R, R]``, ``labels`` ``[N]``.

    Adam with a cosine learning-rate decay; random horizontal flips. Deterministic for a
    seed and thread count.
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ShapeClassifier(num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(images) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    bar = tqdm(total=steps, disable=not progress, desc="gan-test classifier", unit="step")
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=g)
        for i in range(len(images) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x, y = images[idx], labels[idx]
            flip = torch.rand(len(x), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    model.eval()
    return model


def default_cache_dir() -> Path:
    """``gan-test/`` in the cache folder (:func:`ylg.runtime.cache.cache_dir`)."""
    return cache_dir("gan-test")


def shapes_classifier(
    resolution: int = 32,
    *,
    style: str = "scenes",
    num_classes: int = 10,
    n_train: int = 3000,
    n_held_out: int = 1000,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> ShapeClassifier:
    """The GAN-test classifier of the built-in shapes at ``resolution`` and ``style``.

    Loaded from ``cache_dir`` (default :func:`default_cache_dir`) when a classifier with the
    same key is there; otherwise trained on ``n_train`` scenes, checked on ``n_held_out``
    other scenes, and saved (atomically) with its held-out accuracy. The accuracy is the
    attribute ``held_out_accuracy`` of the returned model.
    """
    if resolution % 8:
        raise ValueError(f"resolution={resolution} must be divisible by 8 for the classifier")
    key = f"{RECIPE}-r{resolution}-{style}-c{num_classes}-n{n_train}"
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{key}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = ShapeClassifier(num_classes)
            model.load_state_dict(saved["state_dict"])
            model.eval()
            model.held_out_accuracy = float(saved["held_out_accuracy"])
            return model
        except Exception:  # a stale or damaged cache entry: train again
            pass
    train_set = ShapesDataset(
        resolution, length=n_train, seed=TRAIN_SEED, num_classes=num_classes, style=style
    )
    held_out = ShapesDataset(
        resolution, length=n_held_out, seed=HELD_OUT_SEED, num_classes=num_classes, style=style
    )
    x, y = _dataset_tensors(train_set, n_train)
    model = train_classifier(x, y, num_classes, progress=progress)
    hx, hy = _dataset_tensors(held_out, n_held_out)
    model.held_out_accuracy = accuracy(model, hx, hy)
    atomic_torch_save(
        {"state_dict": model.state_dict(), "held_out_accuracy": model.held_out_accuracy}, path
    )
    return model


@dataclass
class GanTestResult:
    """GAN-test accuracy overall and per class (shares in [0, 1]), and the sample count.

    ``truncation`` is the latent truncation of the samples (``None``: untruncated);
    ``classifier_accuracy`` the classifier's accuracy on held-out real scenes, when known.
    """

    accuracy: float
    per_class: list[float]
    n: int
    class_names: list[str] = field(default_factory=list)
    truncation: float | None = None
    classifier_accuracy: float | None = None

    def names(self) -> list[str]:
        return self.class_names or [str(c) for c in range(len(self.per_class))]

    def to_dict(self) -> dict:
        out = {
            "gan_test_accuracy": self.accuracy,
            "per_class": dict(zip(self.names(), self.per_class)),
            "n": self.n,
            "truncation": self.truncation,
        }
        if self.classifier_accuracy is not None:
            out["classifier_held_out_accuracy"] = self.classifier_accuracy
        return out

    def summary(self) -> str:
        """One line: overall accuracy, then each class's (e.g. ``84% (circle 96 ...)``)."""
        per = " ".join(f"{n} {round(100 * a)}" for n, a in zip(self.names(), self.per_class))
        return f"{100 * self.accuracy:.0f}% ({per})"

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


@torch.no_grad()
def gan_test(
    G: nn.Module,
    classifier: nn.Module,
    *,
    n_per_class: int = 50,
    truncation: float | None = 2.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    class_names: list[str] | None = None,
) -> GanTestResult:
    """GAN-test accuracy of a class-conditional generator ``G`` (in its current mode).

    Draws ``n_per_class`` samples of every class of ``G`` (latents with ``truncation``, from
    ``seed``) and returns the share the classifier assigns to the class they were generated
    for, overall (equal weight per class) and per class.
    """
    num_classes = int(getattr(G, "num_classes", 0))
    if num_classes < 1:
        raise ValueError("GAN-test needs a class-conditional generator (num_classes >= 1)")
    if n_per_class < 1:
        raise ValueError(f"n_per_class={n_per_class} must be >= 1")
    classes = list(range(num_classes))
    images, labels = sample(
        G,
        n_per_class * num_classes,
        classes=classes,
        truncation=truncation,
        seed=seed,
        device=device,
    )
    pred = predict(classifier.cpu(), images)
    hits = (pred == labels).float()
    per_class = [float(hits[labels == c].mean()) for c in classes]
    return GanTestResult(
        accuracy=float(hits.mean()),
        per_class=per_class,
        n=len(labels),
        class_names=list(class_names or []),
        truncation=truncation,
    )


def gan_test_run(
    run: str | os.PathLike,
    *,
    n_per_class: int = 50,
    truncation: float | None = None,
    seed: int = 0,
    use_ema: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> GanTestResult:
    """GAN-test accuracy of a training run (folder or checkpoint) on the built-in shapes.

    Loads the run's (EMA) generator in eval mode and the classifier of the run's resolution
    and ``shapes_style`` (:func:`shapes_classifier`, trained and cached on first use), and
    scores ``n_per_class`` samples per class; ``truncation=None`` (default) draws untruncated
    latents. Raises ``ValueError`` for a run not trained on the built-in shapes or without
    classes.
    """
    models = load_for_inference(run, use_ema=use_ema)
    config = models.config
    if config.get("data") is not None:
        raise ValueError(
            f"GAN-test needs a run on the built-in shapes; {models.path} was trained on "
            f"{config['data']!r}"
        )
    num_classes = int(getattr(models.G, "num_classes", 0))
    if num_classes < 1:
        raise ValueError(f"GAN-test needs a class-conditional run; {models.path} has no classes")
    classifier = shapes_classifier(
        int(config["resolution"]),
        style=config.get("shapes_style", "scenes"),
        num_classes=num_classes,
        cache_dir=cache_dir,
        progress=progress,
    )
    result = gan_test(
        models.G,
        classifier,
        n_per_class=n_per_class,
        truncation=truncation,
        seed=seed,
        class_names=models.class_names,
    )
    result.classifier_accuracy = classifier.held_out_accuracy
    return result
