"""The thread rule of every `ylg` command (ylg.runtime.threads): cores minus data workers,
OMP_NUM_THREADS, --threads; the line it prints; the same seed and thread count give the same
weights."""

from __future__ import annotations

import os

import pytest
import torch

import ylg.runtime.threads
from ylg.cli import main
from ylg.runtime.threads import LINE, choose_threads, parse_threads, without_thread_line


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("workers", [0, 1, 2, 4])
def test_rule_is_cores_minus_workers_at_least_one(cores, workers):
    choice = choose_threads(workers, environ={}, cores=cores)
    assert choice.threads == (cores - workers if cores > workers else 1)
    assert choice.source == "rule" and choice.cores == cores and choice.workers == workers


@pytest.mark.parametrize(
    ("cores", "procs", "workers", "want"),
    [(8, 2, 0, 4), (8, 2, 1, 3), (8, 4, 2, 1), (2, 4, 0, 1), (9, 2, 0, 4)],
)
def test_torchrun_processes_share_the_cores(cores, procs, workers, want):
    env = {"LOCAL_WORLD_SIZE": str(procs)}
    assert choose_threads(workers, environ=env, cores=cores).threads == want


def test_available_cores_is_the_affinity_mask_else_cpu_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert ylg.runtime.threads.available_cores() == 3
    assert choose_threads(1, environ={}).threads == 2
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert ylg.runtime.threads.available_cores() == 16
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert ylg.runtime.threads.available_cores() == 1


@pytest.mark.parametrize(("omp", "want", "source"),
                         [("3", 3, "OMP_NUM_THREADS"), ("4,2", 4, "OMP_NUM_THREADS"),
                          ("0", 7, "rule"), ("lots", 7, "rule"), ("", 7, "rule")])  # fmt: skip
def test_omp_num_threads_when_set_to_a_positive_count(omp, want, source):
    choice = choose_threads(1, environ={"OMP_NUM_THREADS": omp}, cores=8)
    assert (choice.threads, choice.source) == (want, source)


def test_threads_option_wins_over_everything():
    choice = choose_threads(3, threads="5", environ={"OMP_NUM_THREADS": "2"}, cores=2)
    assert (choice.threads, choice.source) == (5, "--threads")
    assert choose_threads(0, threads=1, environ={}, cores=64).threads == 1


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_bad_thread_counts_name_the_value(bad):
    with pytest.raises(ValueError, match=f"--threads {bad!r} is not a positive integer"):
        parse_threads(bad)
    assert parse_threads(" 12 ") == 12


def test_the_line_says_why():
    rule = choose_threads(0, environ={}, cores=2).describe("train")
    assert (
        rule == "ylg train: 2 CPU threads (2 cores available, 0 data workers; --threads to change)"
    )
    one = choose_threads(4, environ={"LOCAL_WORLD_SIZE": "2"}, cores=8).describe("train")
    assert one == (
        "ylg train: 1 CPU thread (8 cores available / 2 processes, 4 data workers; "
        "--threads to change)"
    )
    env = choose_threads(0, environ={"OMP_NUM_THREADS": "3"}, cores=2).describe("demo")
    assert env == "ylg demo: 3 CPU threads (OMP_NUM_THREADS=3; --threads to change)"
    opt = choose_threads(0, threads=4, environ={}, cores=2).describe("generate")
    assert opt == "ylg generate: 4 CPU threads (--threads 4; 2 cores available)"
    for line in (rule, one, env, opt):
        assert LINE.match(line) and without_thread_line(f"{line}\nrest") == "rest"


def _record_threads(monkeypatch, module, name):
    """Replace ``module.name`` (a command's function) by one that records torch's threads."""
    seen = []

    def fake(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return 0

    monkeypatch.setattr(module, name, fake)
    return seen


def test_commands_set_the_threads_while_they_run_and_restore_them(monkeypatch, capsys):
    import ylg.cli.patterns
    import ylg.cli.train

    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(ylg.runtime.threads, "available_cores", lambda: 3)
    seen = _record_threads(monkeypatch, ylg.cli.patterns, "render_and_report")
    assert torch.get_num_threads() == 1
    assert main(["patterns", "--out", "unused"]) == 0
    assert main(["patterns", "--out", "unused", "--threads", "2"]) == 0
    assert seen == [3, 2]
    assert torch.get_num_threads() == 1  # restored for the caller
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "ylg patterns: 3 CPU threads (3 cores available, 0 data workers; --threads to change)",
        "ylg patterns: 2 CPU threads (--threads 2; 3 cores available)",
    ]
    # train: the resolved config's workers (the preset's, or --workers) take cores
    seen = _record_threads(monkeypatch, ylg.cli.train, "run_train")
    assert main(["train", "--workers", "1", "--out", "unused"]) == 0
    assert main(["train", "--preset", "cifar32", "--out", "unused"]) == 0  # 4 workers
    assert main(["train", "--set", "workers=2", "--out", "unused", "--threads", "3"]) == 0
    assert seen == [2, 1, 3]
    assert "(3 cores available, 1 data workers;" in capsys.readouterr().err
    # demo: the demo preset's workers; no load average
    import ylg.cli.demo
    from ylg.training.config import resolve

    seen = _record_threads(monkeypatch, ylg.cli.demo, "run_demo")
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0), raising=False)
    assert main(["demo", "--out", "unused"]) == 0
    assert seen == [max(1, 3 - resolve("demo").workers)]
    assert not hasattr(ylg.cli.demo, "_free_cores")


def test_bad_threads_is_a_one_line_error_before_any_work(monkeypatch, capsys, tmp_path):
    import ylg.cli.patterns

    seen = _record_threads(monkeypatch, ylg.cli.patterns, "render_and_report")
    assert main(["patterns", "--out", str(tmp_path), "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "ylg patterns: error: --threads '0' is not a positive integer (CPU threads, e.g. 2)"
    )
    assert seen == []


def _tiny_train(out, threads):
    argv = ["train", "--out", str(out), "--no-progress", "--attention", "sagan",
            "--g-width", "4", "--d-width", "4", "--z-dim", "16", "--batch-size", "8",
            "--steps", "2", "--sample-every", "1000", "--workers", "0", "--seed", "3",
            "--threads", str(threads)]  # fmt: skip
    assert main(argv) == 0


# two threads on our two shared cores take 30 s for what takes 7 s on one: slow
@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_same_seed_and_threads_give_bit_identical_runs(tmp_path, threads):
    from ylg.runtime.checkpoint import load_checkpoint

    for name in ("a", "b"):
        _tiny_train(tmp_path / name, threads=threads)
    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for net in ("G", "D", "G_ema"):
        assert ca[net].keys() == cb[net].keys()
        for k, v in ca[net].items():
            assert torch.equal(v, cb[net][k]), (net, k)
    grid = "samples/step-0000002.png"  # the last step always writes one
    assert (tmp_path / "a" / grid).read_bytes() == (tmp_path / "b" / grid).read_bytes()
    for name in ("a", "b"):  # and generate, twice
        assert main(["generate", str(tmp_path / name), "--seeds", "0-3", "--threads", str(threads),
                     "--out", str(tmp_path / f"gen-{name}")]) == 0  # fmt: skip
    for png in sorted((tmp_path / "gen-a").iterdir()):
        assert png.read_bytes() == (tmp_path / "gen-b" / png.name).read_bytes()
