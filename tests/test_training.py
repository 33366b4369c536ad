"""The trainer: presets, CLI overrides, data order, hinge loss, training steps, resume
equality, DDP (2 gloo processes), SIGTERM, non-finite losses, evaluation."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ylg.models.loading import load_for_inference
from ylg.runtime.checkpoint import load_checkpoint
from ylg.training import distributed as dist
from ylg.training.config import PRESETS, TrainConfig, parse_value, resolve
from ylg.training.loop import NonFiniteLossError, train
from ylg.training.loss import HingeLoss
from ylg.training.sampler import GlobalBatchSampler, latents
from ylg.training.stats import read_stats

SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def tiny(**overrides) -> TrainConfig:
    """The smallest useful run: 32 px, 1-head attention, width 2, batch 4."""
    values = dict(
        attention="sagan",
        g_width=2,
        d_width=2,
        z_dim=16,
        batch_size=4,
        steps=4,
        log_every=1,
        sample_every=1000,
        checkpoint_every=1000,
        workers=0,
        ema_decay=0.9,
    )
    values.update(overrides)
    return resolve("demo", values)


def loss_rows(run_dir) -> list[dict]:
    return [
        {k: v for k, v in r.items() if "loss" in k or k in ("step", "d_real", "d_fake")}
        for r in read_stats(Path(run_dir) / "stats.jsonl")
    ]


# ----------------------------------------------------------------------------------------
# Config and presets


def test_presets_resolve_and_roundtrip():
    assert set(PRESETS) >= {"imagenet128", "cifar32", "celeba64", "demo"}
    for name in PRESETS:
        cfg = resolve(name)
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    paper = resolve("imagenet128")
    assert (paper.resolution, paper.batch_size, paper.g_lr, paper.d_lr) == (128, 256, 1e-4, 4e-4)
    assert (paper.beta1, paper.beta2, paper.d_steps, paper.ema) == (0.0, 0.999, 1, False)
    assert (paper.g_width, paper.d_width, paper.attention) == (64, 64, "ylg")
    demo = resolve("demo")
    assert demo.resolution == 32 and demo.ema and demo.data is None


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*imagenet128"):
        resolve("nope")
    with pytest.raises(ValueError, match=r"attention='dense'.*ylg"):
        resolve("demo", {"attention": "dense"})
    with pytest.raises(ValueError, match=r"batch_size=10 is not divisible by accumulate=4"):
        resolve("demo", {"batch_size": 10, "accumulate": 4})
    with pytest.raises(ValueError, match=r"unknown training option\(s\) lr"):
        resolve("demo", {"lr": 1.0})
    with pytest.raises(ValueError, match=r"resolution=48"):
        resolve("demo", {"resolution": 48})
    assert parse_value("steps", "1e3") == 1000 and parse_value("ema", "off") is False
    with pytest.raises(ValueError, match=r"batch_size='x' is not a valid int"):
        parse_value("batch_size", "x")


def test_cli_flags_override_the_preset(tmp_path):
    from ylg.cli import build_parser
    from ylg.cli.train import config_from_args

    args = build_parser().parse_args(
        ["train", "--preset", "cifar32", "--out", str(tmp_path / "r"), "--batch-size", "8",
         "--g-lr", "3e-4", "--no-ema", "--attention", "sagan", "--set", "d_steps=2",
         "--set", "beta2=0.9"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.batch_size == 8 and cfg.g_lr == 3e-4 and cfg.ema is False
    assert cfg.attention == "sagan" and cfg.d_steps == 2 and cfg.beta2 == 0.9
    # everything else comes from the preset
    assert cfg.resolution == 32 and cfg.d_lr == PRESETS["cifar32"]["d_lr"]
    # on --resume, the saved config is the base and flags still override it
    (tmp_path / "r").mkdir()
    tiny(steps=3).save(tmp_path / "r" / "config.json")
    args = build_parser().parse_args(["train", "--out", str(tmp_path / "r"), "--resume",
                                      "--steps", "9"])  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.steps == 9 and cfg.g_width == 2 and cfg.attention == "sagan"


def test_cli_bad_value_is_one_line_error(capsys):
    from ylg.cli import main

    assert main(["train", "--preset", "demo", "--batch-size", "many"]) == 2
    err = capsys.readouterr().err
    assert "batch_size='many' is not a valid int" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------
# Data order and latents


@pytest.mark.parametrize("n", [5, 13, 64])
def test_global_batches_split_over_ranks_and_rounds(n):
    B = 8
    ref = GlobalBatchSampler(n, B, seed=3)
    # consecutive epochs are permutations of the dataset
    stream = sum((ref.global_batch(i) for i in range(4 * n)), [])
    for e in range(3):
        assert sorted(stream[e * n : (e + 1) * n]) == list(range(n))
    for world, acc in [(1, 2), (2, 1), (2, 2), (4, 2)]:
        samplers = [
            GlobalBatchSampler(n, B, seed=3, rank=r, world_size=world, accumulate=acc)
            for r in range(world)
        ]
        for i in range(3):
            parts = {
                (a, r): samplers[r].micro_batch(i, a) for r in range(world) for a in range(acc)
            }
            # micro-batch a * world + r, in that order, re-forms the global batch
            joined = sum((parts[(a, r)] for a in range(acc) for r in range(world)), [])
            assert joined == ref.global_batch(i)
    # 2 processes x 1 round see exactly what 1 process x 2 rounds sees
    one = GlobalBatchSampler(n, B, seed=3, accumulate=2)
    two = [GlobalBatchSampler(n, B, seed=3, rank=r, world_size=2) for r in range(2)]
    assert all(one.micro_batch(i, r) == two[r].micro_batch(i, 0) for i in range(5) for r in (0, 1))
    # resuming at batch k continues the same stream
    it_full, it_resumed = (
        iter(GlobalBatchSampler(n, B, seed=3)),
        iter(GlobalBatchSampler(n, B, seed=3, start_batch=4)),
    )
    full = [next(it_full) for _ in range(7)]
    assert [next(it_resumed) for _ in range(3)] == full[4:]


def test_latents_are_a_function_of_seed_step_phase():
    z1, y1 = latents(0, 5, 1, 8, 4, 10)
    z2, y2 = latents(0, 5, 1, 8, 4, 10)
    z3, _ = latents(0, 6, 1, 8, 4, 10)
    assert torch.equal(z1, z2) and torch.equal(y1, y2) and not torch.equal(z1, z3)
    assert y1.min() >= 0 and y1.max() < 10
    assert latents(0, 5, 1, 8, 4, 0)[1] is None


# ----------------------------------------------------------------------------------------
# Loss


class _FixedG(torch.nn.Module):
    def __init__(self, images):
        super().__init__()
        self.images = images

    def forward(self, z, y):
        return self.images[: z.shape[0]]


class _MeanD(torch.nn.Module):
    """Logit = w * mean(x) + (y as float) * v: easy to compute by hand."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x, y):
        return self.w * x.mean(dim=(1, 2, 3)) + (0.0 if y is None else 0.5 * y.float())


