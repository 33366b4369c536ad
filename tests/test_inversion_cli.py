"""`ylg invert` and `ylg attention` end to end on a tiny checkpoint: every promised file,
and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ylg.cli import main
from ylg.runtime.threads import without_thread_line
from ylg.training.config import resolve


def tiny_config(attention: str):
    return resolve(
        "demo",
        dict(attention=attention, g_width=2, d_width=2, z_dim=16, batch_size=4, steps=1,
             log_every=1, sample_every=1000, checkpoint_every=1000, workers=0),
    )  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real one-step training run (1-head dense attention, 10 classes)."""
    from ylg.training.loop import train

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    train(tiny_config("sagan"), out, progress=False)
    torch.set_num_threads(old)
    return out


@pytest.fixture(scope="module")
def no_attention_ckpt(tmp_path_factory):
    """A checkpoint of models without attention, in the trainer's format."""
    from ylg.models.loading import build_models
    from ylg.runtime.checkpoint import FORMAT
    from ylg.runtime.files import atomic_torch_save

    config = tiny_config("none")
    G, D = build_models(config, 10)
    path = tmp_path_factory.mktemp("none") / "latest.pt"
    ckpt = {"format": FORMAT, "step": 0, "config": config.to_dict(), "num_classes": 10,
            "G": G.state_dict(), "D": D.state_dict(), "G_ema": None}  # fmt: skip
    atomic_torch_save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A grayscale, an RGBA and a palette image of odd sizes, and a corrupt file."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 40), dtype=np.uint8), "L").save(folder / "g.png")
    rgba = rng.integers(0, 255, (30, 36, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "a.png")
    rgb = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), "RGB")
    rgb.convert("P").save(folder / "p.gif")
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return folder


INVERT_FILES = {"comparison.png", "latent.pt", "losses.png", "reconstruction.png", "result.json"}


def test_invert_writes_every_promised_file(run_dir, images, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(images / "g.png"), str(images / "a.png"), str(images / "p.gif"),
            "--checkpoint", str(run_dir), "--out", str(out), "--steps", "4", "--restarts", "2",
            "--class", "3", "--no-progress"]  # fmt: skip
    assert main(["invert", *args]) == 0
    for stem in ("g", "a", "p"):
        files = {p.name for p in (out / stem).iterdir()}
        assert files == INVERT_FILES | {"target.png", "attention.png"}
        result = json.loads((out / stem / "result.json").read_text())
        assert (
            result["label"] == 3 and result["label_given"] and result["method"] == "saliency-heads"
        )
        assert 0 < result["psnr"] < 100 and -1 <= result["ssim"] <= 1
        latent = torch.load(out / stem / "latent.pt")
        assert latent["z"].shape == (16,) and latent["label"] == 3
        with Image.open(out / stem / "target.png") as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    summary = json.loads((out / "summary.json").read_text())
    assert [r["image"] for r in summary] == [str(images / n) for n in ("g.png", "a.png", "p.gif")]
    assert "PSNR" in capsys.readouterr().out


def test_invert_psnr_in_json_is_that_of_the_saved_latent(run_dir, images, tmp_path):
    from ylg.data import load_image
    from ylg.inversion import psnr
    from ylg.models.loading import load_for_inference

    out = tmp_path / "out"
    assert main(["invert", str(images / "g.png"), "--checkpoint", str(run_dir), "--out",
                 str(out), "--steps", "3", "--restarts", "1", "--method", "pixel",
                 "--no-progress"]) == 0  # fmt: skip
    result = json.loads((out / "g" / "result.json").read_text())
    assert result["label_given"] is False and 0 <= result["label"] < 10  # searched
    latent = torch.load(out / "g" / "latent.pt")
    G = load_for_inference(run_dir).G
    with torch.no_grad():
        recon = G(latent["z"][None], torch.tensor([latent["label"]]))[0]
    target = load_image(images / "g.png", 32)
    assert psnr(target, recon) == pytest.approx(result["psnr"], abs=1e-3)


