"""`ylg train --resume CHECKPOINT`: continue from a chosen checkpoint file, into its own run
folder (rewinding it) or into --out; the result equals the run that never stopped."""

from __future__ import annotations

import json

import pytest
import torch

from ylg.cli import main
from ylg.runtime.checkpoint import load_checkpoint
from ylg.runtime.threads import without_thread_line

TINY = ["--attention", "sagan", "--g-width", "2", "--d-width", "2", "--z-dim", "16",
        "--batch-size", "4", "--log-every", "1", "--sample-every", "1000",
        "--workers", "0", "--ema-decay", "0.9", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """4 steps in one go, keeping ckpt-0000002.pt and ckpt-0000004.pt."""
    run = tmp_path_factory.mktemp("straight") / "run"
    torch.set_num_threads(1)
    argv = ["train", "--out", str(run), "--steps", "4", "--checkpoint-every", "2",
            "--keep-checkpoints", "--threads", "1", *TINY]  # fmt: skip
    assert main(argv) == 0
    return run


def _rows(run) -> list[dict]:
    rows = [json.loads(li) for li in (run / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "loss" in k or k == "step"} for r in rows]


def _same_weights(a, b) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["step"] == cb["step"]
    for net in ("G", "D", "G_ema"):
        for k, v in ca[net].items():
            assert torch.equal(v, cb[net][k]), (net, k)


def test_resume_a_checkpoint_file_into_a_new_folder(straight, tmp_path, capsys):
    other = tmp_path / "branch"
    argv = ["train", "--resume", str(straight / "ckpt-0000002.pt"), "--out", str(other),
            "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    _same_weights(straight / "latest.pt", other / "latest.pt")
    assert [r["step"] for r in _rows(other)] == [3, 4]
    assert _rows(other) == _rows(straight)[2:]
    saved = json.loads((other / "config.json").read_text())
    assert saved == json.loads((straight / "config.json").read_text())  # the file's options
    assert "finished at step 4" in capsys.readouterr().out


def test_resume_a_checkpoint_file_in_place_rewinds_the_run(straight, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(straight, run)
    before = _rows(run)
    # rewind to step 2 and go on to 5 with a changed (non-model) option
    argv = ["train", "--resume", str(run / "ckpt-0000002.pt"), "--steps", "5",
            "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    after = _rows(run)
    assert [r["step"] for r in after] == [1, 2, 3, 4, 5]
    assert after[:4] == before  # steps 3, 4 re-run exactly as before
    assert load_checkpoint(run)["step"] == 5
    assert json.loads((run / "config.json").read_text())["steps"] == 5


def test_resume_a_run_folder_is_its_latest_checkpoint(straight, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(straight, run)
    assert main(["train", "--resume", str(run), "--steps", "5", "--threads", "1",
                 "--no-progress"]) == 0  # fmt: skip
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4, 5]
    assert _rows(run)[:4] == _rows(straight)


def test_resume_into_another_runs_folder_is_refused(straight, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(straight, other)
    argv = ["train", "--resume", str(straight / "ckpt-0000002.pt"), "--out", str(other),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = without_thread_line(capsys.readouterr().err).strip()
    assert err == (
        f"ylg train: error: --out {other} already has a checkpoint (latest.pt) of another "
        f"run; resuming {straight / 'ckpt-0000002.pt'} there would mix two runs: choose a "
        "new --out"
    )
    _same_weights(straight / "latest.pt", other / "latest.pt")  # untouched