def test_hinge_loss_phases_match_the_formula():
    real = torch.tensor([0.2, -0.9, 1.0])[:, None, None, None].expand(3, 3, 2, 2)
    fake = torch.tensor([-0.1, 0.8])[:, None, None, None].expand(2, 3, 2, 2)
    ry, fy = torch.tensor([0, 1, 0]), torch.tensor([1, 0])
    loss_fn = HingeLoss(_FixedG(fake), _MeanD())
    loss, stats = loss_fn.d_phase(real, ry, torch.zeros(2, 1), fy)
    d_real = [2 * 0.2, 2 * -0.9 + 0.5, 2 * 1.0]  # [0.4, -1.3, 2.0]
    d_fake = [2 * -0.1 + 0.5, 2 * 0.8]  # [0.3, 1.6]
    want_real = sum(max(0, 1 - v) for v in d_real) / 3
    want_fake = sum(max(0, 1 + v) for v in d_fake) / 2
    assert math.isclose(stats["loss_d_real"].item(), want_real, rel_tol=1e-6)
    assert math.isclose(stats["loss_d_fake"].item(), want_fake, rel_tol=1e-6)
    assert math.isclose(loss.item(), want_real + want_fake, rel_tol=1e-6)
    loss.backward()  # d/dw of the hinge terms that are active
    grad = -(0.2 + -0.9) / 3 + (-0.1 + 0.8) / 2  # real 2.0 is outside the margin
    assert math.isclose(loss_fn.D.w.grad.item(), grad, rel_tol=1e-5)
    g_loss, g_stats = loss_fn.g_phase(torch.zeros(2, 1), fy)
    assert math.isclose(g_loss.item(), -sum(d_fake) / 2, rel_tol=1e-6)


# ----------------------------------------------------------------------------------------
# Training runs


def _params(sd: dict) -> dict:
    return {k: v for k, v in sd.items() if v.is_floating_point()}