def test_invert_on_cpu_says_its_defaults_and_estimates_the_run_time(run_dir, images, tmp_path,
                                                                    capsys):  # fmt: skip
    out = tmp_path / "est"
    assert main(["invert", str(images / "g.png"), "--checkpoint", str(run_dir), "--out",
                 str(out), "--steps", "12", "--restarts", "1", "--class", "1", "--method",
                 "features", "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "[features] estimated run time:" in err and "running on the CPU" not in err
    result = json.loads((out / "g" / "result.json").read_text())
    assert (result["steps"], result["restarts"], result["lr"]) == (12, 1, 0.05)
    assert result["lookahead"] is True and result["method"] == "features"
    # 'original' needs the RTL heads; this checkpoint's D has one dense head: a one-line error
    err = _error(capsys, ["invert", str(images / "g.png"), "--checkpoint", str(run_dir),
                          "--out", str(out), "--steps", "2", "--method", "original",
                          "--class", "1", "--no-progress"])  # fmt: skip
    assert "method 'original' uses the RTL heads" in err
    # Without --steps on the CPU: the CPU default, said before the run.
    from ylg.cli import inversion as cli

    assert cli.CPU_STEPS < 1000
    parser_args = ["invert", str(images / "g.png"), "--checkpoint", str(run_dir), "--out",
                   str(out / "2"), "--restarts", "1", "--class", "1", "--method", "pixel",
                   "--no-progress", "--device", "cpu", "--no-lookahead"]  # fmt: skip
    old = cli.CPU_STEPS
    cli.CPU_STEPS = 3  # keep the test fast; the message names the value used
    try:
        assert main(parser_args) == 0
    finally:
        cli.CPU_STEPS = old
    err = capsys.readouterr().err
    assert "running on the CPU: 3 steps per method" in err
    result = json.loads((out / "2" / "g" / "result.json").read_text())
    assert result["steps"] == 3 and result["lookahead"] is False


def test_invert_compare_writes_one_sheet_and_a_folder_per_method(run_dir, images, tmp_path):
    out = tmp_path / "cmp"
    assert main(["invert", str(images / "g.png"), str(images / "a.png"), "--checkpoint",
                 str(run_dir), "--out", str(out), "--steps", "2", "--restarts", "1",
                 "--class", "0", "--compare", "pixel", "saliency-heads",
                 "--no-progress"]) == 0  # fmt: skip
    with Image.open(out / "comparison.png") as im:
        assert im.size[0] > im.size[1]  # 3 columns, 2 rows
    for stem in ("g", "a"):
        assert (out / stem / "target.png").is_file()
        for method in ("pixel", "saliency-heads"):
            assert {p.name for p in (out / stem / method).iterdir()} == INVERT_FILES
    summary = json.loads((out / "summary.json").read_text())
    assert sorted({r["method"] for r in summary}) == ["pixel", "saliency-heads"]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = without_thread_line(capsys.readouterr().err).strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_invert_bad_inputs_are_one_line_errors(
    run_dir, images, no_attention_ckpt, tmp_path, capsys
):
    base = ["--out", str(tmp_path / "x"), "--steps", "1", "--restarts", "1", "--no-progress"]
    err = _error(capsys, ["invert", str(images / "bad.jpg"), "--checkpoint", str(run_dir), *base])
    assert "cannot read image" in err and "bad.jpg" in err
    err = _error(capsys, ["invert", str(images / "nope.png"), "--checkpoint", str(run_dir), *base])
    assert "nope.png" in err and "does not exist" in err
    err = _error(capsys, ["invert", str(images / "g.png"), "--checkpoint", str(run_dir),
                          "--class", "10", *base])  # fmt: skip
    assert "class 10 is out of range" in err and "0..9" in err
    err = _error(capsys, ["invert", str(images / "g.png"), "--checkpoint",
                          str(no_attention_ckpt), *base])  # fmt: skip
    assert "'saliency-heads' needs the discriminator's attention" in err and "'none'" in err
    err = _error(capsys, ["invert", str(images / "g.png"), "--checkpoint",
                          str(tmp_path / "missing"), *base])  # fmt: skip
    assert "missing" in err and "does not exist" in err
    # The non-saliency methods work without attention.
    assert main(["invert", str(images / "g.png"), "--checkpoint", str(no_attention_ckpt),
                 "--method", "features", *base]) == 0  # fmt: skip


def test_attention_from_a_seed_draws_g_and_d(run_dir, tmp_path, capsys):
    out = tmp_path / "att"
    assert main(["attention", str(run_dir), "--seed", "3", "--query", "16,16", "0,31",
                 "--out", str(out)]) == 0  # fmt: skip
    names = {p.name for p in out.iterdir()}
    expected = {f"{n}_{kind}.png" for n in "gd" for kind in ("saliency", "queries", "masks")}
    assert expected | {"image.png", "attention.json"} == names
    info = json.loads((out / "attention.json").read_text())
    assert info["source"] == "generated" and info["seed"] == 3 and 0 <= info["label"] < 10
    assert info["g"]["query_grid"] == [16, 16] and info["g"]["key_grid"] == [8, 8]
    assert info["d"]["query_cells"] == [[8, 8], [0, 15]]
    assert info["g"]["heads"] == 1
    assert info["d"]["normalization"] == "relative" and len(info["d"]["head_names"]) == 1


def test_attention_from_an_image_draws_d_and_notes_g(run_dir, images, tmp_path, capsys):
    out = tmp_path / "img"
    assert main(["attention", str(run_dir), "--image", str(images / "a.png"), "--out",
                 str(out)]) == 0  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert {"d_saliency.png", "d_queries.png", "d_masks.png", "image.png"} <= names
    assert not any(n.startswith("g_") for n in names)
    assert "invert_steps" in json.loads((out / "attention.json").read_text())["g"]
    out2 = tmp_path / "img2"
    assert main(["attention", str(run_dir), "--image", str(images / "a.png"), "--invert-steps",
                 "2", "--class", "1", "--out", str(out2)]) == 0  # fmt: skip
    assert {"g_saliency.png", "reconstruction.png"} <= {p.name for p in out2.iterdir()}


def test_attention_bad_inputs(run_dir, images, no_attention_ckpt, tmp_path, capsys):
    out = ["--out", str(tmp_path / "e")]
    err = _error(capsys, ["attention", str(run_dir), "--seed", "0", "--query", "40,1", *out])
    assert "query point (40, 1) is outside the 32x32 image" in err
    err = _error(capsys, ["attention", str(no_attention_ckpt), "--seed", "0", *out])
    assert "no attention layer" in err
    err = _error(capsys, ["attention", str(run_dir), "--seed", "0", "--class", "-1", *out])
    assert "class -1 is out of range" in err
    err = _error(capsys, ["attention", str(run_dir), "--image", str(images / "bad.jpg"), *out])
    assert "bad.jpg" in err
    err = _error(capsys, ["attention", str(run_dir), "--seed", "0", "--query", "3x4", *out])
    assert "'3x4' is not ROW,COL" in err  # argparse's error, one line too
