"""User errors on the command line: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import argparse

import pytest
import torch

from ylg.cli import build_parser, main
from ylg.runtime.threads import without_thread_line


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _minimal_argv(name: str, p: argparse.ArgumentParser, out: str) -> list[str]:
    """``name`` plus a value for every required argument, and ``--out out``."""
    argv = [name]
    for group in p._mutually_exclusive_groups:
        if group.required:
            action = group._group_actions[0]
            argv += [action.option_strings[0], "1"]
    for action in p._actions:
        if not action.required or "--out" in action.option_strings:
            continue
        value = str(action.choices[0]) if action.choices else "1"
        argv += ([action.option_strings[0]] if action.option_strings else []) + [value]
    return argv + ["--out", out]


def _one_line_error(capsys, *needles: str) -> str:
    err = without_thread_line(capsys.readouterr().err).strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_every_subcommand_with_out_rejects_an_existing_file(tmp_path, capsys):
    file = tmp_path / "taken.txt"
    file.write_text("x")
    with_out = {
        name: p
        for name, p in _subcommands().items()
        if any("--out" in a.option_strings for a in p._actions)
        and not p.get_default("out_is_file")  # stats / eval write a file: checked below
    }
    assert {"train", "generate", "demo", "patterns"} <= set(with_out)
    for name, p in with_out.items():
        argv = _minimal_argv(name, p, str(file))
        assert main(argv) == 2, argv
        _one_line_error(capsys, str(file), "folder")
        assert file.read_text() == "x"  # untouched


def test_file_outputs_are_not_called_folders(tmp_path, capsys):
    """`ylg data` / `stats` / `eval` write a file: an existing one is theirs to judge, and the
    folder rule must not fire (it once told `ylg data` users to give a folder)."""
    file = tmp_path / "taken.npz"
    file.write_text("x")
    src = tmp_path / "imgs"
    src.mkdir()
    assert main(["data", "folder", str(src), "--resolution", "8", "--out", str(file)]) == 2
    err = _one_line_error(capsys)
    assert "folder (new or existing)" not in err
    assert file.read_text() == "x"
    names = {n for n, p in _subcommands().items() if p.get_default("out_is_file")}
    assert names == {"stats", "eval"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
@pytest.mark.parametrize("device", ["cuda", "gpu", "cuda:1"], ids=["plain", "alias", "index"])
def test_accelerator_device_on_a_cpu_only_torch_is_one_line(tmp_path, capsys, device):
    assert main(["generate", str(tmp_path), "--out", str(tmp_path / "o"), "--device", device]) == 2
    _one_line_error(capsys, device, "cpu")
    assert main(["train", "--out", str(tmp_path / "r"), "--device", device]) == 2
    _one_line_error(capsys, device, "cpu")


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_resume_without_a_checkpoint_names_the_folder(tmp_path, capsys, make):
    run = tmp_path / "typo-run"
    if make == "empty":
        run.mkdir()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 2
    _one_line_error(capsys, str(run), "--resume")
    assert not (run / "latest.pt").exists()


def test_negative_truncation_is_rejected(tmp_path, capsys):
    argv = ["generate", str(tmp_path), "--out", str(tmp_path / "o"), "--truncation", "-1"]
    assert main(argv) == 2
    _one_line_error(capsys, "--truncation -1")
    assert not (tmp_path / "o").exists()


def _leaf_commands() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command: ``train``, ..., and ``data folder``, ``data cifar10``, ..."""
    out = {}
    for name, p in _subcommands().items():
        kids = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in kids:
            out.update({f"{name} {k}": c for k, c in action.choices.items()})
        if not kids:
            out[name] = p
    return out


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_every_command_rejects_a_bad_thread_count_naming_it(tmp_path, capsys, bad):
    leaves = _leaf_commands()
    assert {"train", "generate", "demo", "data folder", "eval", "invert"} <= set(leaves)
    for name, p in leaves.items():
        words = name.split()
        argv = words[:-1] + _minimal_argv(words[-1], p, str(tmp_path / "new"))
        argv += [f"--threads={bad}"]
        assert main(argv) == 2, argv
        _one_line_error(capsys, f"--threads {bad!r} is not a positive integer")
        assert not (tmp_path / "new").exists()


def test_resume_from_a_missing_or_foreign_file_names_it(tmp_path, capsys):
    missing = tmp_path / "run" / "ckpt-0000100.pt"
    assert main(["train", "--resume", str(missing), "--no-progress"]) == 2
    _one_line_error(capsys, f"--resume {missing}: no such checkpoint file")
    not_ckpt = tmp_path / "notes.pt"
    not_ckpt.write_text("hello")
    assert main(["train", "--resume", str(not_ckpt), "--no-progress"]) == 2
    _one_line_error(capsys, f"{not_ckpt} is not a readable ylg checkpoint")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    assert main(["train", "--resume", str(tmp_path / "other.pt"), "--no-progress"]) == 2
    _one_line_error(capsys, f"{tmp_path / 'other.pt'} is not a ylg training checkpoint")
    assert main(["train", "--resume", "--no-progress"]) == 2
    _one_line_error(capsys, "--resume needs --out")
    assert not (tmp_path / "run").exists()


def test_generate_rejects_a_bad_n_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--pretrained", "emoji32-ylg", "--n", "-1", "--out", str(out)]) == 2
    assert "n=-1 must be an integer >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_an_unknown_pretrained_name_is_called_a_model_name(tmp_path, capsys):
    assert main(["generate", "--pretrained", "nosuch", "--out", str(tmp_path / "g")]) == 2
    err = without_thread_line(capsys.readouterr().err)
    assert "--pretrained 'nosuch' is not a shipped model or a model folder" in err
    assert "run directory" not in err


def test_a_truncated_pretrained_json_names_the_file(tmp_path):
    import shutil

    from ylg.models.pretrained import WEIGHTS_DIR, load_pretrained

    shutil.copytree(WEIGHTS_DIR / "emoji32-ylg", tmp_path / "emoji32-ylg")
    meta = tmp_path / "emoji32-ylg" / "model.json"
    meta.write_text(meta.read_text()[:50])
    with pytest.raises(ValueError, match=r"emoji32-ylg/model.json is not valid JSON"):
        load_pretrained("emoji32-ylg", folder=tmp_path)


def test_train_on_a_malformed_zip_is_one_line_and_leaves_no_config(tmp_path, capsys):
    import json
    import zipfile

    data = tmp_path / "bad.zip"
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("dataset.json", json.dumps({"labels": 5}))
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(run), "--steps", "1",
                 "--workers", "0", "--no-progress"])  # fmt: skip
    assert code == 2
    err = without_thread_line(capsys.readouterr().err).strip().splitlines()
    assert len(err) == 1 and "bad.zip' is malformed" in err[0]
    assert not (run / "config.json").exists()