def test_ylg_training_steps_change_weights_and_write_outputs(tmp_path):
    cfg = tiny(attention="ylg", g_width=16, d_width=16, steps=2, sample_every=2)
    torch.manual_seed(cfg.seed)
    from ylg.models.loading import build_models

    G0, D0 = build_models(cfg, 10)
    result = train(cfg, tmp_path, progress=False)
    assert result.step == 2 and result.stopped == "finished"
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 2 and ckpt["num_classes"] == 10
    for name, before in (("G", G0.state_dict()), ("D", D0.state_dict())):
        after = ckpt[name]
        changed = [k for k in _params(before) if not torch.equal(before[k], after[k])]
        assert len(changed) > len(_params(before)) // 2, name
        assert all(torch.isfinite(v).all() for v in _params(after).values())
    # attention's gamma starts at 0 and is trained
    assert ckpt["G"]["attention.gamma"] != 0 and ckpt["D"]["attention.gamma"] != 0
    rows = read_stats(tmp_path / "stats.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert {"loss_d", "loss_d_real", "loss_d_fake", "loss_g", "time"} <= set(r)
        assert math.isclose(r["loss_d"], r["loss_d_real"] + r["loss_d_fake"], rel_tol=1e-5)
    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_dict()
    assert (tmp_path / "samples" / "step-0000002.png").is_file()
    assert (tmp_path / "attention" / "step-0000002.png").is_file()
    assert any((tmp_path / "tensorboard").iterdir())
    # inference loading: the EMA generator, in eval mode, deterministic
    loaded = load_for_inference(tmp_path)
    assert loaded.step == 2 and loaded.used_ema and not loaded.G.training
    z = torch.randn(3, cfg.z_dim)
    y = torch.tensor([0, 1, 2])
    out = loaded.G(z, y)
    assert out.shape == (3, 3, 32, 32) and out.abs().max() <= 1
    assert torch.equal(out, loaded.G(z, y))
    raw = load_for_inference(tmp_path, use_ema=False)
    assert not torch.equal(raw.G(z, y), out)  # EMA (decay 0.9) differs from the raw G


def test_resume_gives_the_same_losses_and_weights(tmp_path):
    cfg = tiny(steps=6, checkpoint_every=3, d_steps=2)
    train(cfg, tmp_path / "straight", progress=False)
    first = tiny(steps=3, checkpoint_every=3, d_steps=2)
    train(first, tmp_path / "resumed", progress=False)
    with pytest.raises(ValueError, match="already has a checkpoint.*--resume"):
        train(first, tmp_path / "resumed", progress=False)
    with pytest.raises(ValueError, match=r"g_width=4 \(checkpoint: 2\)"):
        train(tiny(steps=6, g_width=4), tmp_path / "resumed", resume=True, progress=False)
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    a, b = loss_rows(tmp_path / "straight"), loss_rows(tmp_path / "resumed")
    assert [r["step"] for r in b] == list(range(1, 7))
    assert a == b  # exactly equal on CPU
    ca, cb = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for name in ("G", "D", "G_ema"):
        for k, v in ca[name].items():
            assert torch.equal(v, cb[name][k]), (name, k)


def test_bf16_augmented_run_resumes_exactly_and_records_its_precision(tmp_path):
    opts = dict(precision="bf16", augment="translation,cutout,color", lecam=0.3, d_steps=2)
    train(tiny(steps=6, checkpoint_every=3, **opts), tmp_path / "straight", progress=False)
    train(tiny(steps=3, checkpoint_every=3, **opts), tmp_path / "resumed", progress=False)
    mid = load_checkpoint(tmp_path / "resumed")
    assert mid["precision"] == "bf16" and mid["lecam"]["updates"] == 3
    train(tiny(steps=6, checkpoint_every=3, **opts), tmp_path / "resumed", resume=True,
          progress=False)  # fmt: skip
    a, b = loss_rows(tmp_path / "straight"), loss_rows(tmp_path / "resumed")
    assert a == b and len(a) == 6
    ca, cb = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert ca["lecam"] == cb["lecam"]
    for name in ("G", "D", "G_ema"):
        for k, v in ca[name].items():
            assert torch.equal(v, cb[name][k]), (name, k)


def test_bf16_losses_track_fp32_over_the_first_steps(tmp_path):
    """Same seed, data and latents: bf16's losses stay within 0.05 + 3% of fp32's over the
    first 4 steps at width 8 (rounding drift; later the tiny, fast-moving nets diverge)."""
    for p in ("fp32", "bf16"):
        train(tiny(steps=4, g_width=8, d_width=8, precision=p, augment="translation"),
              tmp_path / p, progress=False)  # fmt: skip
    a, b = loss_rows(tmp_path / "fp32"), loss_rows(tmp_path / "bf16")
    assert load_checkpoint(tmp_path / "bf16")["precision"] == "bf16"
    assert load_checkpoint(tmp_path / "fp32")["precision"] == "fp32"
    for ra, rb in zip(a, b, strict=True):
        for k in ("loss_d", "loss_g"):
            assert abs(ra[k] - rb[k]) < 0.05 + 0.03 * abs(ra[k]), (ra["step"], k, ra[k], rb[k])
    assert a != b  # bf16 did run in bf16


def test_sigterm_mid_run_leaves_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ylg", "train", "--out", str(run), "--no-progress",
           "--attention", "sagan", "--g-width", "2", "--d-width", "2", "--z-dim", "16",
           "--batch-size", "4", "--steps", "100000", "--log-every", "1",
           "--checkpoint-every", "100000", "--sample-every", "100000",
           "--workers", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not read_stats_safe(run / "stats.jsonl"):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert b"stopped by signal" in out
    ckpt = load_checkpoint(run)
    rows = read_stats(run / "stats.jsonl")
    assert 1 <= ckpt["step"] < 100000 and rows[-1]["step"] == ckpt["step"]
    assert load_for_inference(run).step == ckpt["step"]
    assert not list(run.glob(".*tmp*"))  # no temporary files left behind


def read_stats_safe(path):
    try:
        return read_stats(path)
    except (json.JSONDecodeError, OSError):
        return []


class _Poisoned(torch.utils.data.Dataset):
    """The built-in data until ``good`` items have been read, then NaN images."""

    def __init__(self, good: int):
        from ylg.data import make_dataset

        self.base = make_dataset(None, 32)
        self.num_classes = self.base.num_classes
        self.good, self.reads = good, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        self.reads += 1
        return (x if self.reads <= self.good else torch.full_like(x, float("nan"))), y


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny(steps=10, checkpoint_every=2)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 3: loss_d=nan") as e:
        train(cfg, tmp_path, progress=False, dataset=_Poisoned(good=2 * 4))
    assert "latest.pt" in str(e.value)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in _params(ckpt["G"]).values())
    assert all(torch.isfinite(v).all() for v in _params(ckpt["D"]).values())


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    """torchrun, 2 CPU processes x 1 round == 1 process x 2 accumulation rounds (same global
    batch, same micro-batches, one power iteration per phase)."""
    common = ["--attention", "sagan", "--g-width", "2", "--d-width", "2", "--z-dim", "16",
              "--batch-size", "8", "--steps", "2", "--log-every", "1", "--workers", "0",
              "--sample-every", "1000", "--no-progress", "--augment", "translation,cutout",
              "--lecam", "0.3"]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "ylg", "train", "--out", str(tmp_path / "ddp"), *common]  # fmt: skip
    proc = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    cfg = tiny(batch_size=8, steps=2, accumulate=2, augment="translation,cutout", lecam=0.3)
    train(cfg, tmp_path / "single", progress=False)
    a, b = load_checkpoint(tmp_path / "ddp"), load_checkpoint(tmp_path / "single")
    assert a["world_size"] == 2 and b["world_size"] == 1
    for name in ("G", "D"):
        for k, v in _params(a[name]).items():
            if "running_" in k:
                continue  # BN running statistics: rank 0's micro-batch only, by design
            torch.testing.assert_close(v, b[name][k], rtol=1e-4, atol=1e-5, msg=f"{name}.{k}")
    rows_a, rows_b = loss_rows(tmp_path / "ddp"), loss_rows(tmp_path / "single")
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for k in ra:
            assert math.isclose(ra[k], rb[k], rel_tol=1e-4, abs_tol=1e-5), k


