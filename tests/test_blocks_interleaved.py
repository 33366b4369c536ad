"""benchmarks/blocks_interleaved.py: its ratios are formed from one run's medians, and a tiny
run with huge pages off and on writes one row per case with its calls and page faults."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "blocks_interleaved.py"


@pytest.fixture(scope="module")
def bench():
    """The script as a module (``benchmarks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("benchmarks_blocks_interleaved", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(method, dtype, extra, thp, ms):
    return {"grid": "8x8", "method": method, "dtype": dtype, "extra_tokens": extra, "thp": thp,
            "ms": ms}  # fmt: skip


def test_ratios_pair_cases_of_the_same_setting(bench):
    rows = [
        _row("sdpa", "fp32", 0, False, 100.0),
        _row("blocks", "fp32", 0, False, 10.0),
        _row("blocks", "fp32", 1, False, 12.0),
        _row("blocks", "bf16", 0, False, 5.0),
        _row("sdpa", "fp32", 0, True, 90.0),
        _row("blocks", "fp32", 0, True, 8.0),
    ]
    got = {(r["dtype"], r["extra_tokens"], r["thp"]): r for r in bench.ratios(rows)}
    assert got["fp32", 0, False]["sdpa_over_blocks"] == pytest.approx(10.0)
    # a global-token row divides by SDPA without it, of the same THP setting
    assert got["fp32", 1, False]["sdpa_over_blocks"] == pytest.approx(100 / 12)
    assert got["fp32", 1, False]["global_token_cost"] == pytest.approx(0.2)
    assert got["bf16", 0, False]["blocks_fp32_over_this"] == pytest.approx(2.0)
    assert got["fp32", 0, True]["sdpa_over_blocks"] == pytest.approx(90 / 8)
    assert got["fp32", 0, True]["blocks_thp_speedup"] == pytest.approx(10 / 8)
    assert got["fp32", 0, False]["blocks_thp_speedup"] is None


def test_tiny_run_with_huge_pages_off_and_on(tmp_path):
    # as a script: the case processes are spawned, and import the worker from __main__
    out = tmp_path / "r.json"
    args = ["--grids", "8x8", "--methods", "blocks", "--dtypes", "fp32", "--extra-tokens", "0",
            "--thp", "both", "--reps", "3", "--warmup", "1", "--json", str(out)]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    subprocess.run([sys.executable, str(SCRIPT), *args], check=True, env=env, timeout=300)
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert sorted(r["thp"] for r in rows) == [False, True]
    for r in rows:
        assert len(r["calls_ms"]) == 3 and r["minor_faults_per_call"] >= 0
        assert r["ms"] == pytest.approx(statistics.median(r["calls_ms"]), abs=0.006)  # rounded
    (on,) = [r for r in result["ratios"] if r["thp"]]
    off_ms, on_ms = (next(r["ms"] for r in rows if r["thp"] is t) for t in (False, True))
    assert on["blocks_thp_speedup"] == pytest.approx(off_ms / on_ms)
    assert result["machine"]["threads"] == 1
