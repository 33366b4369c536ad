"""`ylg patterns`: figures written, report printed, user errors as one line."""

from __future__ import annotations

from ylg.cli import main
from ylg.runtime.threads import without_thread_line


def test_patterns_command_writes_figures_and_report(tmp_path, capsys):
    rc = main(
        [
            "patterns",
            "--n",
            "6",
            "--grid",
            "4x4",
            "--pattern",
            "ltr",
            "fixed",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "enumeration_esa_4x4.png",
        "fixed_1d_n6.png",
        "fixed_grid_4x4.png",
        "fixed_grid_4x4_queries.png",
        "fixed_ifg_n6.png",
        "ltr_1d_n6.png",
        "ltr_grid_4x4.png",
        "ltr_grid_4x4_queries.png",
        "ltr_ifg_n6.png",
    ]
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)
    lines = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    # ltr, n=6, stride 2: 9 local + 21 summary/self positions; full information, pair flow 1.
    assert lines["ltr"].split()[1:5] == ["6", "30", "0.417", "yes"]
    assert lines["ltr"].split()[-1] == "1"
    assert "no (input 0 -/-> output 0)" in lines["fixed"]


def test_patterns_user_errors_are_one_line(tmp_path, capsys):
    assert main(["patterns", "--pattern", "diagonal", "--out", str(tmp_path)]) == 2
    err = without_thread_line(capsys.readouterr().err).strip().splitlines()
    assert len(err) == 1 and "diagonal" in err[0] and "ltr" in err[0]
    assert main(["patterns", "--stride", "99", "--out", str(tmp_path)]) == 2
    assert "stride=99" in capsys.readouterr().err