def test_world_size_one_helpers_are_no_ops():
    assert not dist.is_initialized() and dist.rank() == 0 and dist.world_size() == 1
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(dist.all_reduce_mean(t), torch.tensor([1.0, 2.0]))
    m = torch.nn.Linear(2, 2)
    assert dist.wrap(m, torch.device("cpu")) is m


@pytest.mark.slow  # ~35 s: Inception-v3 at 299 x 299 on the CPU
def test_evaluation_logs_fid_and_keeps_best(tmp_path, monkeypatch):
    metrics = pytest.importorskip("ylg.metrics")
    weights = tmp_path / "inception-random.pt"
    torch.manual_seed(0)
    torch.save(metrics.InceptionV3FID().state_dict(), weights)
    monkeypatch.setenv("YLG_INCEPTION_WEIGHTS", str(weights))
    cfg = tiny(steps=2, eval_every=1, eval_n=10, eval_ref_n=10)
    result = train(cfg, tmp_path / "run", progress=False, dataset=_Poisoned(good=10**9))
    rows = [r for r in read_stats(tmp_path / "run" / "stats.jsonl") if "fid" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["fid"]) and r["is"] >= 1 - 1e-9 for r in rows), rows
    best = min(rows, key=lambda r: r["fid"])
    assert result.best_fid == pytest.approx(best["fid"])
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == best["step"]


@pytest.mark.slow  # ~4 min of inductor compilation on 2 CPU cores
def test_compiled_training_matches_eager(tmp_path):
    train(tiny(steps=3, compile=True), tmp_path / "compiled", progress=False)
    train(tiny(steps=3), tmp_path / "eager", progress=False)
    for ra, rb in zip(loss_rows(tmp_path / "compiled"), loss_rows(tmp_path / "eager"), strict=True):
        for k in ra:
            assert math.isclose(ra[k], rb[k], rel_tol=1e-3, abs_tol=1e-4), k
