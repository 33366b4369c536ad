"""`ylg ablate`: runs per (variant, seed), the shared reference, the table and curves against
the runs' own stats.jsonl, resume / skip / continue, a killed ablation, cluster commands.

FID here uses a tiny random feature extractor in place of Inception (same interface), so
that a whole ablation takes seconds; what is tested is the harness, not the network.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import shlex
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ylg.experiments import ablate, commands, plan
from ylg.experiments.curves import mean_curve
from ylg.experiments.table import summarize
from ylg.models.loading import load_for_inference
from ylg.runtime.checkpoint import FORMAT, load_checkpoint
from ylg.training.stats import read_stats

loop_module = importlib.import_module("ylg.training.loop")

VARIANTS = ("sagan", "none")
SEEDS = (0, 1)
STEPS = 4
OPTIONS = dict(
    g_width=2, d_width=2, z_dim=16, batch_size=4, steps=STEPS, log_every=1,
    sample_every=1000, checkpoint_every=2, workers=0, ema_decay=0.9,
    eval_every=2, eval_n=24, eval_ref_n=24,
)  # fmt: skip
NAMES = [f"{v}-seed{s}" for s in SEEDS for v in VARIANTS]


class TinyExtractor(nn.Module):
    """Stands in for the FID Inception: uint8 [B, 3, R, R] -> (features [B, 8], logits
    [B, 1008]), from 4x4 average colours through fixed random linear maps."""

    extractor_id = "tiny-test-extractor"

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(123)
        self.register_buffer("w", torch.randn(48, 8, generator=g) / 7)
        self.register_buffer("v", torch.randn(8, 1008, generator=g))

    def forward(self, x):
        h = nn.functional.adaptive_avg_pool2d(x.float() / 127.5 - 1, 4).flatten(1)  # [B, 48]
        pool = torch.tanh(h @ self.w)  # [B, 8]
        return pool, pool @ self.v


@pytest.fixture(autouse=True)
def tiny_inception(monkeypatch):
    import ylg.metrics
    import ylg.metrics.weights

    monkeypatch.setattr(ylg.metrics, "load_inception", lambda *a, **k: TinyExtractor())
    monkeypatch.setattr(ylg.metrics.weights, "load_inception", lambda *a, **k: TinyExtractor())


@pytest.fixture
def train_calls(monkeypatch):
    """The run folder of every call of the trainer."""
    calls = []
    real = loop_module.train

    def counting(config, run_dir, **kw):
        calls.append(Path(run_dir).name)
        return real(config, run_dir, **kw)

    monkeypatch.setattr(loop_module, "train", counting)
    return calls


def run_ablation(out, **kw):
    kw = {"variants": VARIANTS, "seeds": SEEDS, "preset": "demo", "progress": False, **kw}
    kw["options"] = {**OPTIONS, **kw.get("options", {})}
    return ablate(out, **kw)


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def fid_rows(run_dir) -> list[dict]:
    return [r for r in read_stats(Path(run_dir) / "stats.jsonl") if "fid" in r]


def _f(text: str) -> float | None:
    return float(text) if text != "" else None


# ----------------------------------------------------------------------------------------


def test_ablation_writes_runs_table_and_curves_that_match_the_stats(tmp_path, capsys):
    out = tmp_path / "abl"
    result = run_ablation(out, jobs=2)
    assert "one job at a time" in capsys.readouterr().err  # --jobs 2 on the CPU
    assert not result.interrupted and not result.failed and not result.skipped
    assert result.trained == NAMES  # seed-major order
    # one ordinary run folder per run, identical configs but attention and seed
    configs = {n: json.loads((out / n / "config.json").read_text()) for n in NAMES}
    base = {k: v for k, v in configs["sagan-seed0"].items() if k not in ("attention", "seed")}
    for n, c in configs.items():
        assert {k: v for k, v in c.items() if k not in ("attention", "seed")} == base, n
        assert (c["attention"], c["seed"]) == (n.split("-seed")[0], int(n.split("-seed")[1]))
        assert load_checkpoint(out / n)["step"] == STEPS
    assert base["eval_ref"] == str(out.resolve() / "fid-reference.npz")

    # the logged FID / KID are those of best.pt's generator against the shared reference
    from ylg.metrics import ReferenceStats, evaluate_generator

    reference = ReferenceStats.load(out / "fid-reference.npz")
    assert reference.n == 24 and reference.extractor == TinyExtractor.extractor_id
    best = min(fid_rows(out / "sagan-seed1"), key=lambda r: r["fid"])
    G = load_for_inference(out / "sagan-seed1" / "best.pt").G
    again = evaluate_generator(
        G, n=24, reference=reference, metrics=("fid", "kid"), seed=1,
        inception=TinyExtractor(), progress=False,
    )  # fmt: skip
    assert again["fid"] == pytest.approx(best["fid"], rel=1e-6)
    assert again["kid"] == pytest.approx(best["kid"], rel=1e-6, abs=1e-9)

    # runs.csv and table.csv against stats.jsonl, computed here the obvious way
    per_run = {r["run"]: r for r in read_csv(out / "runs.csv")}
    expect: dict[str, dict[str, list[float]]] = {}
    for n in NAMES:
        rows = read_stats(out / n / "stats.jsonl")
        evals = [r for r in rows if "fid" in r]
        assert [r["step"] for r in evals] == [2, 4]
        i = int(np.argmin([r["fid"] for r in evals]))
        want = {
            "best_fid": evals[i]["fid"],
            "best_step": evals[i]["step"],
            "final_fid": evals[-1]["fid"],
            "kid": evals[i]["kid"],
            "is": evals[i]["is"],
            "steps_per_s": float(np.median([r["steps_per_s"] for r in rows if "steps_per_s" in r])),
            "peak_mem_mb": max(r["peak_mem_mb"] for r in rows if "peak_mem_mb" in r),
        }
        got = per_run[n]
        assert got["finished"] == "True" and int(got["step"]) == STEPS
        for k, v in want.items():
            assert float(got[k]) == pytest.approx(v, rel=1e-9), (n, k)
            expect.setdefault(n.split("-seed")[0], {}).setdefault(k, []).append(v)
    table = {r["variant"]: r for r in read_csv(out / "table.csv")}
    assert list(table) == list(VARIANTS)
    for v in VARIANTS:
        assert table[v]["runs"] == "2" and table[v]["runs_finished"] == "2"
        for k, vals in expect[v].items():
            assert float(table[v][f"{k}_mean"]) == pytest.approx(np.mean(vals), rel=1e-9)
            assert float(table[v][f"{k}_std"]) == pytest.approx(
                np.std(vals, ddof=1), rel=1e-6, abs=1e-12
            )
    md = (out / "table.md").read_text()
    for v in VARIANTS:
        line = next(li for li in md.splitlines() if li.startswith(f"| {v} |"))
        mean, std = np.mean(expect[v]["best_fid"]), np.std(expect[v]["best_fid"], ddof=1)
        assert f"| 2/2 | {mean:.2f} ± {std:.2f} |" in line

    # curves: a PNG; the thick line is the mean of the seeds' FIDs at each step
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    the_plan = plan(out, variants=VARIANTS, seeds=SEEDS, preset="demo", options=OPTIONS)
    rows, _ = summarize(the_plan)
    for row in rows:
        seeds = [{r["step"]: r["fid"] for r in fid_rows(out / r.name)} for r in row.runs]
        want = [(s, pytest.approx(np.mean([c[s] for c in seeds]))) for s in (2, 4)]
        assert mean_curve(row.runs) == want


def test_second_invocation_skips_finished_runs_and_more_steps_continue(tmp_path, train_calls):
    out = tmp_path / "abl"
    run_ablation(out)
    assert train_calls == NAMES
    before = {n: (out / n / "stats.jsonl").read_bytes() for n in NAMES}
    ckpt_mtime = {n: (out / n / "latest.pt").stat().st_mtime_ns for n in NAMES}
    ref_mtime = (out / "fid-reference.npz").stat().st_mtime_ns

    result = run_ablation(out)
    assert train_calls == NAMES  # nothing trained again
    assert result.skipped == NAMES and not result.trained
    for n in NAMES:
        assert (out / n / "stats.jsonl").read_bytes() == before[n]
        assert (out / n / "latest.pt").stat().st_mtime_ns == ckpt_mtime[n]

    result = run_ablation(out, options={"steps": 6})  # a larger budget continues the runs
    assert train_calls[4:] == NAMES and result.trained == NAMES
    assert (out / "fid-reference.npz").stat().st_mtime_ns == ref_mtime  # computed once
    for n in NAMES:
        rows = read_stats(out / n / "stats.jsonl")
        assert [r["step"] for r in rows if "loss_d" in r] == list(range(1, 7))
        old = [json.loads(li) for li in before[n].decode().splitlines()]
        assert rows[: len(old)] == old  # steps 1..4 kept, not redone
        assert [r["step"] for r in rows if "fid" in r] == [2, 4, 6]
    table = {r["variant"]: r for r in read_csv(out / "table.csv")}
    assert table["sagan"]["runs_finished"] == "2"


def test_other_options_on_an_existing_ablation_are_an_error(tmp_path):
    out = tmp_path / "abl"
    run_ablation(out, variants=("none",), seeds=(0,))
    with pytest.raises(ValueError, match=r"none-seed0 was run with other options: g_lr="):
        run_ablation(out, variants=("none",), seeds=(0,), options={"g_lr": 1e-3})
    with pytest.raises(ValueError, match="holds statistics of 24 images.*asks for 30"):
        run_ablation(out, variants=("none",), seeds=(5,), options={"eval_ref_n": 30})


def _record_runs(monkeypatch, interrupt: bool) -> list[str]:
    """Record the runs the trainer starts; with ``interrupt``, SIGTERM to this process during
    step 3 of the second one."""
    real_train, real_latents = loop_module.train, loop_module.latents
    started: list[str] = []

    def latents(seed, step, phase, *a):
        if interrupt and len(started) == 2 and step == 2 and phase == loop_module.G_PHASE:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_latents(seed, step, phase, *a)

    def train(config, run_dir, **kw):
        started.append(Path(run_dir).name)
        return real_train(config, run_dir, **kw)

    monkeypatch.setattr(loop_module, "latents", latents)
    monkeypatch.setattr(loop_module, "train", train)
    return started


def test_killed_ablation_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
    from ylg.cli import main

    out = tmp_path / "abl"
    started = _record_runs(monkeypatch, interrupt=True)
    argv = ["ablate", "--out", str(out), "--variants", *VARIANTS, "--seeds", "0", "1",
            "--no-progress"] + [f"--set={k}={v}" for k, v in OPTIONS.items()]  # fmt: skip
    assert main(argv) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert started == ["sagan-seed0", "none-seed0"]
    assert load_checkpoint(out / "sagan-seed0")["step"] == STEPS
    assert load_checkpoint(out / "none-seed0")["step"] == 3  # stopped cleanly after step 3
    assert not (out / "sagan-seed1").exists()
    first = (out / "sagan-seed0" / "stats.jsonl").read_bytes()

    started = _record_runs(monkeypatch, interrupt=False)
    assert main(argv) == 0
    assert started == ["none-seed0", "sagan-seed1", "none-seed1"]  # finished run skipped
    assert (out / "sagan-seed0" / "stats.jsonl").read_bytes() == first
    steps = [r["step"] for r in read_stats(out / "none-seed0" / "stats.jsonl") if "loss_d" in r]
    assert steps == [1, 2, 3, 4]

    straight = tmp_path / "straight"
    run_ablation(straight)
    resumed = {r["run"]: r for r in read_csv(out / "runs.csv")}
    for r in read_csv(straight / "runs.csv"):
        for k in ("best_fid", "final_fid", "kid", "is", "best_step"):
            # training on the CPU resumes exactly, so the numbers are the same
            assert _f(resumed[r["run"]][k]) == pytest.approx(_f(r[k]), rel=1e-6), (r["run"], k)


def test_print_commands_give_the_same_run_configs(tmp_path, capsys):
    from ylg.cli import build_parser, main
    from ylg.cli.train import config_from_args

    out = tmp_path / "abl"
    argv = ["ablate", "--out", str(out), "--variants", "ylg", "sagan8", "--seeds", "3",
            "--print-commands", "--nproc-per-node", "8", "--preset", "cifar32",
            "--steps", "300", "--eval-every", "100", "--set", "eval_n=50",
            "--eval-ref-n", "70"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert shlex.split(lines[0]) == [
        "ylg", "stats", "builtin", "--resolution", "32", "--n", "70",
        "--out", str(out.resolve() / "fid-reference.npz"),
    ]  # fmt: skip
    the_plan = plan(
        out, variants=("ylg", "sagan8"), seeds=(3,), preset="cifar32",
        options={"steps": 300, "eval_every": 100, "eval_n": 50, "eval_ref_n": 70},
    )  # fmt: skip
    assert commands(the_plan, nproc_per_node=8) == lines
    for line, run in zip(lines[1:], the_plan.runs, strict=True):
        words = shlex.split(line)
        assert words[:5] == ["torchrun", "--standalone", "--nproc-per-node=8", "-m", "ylg"]
        args = build_parser().parse_args(words[5:])
        assert args.out == str(run.run_dir) and args.resume is None  # not started yet
        assert config_from_args(args) == run.config
    # a run with a checkpoint is continued (`ylg train --resume` refuses a folder without one)
    started = the_plan.runs[0]
    started.run_dir.mkdir(parents=True)
    torch.save({"format": FORMAT, "step": 7}, started.run_dir / "latest.pt")
    words = shlex.split(commands(the_plan, nproc_per_node=8)[1])
    assert build_parser().parse_args(words[5:]).resume is True
    # the spec is saved, so that --table-only can report what exists (nothing yet)
    assert main(["ablate", "--out", str(out), "--table-only"]) == 0
    table = {r["variant"]: r for r in read_csv(out / "table.csv")}
    assert table["ylg"]["runs_finished"] == "0" and table["ylg"]["best_fid_mean"] == ""


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"variants": ("sagan", "nope")}, "unknown variant.*nope"),
        ({"variants": ("sagan", "sagan")}, "has repeats"),
        ({"seeds": (0, 0)}, "must be distinct"),
        ({"options": {"eval_every": 0}}, "eval_every=0.*--eval-every"),
        ({"options": {"attention": "ylg"}}, "attention are set by the ablation"),
        ({"jobs": 0}, "jobs=0"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        run_ablation(tmp_path / "abl", **kw)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from ylg.cli import main

    assert main(["ablate", "--out", str(tmp_path), "--variants", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bogus" in err
    assert main(["ablate", "--out", str(tmp_path / "none"), "--table-only"]) == 2
    assert "not an ablation folder" in capsys.readouterr().err


@pytest.mark.slow  # ~13 s: two fresh Python processes importing torch
def test_jobs_run_as_separate_train_processes(tmp_path, monkeypatch):
    """The --jobs path (meant for one GPU), here on the CPU: two `ylg train` processes."""
    from ylg.experiments.launch import train_in_processes
    from ylg.experiments.spec import AblationResult, Run
    from ylg.training.config import resolve

    opts = {**OPTIONS, "eval_every": 0, "steps": 2}
    runs = [
        Run(v, 0, tmp_path / f"{v}-seed0", resolve("demo", {**opts, "attention": v}))
        for v in VARIANTS
    ]
    result = AblationResult(out=tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    train_in_processes(runs, result, "demo", jobs=2, poll_s=0.1)
    assert sorted(result.trained) == sorted(r.name for r in runs) and not result.failed
    for run in runs:
        assert load_checkpoint(run.run_dir)["step"] == 2
        assert json.loads((run.run_dir / "config.json").read_text()) == run.config.to_dict()
        assert "finished at step 2" in (run.run_dir / "train.log").read_text()
