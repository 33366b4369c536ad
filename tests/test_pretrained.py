"""Pretrained models shipped in the package (ylg.models.pretrained): export, load, generate."""

from __future__ import annotations

import json

import pytest
import torch

from ylg.models.loading import build_models, load_for_inference
from ylg.models.pretrained import PRETRAINED, export_model, load_pretrained
from ylg.runtime.checkpoint import FORMAT
from ylg.runtime.files import atomic_torch_save

CONFIG = {"resolution": 32, "attention": "ylg", "g_width": 16, "d_width": 16, "z_dim": 16}


def _checkpoint(path, with_ema=True):
    torch.manual_seed(0)
    G, D = build_models(CONFIG, 3)
    torch.manual_seed(1)
    G_ema, _ = build_models(CONFIG, 3)
    ckpt = {
        "format": FORMAT,
        "step": 7,
        "config": {**CONFIG, "batch_size": 4},
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
        "G": G.state_dict(),
        "D": D.state_dict(),
        "G_ema": G_ema.state_dict() if with_ema else None,
    }
    return atomic_torch_save(ckpt, path)


def _samples(G, n=4):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(n, G.z_dim, generator=g)
    y = torch.arange(n) % 3
    with torch.no_grad():
        return G(z, y)


def test_export_then_load_gives_the_checkpoints_models(tmp_path):
    ckpt = _checkpoint(tmp_path / "latest.pt")
    folder = export_model(ckpt, tmp_path / "w" / "tiny")
    info = json.loads((folder / "model.json").read_text())
    assert info["step"] == 7 and info["used_ema"] and info["class_names"] == ["a", "b", "c"]
    assert info["config"] == CONFIG  # only the options that shape the models
    assert info["batch_size"] == 4 and info["images_seen"] == 28 and info["precision"] == "fp32"
    loaded = load_pretrained("tiny", folder=tmp_path / "w")
    assert torch.equal(_samples(load_pretrained(folder).G), _samples(loaded.G))
    ref = load_for_inference(ckpt)  # EMA weights, as the export
    assert loaded.used_ema and loaded.step == 7 and loaded.class_names == ["a", "b", "c"]
    assert torch.equal(_samples(loaded.G), _samples(ref.G))
    x = _samples(ref.G)
    y = torch.arange(4) % 3
    with torch.no_grad():
        assert torch.equal(loaded.D(x, y), ref.D(x, y))
    assert not loaded.G.training and not loaded.D.training
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["D.safetensors", "G.safetensors", "MODEL_CARD.md", "model.json"]
    assert "step 7 (28 images seen" in (folder / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("file", ["G.safetensors", "D.safetensors", "MODEL_CARD.md"])
def test_a_damaged_or_edited_file_is_refused_naming_it(tmp_path, file):
    folder = export_model(_checkpoint(tmp_path / "c.pt"), tmp_path / "w" / "tiny")
    f = folder / file
    f.write_bytes(f.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match=f"tiny/{file} has SHA-256 .* expected .*edited"):
        load_pretrained(folder)


def test_an_edited_model_json_is_one_line_naming_it(tmp_path):
    folder = export_model(_checkpoint(tmp_path / "c.pt"), tmp_path / "w" / "tiny")
    meta = folder / "model.json"
    info = json.loads(meta.read_text())
    info["config"]["g_width"] = 32
    meta.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="model.json does not fit the weights beside it"):
        load_pretrained(folder)
    meta.write_text("{")
    with pytest.raises(ValueError, match="model.json is not valid JSON"):
        load_pretrained(folder)


def test_ylg_export_then_generate_with_pretrained_dir(tmp_path, capsys):
    from ylg.cli import main

    ckpt = _checkpoint(tmp_path / "run" / "latest.pt")
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "m")]) == 0
    out = tmp_path / "gen"
    assert (
        main(["generate", "--pretrained", str(tmp_path / "m"), "--n", "2", "--out", str(out)]) == 0
    )
    assert len(list(out.glob("*.png"))) == 2
    assert torch.equal(
        _samples(load_pretrained(tmp_path / "m").G), _samples(load_for_inference(ckpt).G)
    )


def test_an_unknown_name_lists_the_valid_ones(tmp_path):
    export_model(_checkpoint(tmp_path / "c.pt"), tmp_path / "w" / "tiny")
    with pytest.raises(ValueError, match="unknown pretrained model 'huge'; valid: tiny"):
        load_pretrained("huge", folder=tmp_path / "w")


@pytest.mark.parametrize("name", PRETRAINED)
def test_each_shipped_model_loads_and_generates(name):
    m = load_pretrained(name)
    n = 2 * max(1, m.G.num_classes) if hasattr(m.G, "num_classes") else 4
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, m.G.z_dim, generator=g)
    y = torch.arange(n) % max(1, len(m.class_names or [0]))
    with torch.no_grad():
        x = m.G(z, y)
        score = m.D(x, y)
    r = m.config["resolution"]
    assert x.shape == (n, 3, r, r) and torch.isfinite(x).all() and x.abs().max() <= 1
    assert x.std() > 0.05  # not a constant image
    assert score.shape[0] == n and torch.isfinite(score).all()


def test_load_models_takes_a_run_or_checkpoint_and_names_the_shipped_ones(tmp_path):
    from ylg.models.pretrained import load_models

    ckpt = _checkpoint(tmp_path / "run" / "latest.pt")
    for source in (ckpt, tmp_path / "run"):
        m = load_models(source)
        assert torch.equal(_samples(m.G), _samples(load_for_inference(ckpt).G))
    with pytest.raises(FileNotFoundError, match="does not exist, and it is not the name of a"):
        load_models(tmp_path / "nothing-here")


def test_the_emoji_models_ship_with_the_package():
    assert {"emoji32-ylg", "emoji32-sagan"} <= set(PRETRAINED)


def test_generate_pretrained_works_without_training(tmp_path):
    from ylg.cli import main

    out = tmp_path / "gen"
    argv = ["generate", "--pretrained", "emoji32-ylg", "--n", "4", "--out", str(out)]
    assert main(argv + ["--device", "cpu", "--threads", "1"]) == 0
    assert len(list(out.glob("*.png"))) == 4


def test_attention_and_invert_take_pretrained(tmp_path):
    from PIL import Image

    from ylg.cli import main

    assert main(["attention", "--pretrained", "emoji32-ylg", "--seed", "0", "--out",
                 str(tmp_path / "att"), "--device", "cpu", "--threads", "1"]) == 0  # fmt: skip
    assert list((tmp_path / "att").glob("*.png"))
    img = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(img)
    assert main(["invert", str(img), "--pretrained", "emoji32-ylg", "--out", str(tmp_path / "inv"),
                 "--steps", "2", "--restarts", "1", "--class", "8", "--method", "pixel",
                 "--device", "cpu", "--threads", "1", "--no-progress"]) == 0  # fmt: skip
    assert (tmp_path / "inv" / "summary.json").is_file()
