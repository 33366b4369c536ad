"""`ylg --help`, `ylg --version`, `ylg train --help`: the values presets give, the choices of
options that take names, and help texts that exist."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from importlib import metadata

import pytest

from ylg.cli import build_parser, main
from ylg.runtime.threads import without_thread_line
from ylg.training.config import PRESETS, TrainConfig, resolve


def _subparsers(parser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _action(p: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in p._actions if flag in a.option_strings)


def _help(p: argparse.ArgumentParser, flag: str) -> str:
    """The help of ``flag`` as shown (``%(choices)s`` expanded), on one line."""
    return " ".join(argparse.HelpFormatter(p.prog)._expand_help(_action(p, flag)).split())


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_version(capsys):
    assert main(["--version"]) == 0
    try:
        want = metadata.version("ylg")
    except metadata.PackageNotFoundError:
        import ylg

        want = ylg.__version__
    assert capsys.readouterr().out.strip() == f"ylg {want}"


def test_train_help_shows_every_presets_value():
    train = _subparsers(build_parser())["train"]
    fields = dataclasses.fields(TrainConfig)
    resolved = {name: resolve(name) for name in PRESETS}  # the values a run really gets
    overridden = 0
    for f in fields:
        text = _help(train, "--" + f.name.replace("_", "-"))
        values = {name: getattr(cfg, f.name) for name, cfg in resolved.items()}
        if len(set(map(repr, values.values()))) == 1 and values["demo"] == f.default:
            assert f"(default: {_shown(f.default)})" in text, text
        else:
            overridden += 1
            shown = text[text.index("(preset: ") :]
            for name, value in values.items():
                assert f"{name} {_shown(value)}" in shown, (f.name, shown)
            assert shown.startswith("(preset: demo ")  # the default preset first
    assert overridden >= 10
    g_width = _help(train, "--g-width")
    assert f"demo {PRESETS['demo']['g_width']}," in g_width and "(default: 64)" not in g_width


def test_options_that_take_names_list_them():
    from ylg.cli.inversion import METHOD_NAMES
    from ylg.models.variants import VARIANTS
    from ylg.patterns import CURVES, PATTERNS

    subs = _subparsers(build_parser())
    variants = sorted(VARIANTS)
    expected = {
        ("train", "--attention"): variants,
        ("demo", "--attention"): variants,
        ("ablate", "--attention"): variants,
        ("ablate", "--variants"): variants,
        ("patterns", "--pattern"): list(PATTERNS),
        ("patterns", "--curve"): list(CURVES),
        ("invert", "--method"): list(METHOD_NAMES),
        ("train", "--preset"): list(PRESETS),
    }
    for (command, flag), names in expected.items():
        p = subs[command]
        assert list(_action(p, flag).choices) == names, (command, flag)
        if flag != "--method":  # its help explains the methods instead
            assert ", ".join(names) in _help(p, flag), (command, flag)


@pytest.mark.parametrize(("argv", "bad", "valid"),
                         [(["train", "--attention", "ylgg"], "ylgg", "'ylg-strided'"),
                          (["patterns", "--curve", "zigzag"], "zigzag", "'hilbert'"),
                          (["demo", "--attention", "nope"], "nope", "'sagan8'")])  # fmt: skip
def test_a_bad_name_is_one_line_with_the_valid_ones(tmp_path, capsys, argv, bad, valid):
    assert main([*argv, "--out", str(tmp_path / "never")]) == 2
    err = without_thread_line(capsys.readouterr().err).strip()
    assert "\n" not in err and f"invalid choice: {bad!r}" in err
    assert "(choose from " in err and valid in err
    assert not (tmp_path / "never").exists()
    assert err.startswith(f"ylg {argv[0]}: error: ") and err.endswith(f"(see ylg {argv[0]} --help)")


def test_help_texts_exist_for_every_option():
    for name, p in _subparsers(build_parser()).items():
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (name, action.option_strings or action.dest)
    generate = _subparsers(build_parser())["generate"]
    assert "seed" in _help(generate, "--seed") and "cpu" in _help(generate, "--device")
    from ylg.generate import GIF_MIN_WIDTH

    assert f"at least {GIF_MIN_WIDTH} px" in _help(generate, "--gif-scale")


def test_every_command_has_threads_and_help_still_needs_no_torch():
    parser = build_parser()
    leaves = []
    for name, p in _subparsers(parser).items():
        kids = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += [(f"{name} {k}", c) for a in kids for k, c in a.choices.items()] or [(name, p)]
    assert len(leaves) >= 12
    for name, p in leaves:
        assert "--threads" in {s for a in p._actions for s in a.option_strings}, name
    code = "import sys; from ylg.cli import build_parser; build_parser(); "
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
