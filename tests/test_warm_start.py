"""``--init-from``: a run that starts from a model folder's G and D (fine-tuning)."""

from __future__ import annotations

import json

import pytest
import torch

from test_training import tiny
from ylg.models.pretrained import export_model, load_pretrained
from ylg.runtime.checkpoint import load_checkpoint
from ylg.training.loop import train
from ylg.training.warm_start import warm_start


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    """A model folder exported from a 4-step run (batch 4: 16 images seen)."""
    root = tmp_path_factory.mktemp("base")
    train(tiny(steps=4, seed=3), root / "run", progress=False)
    return export_model(root / "run", root / "base")


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_run_starts_from_the_folders_G_and_D(base_folder, tmp_path):
    cfg = tiny(steps=0, init_from=str(base_folder))  # 0 steps: the weights as started
    train(cfg, tmp_path / "ft", progress=False)
    ckpt = load_checkpoint(tmp_path / "ft")
    base = load_pretrained(base_folder)
    assert _equal_states(ckpt["G"], base.G.state_dict())  # G starts from the EMA weights
    assert _equal_states(ckpt["G_ema"], base.G.state_dict())
    assert _equal_states(ckpt["D"], base.D.state_dict())  # spectral norm's u, v included
    init = ckpt["extra"]["init"]
    assert init["name"] == "base" and init["step"] == 4 and init["images_seen"] == 16
    meta = json.loads((base_folder / "model.json").read_text())
    assert init["G_sha256"] == meta["sha256"]["G.safetensors"]


def test_fine_tuning_trains_resumes_exactly_and_exports_the_total_images(base_folder, tmp_path):
    straight = tmp_path / "straight"
    train(tiny(steps=4, init_from=str(base_folder)), straight, progress=False)
    resumed = tmp_path / "resumed"
    train(tiny(steps=2, init_from=str(base_folder)), resumed, progress=False)
    train(tiny(steps=4, init_from=str(base_folder)), resumed, resume=True, progress=False)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert _equal_states(a["G"], b["G"]) and _equal_states(a["D"], b["D"])
    base = load_pretrained(base_folder)
    assert not _equal_states(a["G"], base.G.state_dict())  # it trained
    out = export_model(straight, tmp_path / "ft-model")
    meta = json.loads((out / "model.json").read_text())
    assert meta["step"] == 4 and meta["images_seen"] == 16 + 16
    assert meta["init_from"]["name"] == "base" and meta["init_from"]["images_seen"] == 16


def test_a_folder_of_another_shape_or_class_count_is_refused(base_folder, tmp_path):
    with pytest.raises(ValueError, match=r"has g_width=2 but this run has g_width=4"):
        train(tiny(g_width=4, init_from=str(base_folder)), tmp_path / "a", progress=False)
    cfg = tiny(init_from=str(base_folder))

    class Nets:  # only the class count is checked before any weight is touched
        pass

    with pytest.raises(ValueError, match=r"trained with \d+ classes but the data has 2"):
        warm_start(Nets(), cfg, num_classes=2)


def test_an_unknown_model_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'; valid: emoji32"):
        train(tiny(init_from="nope"), tmp_path / "x", progress=False)
