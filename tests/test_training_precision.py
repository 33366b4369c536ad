"""Training precision: what auto picks, what stays fp32, and bf16 runs against fp32 runs."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from ylg.runtime import machine
from ylg.runtime.spectral_norm import spectral_norm
from ylg.training import precision as prec
from ylg.training.config import TrainConfig, resolve


def test_resolve_precision(monkeypatch):
    assert prec.resolve_precision("fp32", "cpu") == "fp32"
    assert prec.resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: True)
    assert prec.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: False)
    assert prec.resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision='fp16' is not one of fp32, bf16, auto"):
        prec.resolve_precision("fp16", "cpu")
    assert prec.autocast_factory("fp32", "cpu") is None
    with prec.autocast_factory("bf16", "cpu")():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


def test_machine_record_names_the_cpu_and_its_bf16_flags():
    rec = machine.machine_record(dtype="bf16")
    assert rec["dtype"] == "bf16" and rec["torch"] == torch.__version__
    assert set(rec["cpu_flags"]) == set(machine.BF16_FLAGS)
    assert rec["cpu_native_bf16"] == (
        rec["cpu_flags"]["amx_bf16"] or rec["cpu_flags"]["avx512_bf16"]
    )
    assert isinstance(rec["cpu_model"], str) and rec["cpu_model"]
    assert len(rec["run_id"]) == 12 and rec["run_id"] != machine.machine_record()["run_id"]


def test_config_precision_field_and_the_old_amp_flag():
    assert resolve("demo").precision == "fp32"  # the demo was tuned in fp32
    assert resolve("cifar32").precision == "auto"
    with pytest.raises(ValueError, match="precision='half'"):
        resolve("demo", {"precision": "half"})
    old = {**resolve("cifar32").to_dict(), "amp": False}
    del old["precision"]
    assert TrainConfig.from_dict(old).precision == "fp32"
    old["amp"] = True
    assert TrainConfig.from_dict(old).precision == "auto"


@pytest.mark.parametrize("kind", ["conv", "linear", "embedding"])
def test_spectral_norm_is_pytorchs_outside_autocast_and_fp32_inside(kind):
    make = {
        "conv": lambda: torch.nn.Conv2d(4, 6, 3),
        "linear": lambda: torch.nn.Linear(5, 7),
        "embedding": lambda: torch.nn.Embedding(9, 4),
    }[kind]
    torch.manual_seed(0)
    ours = spectral_norm(make())
    torch.manual_seed(0)
    theirs = torch_spectral_norm(make())
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for _ in range(3):  # training-mode forwards: power iterations
        assert torch.equal(ours.weight, theirs.weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = ours.weight
        _ = theirs.weight  # the same power iteration on both
    assert w.dtype == torch.float32
    ours.eval()
    theirs.eval()
    assert torch.equal(ours.weight, theirs.weight)
