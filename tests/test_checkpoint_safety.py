"""A checkpoint is data, never code: a crafted file is refused by everything that loads one,
and its payload never runs; old pickled checkpoints convert only on an explicit opt-in."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from test_training import loss_rows, tiny
from ylg.cli import main
from ylg.experiments.launch import checkpoint_step
from ylg.models.loading import load_for_inference
from ylg.models.pretrained import load_models
from ylg.runtime.checkpoint import (
    FORMAT,
    UnsafeCheckpointError,
    load_checkpoint,
    upgrade_checkpoint,
)
from ylg.training.loop import train
from ylg.training.rng import rng_state, set_rng_state


class Payload:
    """Unpickling this creates the file ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(a genuine 1-step run folder, a crafted copy whose latest.pt carries a payload,
    the payload's marker file)."""
    root = tmp_path_factory.mktemp("safety")
    good = root / "good"
    train(tiny(steps=1), good, progress=False)
    crafted = root / "crafted"
    shutil.copytree(good, crafted)
    ckpt = torch.load(good / "latest.pt", weights_only=True)
    marker = root / "PWNED"
    ckpt["extra"]["note"] = Payload(marker)
    torch.save(ckpt, crafted / "latest.pt")
    return good, crafted, marker


def test_genuine_checkpoints_load_without_pickle(runs):
    good, _, _ = runs
    ckpt = torch.load(good / "latest.pt", weights_only=True)
    assert ckpt["format"] == FORMAT
    assert load_checkpoint(good)["step"] == 1


def test_rng_state_round_trips_as_plain_data():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def _refused(err_or_text: str) -> bool:
    return "pickled objects that could run code" in err_or_text


def test_crafted_checkpoint_is_refused_by_every_loader(runs, tmp_path, capsys):
    _, crafted, marker = runs
    for load in (load_checkpoint, load_for_inference, load_models, checkpoint_step):
        with pytest.raises(UnsafeCheckpointError, match="could run code"):
            load(crafted)
    with pytest.raises(UnsafeCheckpointError):
        train(tiny(steps=2), crafted, resume=True, progress=False)
    image = tmp_path / "target.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    commands = [
        ["generate", str(crafted), "--n", "1", "--out", str(tmp_path / "g")],
        ["train", "--out", str(crafted), "--resume", "--steps", "2", "--no-progress"],
        ["eval", str(crafted), "--data", str(image.parent), "--n", "2"],
        ["invert", str(image), "--checkpoint", str(crafted), "--out", str(tmp_path / "i")],
        ["attention", str(crafted), "--seed", "0", "--out", str(tmp_path / "a")],
        ["demo", "--out", str(crafted), "--steps", "2", "--no-patterns", "--no-progress"],
    ]
    for argv in commands:
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0, argv
        assert _refused(err), (argv, err[-500:])
    assert not marker.exists()


def test_upgrade_needs_trust_and_then_loads_safely(runs, tmp_path):
    good, _, marker = runs
    legacy = tmp_path / "legacy.pt"
    ckpt = torch.load(good / "latest.pt", weights_only=True)
    ckpt["format"] = "ylg-train-1"  # what ylg wrote before: numpy and python RNG as tuples
    ckpt["rng"]["numpy"] = np.random.get_state()
    ckpt["rng"]["python"] = __import__("random").getstate()
    torch.save(ckpt, legacy)
    with pytest.raises(UnsafeCheckpointError, match="ylg upgrade-checkpoint"):
        load_checkpoint(legacy)
    assert main(["upgrade-checkpoint", str(legacy)]) == 2  # no --trust: nothing read
    with pytest.raises(UnsafeCheckpointError, match="trust"):
        upgrade_checkpoint(legacy)
    assert main(["upgrade-checkpoint", str(legacy), "--trust"]) == 0
    up = load_checkpoint(legacy)
    assert up["format"] == FORMAT and up["rng"]["numpy"]["keys"].shape == (624,)
    set_rng_state(up["rng"])  # the converted state is usable
    assert not marker.exists()


def test_resume_stays_exact_with_the_safe_format(tmp_path):
    train(tiny(steps=4), tmp_path / "straight", progress=False)
    train(tiny(steps=2), tmp_path / "resumed", progress=False)
    train(tiny(steps=4), tmp_path / "resumed", resume=True, progress=False)
    assert loss_rows(tmp_path / "straight") == loss_rows(tmp_path / "resumed")
