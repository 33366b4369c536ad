"""Dataset sources for ``ylg data``: one file per source, each returning a
:class:`~ylg.data.items.Source` (lazy :class:`~ylg.data.items.Item` s plus names).

- :mod:`~ylg.data.sources.folder`: an image folder (class subfolders = labels, or flat);
- :mod:`~ylg.data.sources.cifar10`: the official CIFAR-10 python tarball;
- :mod:`~ylg.data.sources.celeba`: CelebA's ``img_align_celeba`` folder or zip;
- :mod:`~ylg.data.sources.emoji`: the built-in real dataset (four emoji styles, 9 classes).

Downloads (CIFAR-10, the emoji npm tarballs) are kept in :func:`default_cache_dir`.
"""

from __future__ import annotations

from pathlib import Path

from ylg.runtime.cache import cache_dir

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """The cache folder (:func:`ylg.runtime.cache.cache_dir`): ``$YLG_CACHE``, else
    ``$XDG_CACHE_HOME/ylg``, else ``~/.cache/ylg``."""
    return cache_dir()
