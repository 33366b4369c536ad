"""What machine this is: the CPU's model and bf16 flags, for benchmark records and precision.

CPUs differ in what bf16 costs: with AMX-BF16 (Sapphire Rapids and later) or AVX512-BF16
(Cooper Lake, Zen 4) oneDNN runs bf16 matmuls and convolutions natively; without them bf16
is emulated and slower than fp32. Every benchmark JSON records :func:`machine_record` so that
a reader knows which kind of CPU a number comes from.

    from ylg.runtime.machine import cpu_has_native_bf16, machine_record
    cpu_has_native_bf16()        # True on a CPU with AMX-BF16 or AVX512-BF16
    machine_record(threads=1, dtype="bf16")
"""

from __future__ import annotations

import functools
import os
import platform
import uuid
from pathlib import Path

import torch

__all__ = ["BF16_FLAGS", "cpu_flags", "cpu_has_native_bf16", "cpu_model", "machine_record"]

#: the /proc/cpuinfo flags that say how a CPU does bf16 (recorded with every benchmark)
BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as a dict ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown"


def cpu_flags() -> dict[str, bool]:
    """Which of :data:`BF16_FLAGS` the CPU has. Read from /proc/cpuinfo, else from torch's
    own CPU probes (macOS, Windows)."""
    info = _cpuinfo()
    if "flags" in info:
        flags = set(info["flags"].split())
        return {f: f in flags for f in BF16_FLAGS}
    probes = {
        "amx_bf16": "_is_amx_tile_supported",
        "amx_tile": "_is_amx_tile_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512f": "_is_avx512_supported",
        "avx2": "_is_avx2_supported",
    }
    return {f: bool(getattr(torch.cpu, p, lambda: False)()) for f, p in probes.items()}


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AMX-BF16 or AVX512-BF16)."""
    flags = cpu_flags()
    return flags["amx_bf16"] or flags["avx512_bf16"]


def machine_record(**extra) -> dict:
    """What a benchmark JSON records about where it ran: CPU model and bf16 flags, cores,
    torch version, torch threads, a fresh run id (ratios are formed only within one run id),
    the GPU's name when CUDA is present, plus ``extra`` (dtype, threads, ...)."""
    record = {
        "run_id": uuid.uuid4().hex[:12],
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    record.update(extra)
    return record
