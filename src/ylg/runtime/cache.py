"""The one cache folder of ylg: downloads, converted weights, statistics, classifiers.

``$YLG_CACHE`` if set, else ``$XDG_CACHE_HOME/ylg``, else ``~/.cache/ylg``. Each user of the
cache takes a subfolder: ``npm/`` and ``cifar10/`` (data sources), ``stats/`` (reference
statistics), ``inception/`` (converted weights), ``gan-test/`` (classifiers). The Inception
download itself goes to torch hub's folder (``ylg.metrics.weights``), where other FID tools
find it too.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "cache_dir"]

#: the environment variable that moves the cache
ENV = "YLG_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache root (see the module docstring), or ``root/part/...``; not created."""
    root = os.environ.get(ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ylg"
    return base.joinpath(*parts)
