"""Shared test settings.

- Under pytest-xdist every worker gets one intra-op thread: two workers with two threads each
  on a 2-core machine thrash (measured 10x slower), and results do not depend on it.
- Tests marked ``gpu`` are skipped cleanly when CUDA is not available.
- Matplotlib never opens a window.
"""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu); none available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
