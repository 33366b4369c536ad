"""Training options as one dataclass, and the named presets, all in one place.

A preset is a set of overrides over the dataclass defaults; a run resolves
``preset + command-line overrides`` into one :class:`TrainConfig` and writes it to
``RUN_DIR/config.json``. The CLI generates one flag per field from this dataclass, so a new
option needs to be added here only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Every option of a training run. Batch sizes are global (all processes together)."""

    # -- model --
    resolution: int = field(default=32, metadata={"help": "image size: 32, 64, 128 or 256"})
    attention: str = field(
        default="ylg", metadata={"help": "attention variant (ylg.models.variants.VARIANTS)"}
    )
    g_width: int = field(default=64, metadata={"help": "generator base width (gf)"})
    d_width: int = field(default=64, metadata={"help": "discriminator base width (df)"})
    z_dim: int = field(default=128, metadata={"help": "latent size"})
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "model folder or shipped model name whose G and D the run starts from "
            "(fine-tuning: optimizers, EMA, LeCam and the step count start fresh); empty = "
            "random weights"
        },
    )
    # -- data --
    data: str | None = field(
        default=None,
        metadata={"help": "image folder or .npz; empty = built-in procedural dataset"},
    )
    shapes_style: str = field(
        default="scenes",
        metadata={
            "help": "style of the built-in dataset (when --data is empty): scenes (shaded "
            "scenes with distractors) or simple (one flat shape on a plain background)"
        },
    )
    conditional: bool = field(
        default=True, metadata={"help": "use the dataset's labels (class-conditional G and D)"}
    )
    workers: int = field(default=2, metadata={"help": "data loading worker processes"})
    # -- optimisation --
    batch_size: int = field(
        default=64, metadata={"help": "global batch: all processes and accumulation rounds"}
    )
    accumulate: int = field(
        default=1, metadata={"help": "gradient accumulation rounds per optimizer step"}
    )
    g_lr: float = field(default=1e-4, metadata={"help": "generator Adam learning rate"})
    d_lr: float = field(default=4e-4, metadata={"help": "discriminator Adam learning rate"})
    beta1: float = field(default=0.0, metadata={"help": "Adam beta1 (both networks)"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2 (both networks)"})
    d_steps: int = field(default=1, metadata={"help": "discriminator steps per generator step"})
    augment: str = field(
        default="",
        metadata={
            "help": "DiffAugment policy for every image D sees: comma-separated of color, "
            "translation, cutout (e.g. translation,cutout); empty = none"
        },
    )
    lecam: float = field(
        default=0.0, metadata={"help": "LeCam regularisation weight of D (e.g. 0.3); 0 = off"}
    )
    ema: bool = field(default=True, metadata={"help": "keep an EMA of the generator weights"})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA decay per step"})
    ema_start: int = field(
        default=0, metadata={"help": "step before which the EMA just copies the weights"}
    )
    # -- run length and maintenance --
    steps: int = field(default=10_000, metadata={"help": "total generator steps"})
    seed: int = field(default=0, metadata={"help": "seed of weights, data order and latents"})
    log_every: int = field(default=10, metadata={"help": "steps between stats.jsonl rows"})
    sample_every: int = field(
        default=500, metadata={"help": "steps between sample grids / attention snapshots"}
    )
    checkpoint_every: int = field(default=1000, metadata={"help": "steps between checkpoints"})
    keep_checkpoints: bool = field(
        default=False, metadata={"help": "also keep ckpt-<step>.pt besides latest.pt"}
    )
    eval_every: int = field(
        default=0, metadata={"help": "steps between FID/IS evaluations (0 = off)"}
    )
    eval_n: int = field(default=5000, metadata={"help": "generated images per evaluation"})
    eval_ref_n: int = field(
        default=50_000, metadata={"help": "real images for the FID reference (capped by data)"}
    )
    eval_ref: str | None = field(
        default=None,
        metadata={
            "help": "reference statistics .npz for FID/KID (`ylg stats`); empty = computed "
            "from the data and cached"
        },
    )
    # -- performance --
    precision: str = field(
        default="auto",
        metadata={
            "help": "fp32, bf16 (autocast; losses, optimizer state, EMA and spectral norm stay "
            "fp32) or auto: bf16 on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16)"
        },
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile G and D"})
    sync_bn: bool = field(
        default=False,
        metadata={"help": "SyncBatchNorm across processes (CUDA only; see docs/training.md)"},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})

    # ------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check values that do not depend on the data or the world size; return self."""
        if self.resolution not in (32, 64, 128, 256):
            raise ValueError(f"resolution={self.resolution} is not one of 32, 64, 128, 256")
        positive = ("g_width", "d_width", "z_dim", "batch_size", "accumulate", "d_steps")
        for name in positive:
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        for name in ("g_lr", "d_lr"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name}={value} must be > 0")
        for name in ("beta1", "beta2", "ema_decay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} must be in [0, 1]")
        for name in ("steps", "workers", "ema_start", "eval_every"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name}={value} must be >= 0")
        for name in ("log_every", "sample_every", "checkpoint_every", "eval_n", "eval_ref_n"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        if self.lecam < 0:
            raise ValueError(f"lecam={self.lecam} must be >= 0")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ValueError(f"precision={self.precision!r} is not one of fp32, bf16, auto")
        from ylg.training.augment import parse_policy

        parse_policy(self.augment)
        if self.batch_size % self.accumulate:
            raise ValueError(
                f"batch_size={self.batch_size} is not divisible by accumulate={self.accumulate}"
            )
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device={self.device!r} is not one of auto, cpu, cuda, cuda:N")
        # imported here: `ylg --help` reads the presets and must not import torch
        from ylg.data.shapes import STYLES

        if self.shapes_style not in STYLES:
            raise ValueError(
                f"shapes_style={self.shapes_style!r} is not one of {', '.join(STYLES)}"
            )
        from ylg.models.variants import VARIANTS

        if self.attention not in VARIANTS:
            raise ValueError(
                f"attention={self.attention!r} is not a known variant; valid: "
                + ", ".join(sorted(VARIANTS))
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. a saved config.json); unknown keys are an error. The old
        ``amp`` flag (before ``precision``) reads as ``precision`` auto (true) or fp32."""
        values = dict(values)
        if "amp" in values:
            amp = values.pop("amp")
            values.setdefault("precision", "auto" if amp else "fp32")
        unknown = sorted(set(values) - set(field_types()))
        if unknown:
            raise ValueError(
                f"unknown training option(s) {', '.join(unknown)}; valid: "
                + ", ".join(field_types())
            )
        return cls(**values)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=False)
            f.write("\n")


# ----------------------------------------------------------------------------------------
# Presets: overrides over the defaults above. The paper's setting is `imagenet128`.

# What the 32 and 64 px presets share: the paper's TTUR recipe at width 64, batch 64, with an
# EMA of G.
_SMALL_DATASET: dict[str, Any] = dict(
    g_width=64,
    d_width=64,
    batch_size=64,
    g_lr=1e-4,
    d_lr=4e-4,
    ema=True,
    ema_decay=0.9999,
    ema_start=1000,
    steps=100_000,
    workers=4,
    sample_every=1000,
    checkpoint_every=5000,
)

PRESETS: dict[str, dict[str, Any]] = {
    # Daras et al. 2019, Sec. 5 / the tensorflow-gan SAGAN example they modified:
    # batch 256, TTUR (G 1e-4, D 4e-4), Adam betas (0, 0.999), 1 D step per G step, hinge
    # loss, gf = df = 64, no EMA; the paper reports the best FID seen during training.
    "imagenet128": dict(
        resolution=128,
        attention="ylg",
        g_width=64,
        d_width=64,
        batch_size=256,
        g_lr=1e-4,
        d_lr=4e-4,
        beta1=0.0,
        beta2=0.999,
        d_steps=1,
        ema=False,
        steps=1_000_000,
        workers=8,
        log_every=50,
        sample_every=2000,
        checkpoint_every=5000,
    ),
    # CIFAR-10 at 32x32 with the same TTUR recipe and an EMA of G (as BigGAN-style repos).
    "cifar32": dict(_SMALL_DATASET, resolution=32),
    # CelebA-style unconditional faces at 64x64.
    "celeba64": dict(_SMALL_DATASET, resolution=64, conditional=False),
    # The main job: minutes on a 2-core CPU, on the built-in procedural dataset.
    "demo": dict(
        resolution=32,
        shapes_style="simple",
        g_width=16,
        d_width=16,
        z_dim=64,
        # Tuned for GAN-test on 2 CPU cores (benchmarks/README.md, "demo"): batch 8 gives
        # twice the steps of batch 16 per second, and learns the classes sooner per image.
        batch_size=8,
        # The demo was tuned and measured in fp32; bf16 (2x faster on CPUs with AMX) would
        # change its samples and has not been re-tuned here.
        precision="fp32",
        g_lr=4e-4,
        d_lr=8e-4,
        ema=True,
        ema_decay=0.98,
        steps=1300,
        workers=0,
        log_every=5,
        sample_every=250,
        checkpoint_every=250,
        # Evaluation sized to a CPU (when --eval-every turns it on): FID of 500 samples
        # against 2,000 real images, minutes instead of the ~18 minutes that a 10,000-image
        # reference costs on 2 cores; the reference is cached and shared (docs/metrics.md says
        # what FID at small n means).
        eval_n=500,
        eval_ref_n=2000,
    ),
}


def field_types() -> dict[str, type]:
    """Name -> base type (int, float, bool or str) of every TrainConfig field, in order."""
    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, type] = {}
    for f in dataclasses.fields(TrainConfig):
        tp = hints[f.name]
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        out[f.name] = tp
    return out


def resolve(preset: str = "demo", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """``PRESETS[preset]`` over the defaults, then ``overrides``; validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **(overrides or {})}
    return TrainConfig.from_dict(values).validate()


def parse_assignments(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """``["g_lr=3e-4", "batch-size=8"]`` -> ``{"g_lr": 0.0003, "batch_size": 8}`` (typed by
    :func:`parse_value`); ``flag`` names the option in the error for an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} {item!r} is not KEY=VALUE")
        key = key.strip().replace("-", "_")
        out[key] = parse_value(key, value)
    return out


def parse_value(name: str, text: str) -> Any:
    """Convert the string ``text`` for option ``name`` to the field's type (for --set k=v)."""
    types_ = field_types()
    if name not in types_:
        raise ValueError(f"unknown training option {name!r}; valid: {', '.join(types_)}")
    tp = types_[name]
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}={text!r} is not a boolean (true/false)")
    if name in ("data", "eval_ref") and text in ("", "none", "None"):
        return None
    try:
        return tp(float(text)) if tp is int and "e" in text.lower() else tp(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a valid {tp.__name__}") from None
