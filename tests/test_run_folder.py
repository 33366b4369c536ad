"""One run per folder, and a fresh start that owns its folder's logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from test_training import SUBPROCESS_ENV, tiny
from ylg.cli import main
from ylg.runtime.run_lock import LOCK_NAME, RunFolderBusyError, RunLock
from ylg.training.loop import train
from ylg.training.stats import read_stats

HOLD = "import sys, time; from ylg.runtime.run_lock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"  # noqa: E501


def test_a_second_run_into_a_held_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(
            RunFolderBusyError, match=f"in use by another ylg run \\(PID {os.getpid()}\\)"
        ):
            train(tiny(steps=1), run, progress=False)
        assert main(["train", "--out", str(run), "--steps", "1", "--no-progress"]) == 2
        assert f"{run} is in use by another ylg run" in capsys.readouterr().err
    assert not (run / "latest.pt").exists() and not (run / "stats.jsonl").exists()
    train(tiny(steps=1), run, progress=False)  # released: the run goes ahead
    with RunLock(run):  # and train released it when it ended
        pass


def test_kill_9_never_leaves_a_stale_lock(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=SUBPROCESS_ENV,
                            stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == b"held"
        with pytest.raises(RunFolderBusyError, match=f"PID {proc.pid}"):
            RunLock(run).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run / LOCK_NAME).exists()
    RunLock(run).acquire().release()


def test_a_rerun_after_a_crash_before_the_first_checkpoint_does_not_duplicate_rows(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # what a kill before the first checkpoint leaves: rows and a TensorBoard file, no .pt
    (run / "stats.jsonl").write_text("".join(f'{{"step": {i}, "loss_d": 1.0}}\n' for i in (1, 2)))
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.old").write_text("x")
    train(tiny(steps=3), run, progress=False)
    steps = [r["step"] for r in read_stats(run / "stats.jsonl")]
    assert steps == [1, 2, 3]
    assert not (run / "tensorboard" / "events.out.tfevents.old").exists()


def test_a_torn_last_stats_line_is_dropped_with_a_warning_and_resume_works(tmp_path):
    run = tmp_path / "run"
    train(tiny(steps=2, checkpoint_every=2), run, progress=False)
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 3, "loss_d": 0.')  # a kill mid-write
    with pytest.warns(UserWarning, match="stats.jsonl: dropped a torn last line 3"):
        assert [r["step"] for r in read_stats(run / "stats.jsonl")] == [1, 2]
    with pytest.warns(UserWarning):
        train(tiny(steps=3, checkpoint_every=2), run, resume=True, progress=False)
    assert [r["step"] for r in read_stats(run / "stats.jsonl")] == [1, 2, 3]
    (run / "stats.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="stats.jsonl line 2 is not JSON"):
        read_stats(run / "stats.jsonl")


def test_two_cli_trainings_into_one_folder_at_once(tmp_path):
    """The check of the issue: two `ylg train --out SAME` at once; the second is refused."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "ylg", "train", "--out", str(run), "--attention", "sagan",
            "--g-width", "2", "--d-width", "2", "--z-dim", "16", "--batch-size", "4",
            "--steps", "100000", "--workers", "0", "--no-progress", "--log-every", "1"]  # fmt: skip
    first = subprocess.Popen(args, env=SUBPROCESS_ENV, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "stats.jsonl").exists() or not read_stats(run / "stats.jsonl"):
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.2)
        second = subprocess.run(args, env=SUBPROCESS_ENV, capture_output=True, timeout=120)
        assert second.returncode == 2
        assert f"PID {first.pid}" in second.stderr.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert first.returncode == 0
