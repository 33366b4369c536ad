"""Shared test settings.

- Every test runs with one intra-op thread: pytest-xdist runs two workers on the two cores of
  our machines, and two threads each thrash (measured 10x slower); results do not depend on it.
  ``OMP_NUM_THREADS=1`` does the same for the commands run through ``ylg.cli.main``.
- Tests marked ``gpu`` are skipped cleanly when CUDA is not available.
- Matplotlib never opens a window.
"""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    # `ylg` commands run through main() choose their threads (ylg.runtime.threads): OMP_NUM_THREADS
    # keeps them at one too.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu); none available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
