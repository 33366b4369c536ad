"""The built-in real dataset: emoji artwork in four styles, labelled by emoji category.

Four sets of emoji drawn by people, fetched from the npm registry with ``npm pack`` (the
tarballs are checked against their SHA-256 and kept in a cache folder; nothing else is
downloaded):

========  ======================================  ============  =================
style     npm package                             native size   licence
========  ======================================  ============  =================
twemoji   ``emoji-datasource-twitter@16.0.0``     64 px PNG     CC BY 4.0
noto      ``emoji-datasource-google@16.0.0``      64 px PNG     Apache-2.0
fluent    ``@lobehub/fluent-emoji-3d@1.1.0``      256 px WebP   MIT
openmoji  ``openmoji@17.0.0``                     SVG (vector)  CC BY-SA 4.0
========  ======================================  ============  =================

Labels are the emoji categories of ``emoji.json`` (from emoji-datasource), in its order:
:data:`CATEGORIES` (9 classes; "Component", the bare skin-tone and hair swatches, is
dropped). Every image of every style is matched to ``emoji.json`` by its code points
(lower-cased, leading zeros and ``FE0F`` variation selectors ignored, ``_`` read as ``-``),
so the same emoji has the same label in every style. Images that match no emoji (OpenMoji's
``extras-openmoji`` / ``extras-unicode``) are skipped and counted. Fluent's flags are dropped
(their origin is not documented). Skin-tone variants are dropped unless ``skin_tones=True``
(they would make "People & Body" dominate). Duplicate images of one emoji in one style
(Fluent ships 16 twice, e.g. ``0023-fe0f-20e3`` and ``23-fe0f-20e3``) are written once.

Transparent backgrounds are composited on white. PNG / WebP are centre-cropped (they are
square) and resized with Lanczos; OpenMoji's SVGs are rendered with ``resvg`` directly at the
target size (``pip install ylg[emoji]``, i.e. ``resvg-py``). At a resolution above a style's
native size that style is refused (no upscaling): at 128 px only ``fluent`` and ``openmoji``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ylg.data.items import Item, SkipItem, Source
from ylg.data.sources import default_cache_dir
from ylg.runtime.files import file_digest

__all__ = [
    "CATEGORIES",
    "PACKAGES",
    "STYLES",
    "default_cache_dir",
    "emoji_source",
    "fetch_package",
]

#: The class names, index = label (emoji-datasource's category order without "Component").
CATEGORIES = (
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
)

#: The styles, index = style id.
STYLES = ("twemoji", "noto", "fluent", "openmoji")


@dataclass(frozen=True)
class Package:
    """One npm package: where its images are, how big, under which licence."""

    name: str
    version: str
    sha256: str
    image_dir: str  # inside the tarball, below "package/"
    suffix: str
    native_size: int | None  # None: vector
    licence: str
    credit: str
    licence_file: str | None  # inside the tarball; None: the package ships none


PACKAGES: dict[str, Package] = {
    "twemoji": Package(
        "emoji-datasource-twitter",
        "16.0.0",
        "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
        "img/twitter/64/",
        ".png",
        64,
        "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
        "Twemoji graphics, Copyright Twitter, Inc. and other contributors "
        "(https://github.com/jdecked/twemoji), licensed under CC BY 4.0; images as packaged "
        "by emoji-datasource (https://github.com/iamcal/emoji-data, MIT).",
        "package/LICENSE",
    ),
    "noto": Package(
        "emoji-datasource-google",
        "16.0.0",
        "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
        "img/google/64/",
        ".png",
        64,
        "Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0)",
        "Noto Emoji graphics, Copyright Google Inc. (https://github.com/googlefonts/noto-emoji), "
        "licensed under the Apache License 2.0; images as packaged by emoji-datasource "
        "(https://github.com/iamcal/emoji-data, MIT).",
        "package/LICENSE",
    ),
    "fluent": Package(
        "@lobehub/fluent-emoji-3d",
        "1.1.0",
        "c1bb7eee7de090205a232518a9ab4adb3df458bfbe8a1f78232991194c8b2e58",
        "assets/",
        ".webp",
        256,
        "MIT (package @lobehub/fluent-emoji-3d)",
        "Fluent Emoji 3D graphics, Copyright Microsoft Corporation "
        "(https://github.com/microsoft/fluentui-emoji, MIT), as packaged by LobeHub "
        "(https://github.com/lobehub/fluent-emoji, MIT). Flags are not used.",
        None,
    ),
    "openmoji": Package(
        "openmoji",
        "17.0.0",
        "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68",
        "color/svg/",
        ".svg",
        None,
        "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)",
        "OpenMoji, the open-source emoji and icon project (https://openmoji.org), "
        "licensed under CC BY-SA 4.0. The rendered images are adaptations (rasterised, "
        "composited on white, resized) and are shared under the same licence.",
        "package/LICENSE.txt",
    ),
}

_METADATA = "package/emoji.json"  # inside either emoji-datasource tarball


def _tarball_name(pkg: Package) -> str:
    # npm pack's file name: scope "@a/b" becomes "a-b".
    return f"{pkg.name.lstrip('@').replace('/', '-')}-{pkg.version}.tgz"


def fetch_package(style: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The npm tarball of ``style``'s package in ``CACHE/npm/``, fetched with ``npm pack``.

    A tarball already in the cache is used if its SHA-256 matches; otherwise ``npm pack
    NAME@VERSION`` downloads it (needs ``npm`` and access to the npm registry).

    Raises:
        ValueError: unknown ``style``, or the tarball's hash is not the expected one.
        FileNotFoundError: the tarball is missing and ``npm`` is not installed.
    """
    if style not in PACKAGES:
        raise ValueError(f"unknown emoji style {style!r}; valid: {list(STYLES)}")
    pkg = PACKAGES[style]
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "npm"
    path = folder / _tarball_name(pkg)
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError(
                f"{path} is not in the cache and npm is not installed: install Node.js/npm "
                f"(e.g. apt-get install npm) or put `npm pack {pkg.name}@{pkg.version}` there"
            )
        folder.mkdir(parents=True, exist_ok=True)
        spec = f"{pkg.name}@{pkg.version}"
        result = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(folder), "--silent"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not path.exists():
            raise ValueError(f"npm pack {spec} failed: {result.stderr.strip()[-500:]}")
    digest = file_digest(path)
    if digest != pkg.sha256:
        raise ValueError(
            f"{path} has SHA-256 {digest}, expected {pkg.sha256} for {pkg.name}@{pkg.version} "
            "(delete it to download again)"
        )
    return path


def _key(code: str) -> tuple[int, ...]:
    """Code points of a file stem or ``unified`` string, without FE0F: the matching key."""
    points = code.lower().replace("_", "-").split("-")
    return tuple(int(p, 16) for p in points if p and int(p, 16) != 0xFE0F)


@dataclass
class _Emoji:
    category: str
    sort_order: int
    skin_tone: bool


def _read_metadata(tarball: Path) -> dict[tuple[int, ...], _Emoji]:
    """``emoji.json`` of an emoji-datasource tarball: code-point key -> category, order, skin."""
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(_METADATA)
        if member is None:
            raise ValueError(f"{tarball} has no {_METADATA}")
        entries = json.load(member)
    table: dict[tuple[int, ...], _Emoji] = {}
    for entry in entries:
        order = int(entry["sort_order"])
        table[_key(entry["unified"])] = _Emoji(entry["category"], order, False)
        for variant in (entry.get("skin_variations") or {}).values():
            table[_key(variant["unified"])] = _Emoji(entry["category"], order, True)
    return table


def _read_images(tarball: Path, pkg: Package) -> dict[str, bytes]:
    """``{file stem: bytes}`` of the package's images, read in one pass over the tarball."""
    prefix = "package/" + pkg.image_dir
    found: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            name = member.name
            if not (member.isfile() and name.startswith(prefix) and name.endswith(pkg.suffix)):
                continue
            if "/" in name[len(prefix) :]:
                continue
            data = tar.extractfile(member)
            if data is not None:
                found[name[len(prefix) : -len(pkg.suffix)]] = data.read()
    return found


def _licence_text(tarball: Path, pkg: Package) -> str:
    if pkg.licence_file is None:
        return (
            '(no licence file in the package; its package.json says "license": "MIT" '
            "and its README: Copyright (c) 2023 LobeHub, MIT licensed)"
        )
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(pkg.licence_file)
        return member.read().decode("utf-8", "replace") if member is not None else ""


def _open_raster(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _open_svg(data: bytes, resolution: int) -> Image.Image:
    try:
        import resvg_py
    except ImportError as err:  # checked before any item is made; kept for direct use
        raise SkipItem("resvg-py is not installed") from err
    try:
        png = resvg_py.svg_to_bytes(
            svg_string=data.decode("utf-8"), width=resolution, height=resolution
        )
    except (ValueError, UnicodeDecodeError) as err:
        raise SkipItem(f"SVG does not render ({type(err).__name__})") from err
    return _open_raster(bytes(png))


def emoji_source(
    resolution: int,
    *,
    styles: Sequence[str] | None = None,
    skin_tones: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Source:
    """The emoji dataset's items at ``resolution`` for the chosen ``styles``.

    Args:
        resolution: output side. A style whose native size is below it is refused
            (``ValueError``): 64 px PNG styles only up to 64.
        styles: subset of :data:`STYLES`, in any order (default: all styles that reach
            ``resolution``). ``style_names`` in the output always lists all four, so a style
            id means the same thing in every emoji dataset.
        skin_tones: keep skin-tone variants (default: drop them).
        cache_dir: where ``npm/`` tarballs are kept (default :func:`default_cache_dir`).

    Returns:
        A :class:`~ylg.data.items.Source`: items ordered by style, then
        emoji-datasource's sort order; labels index :data:`CATEGORIES`, styles index :data:`STYLES`.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    if styles is None:
        styles = [s for s in STYLES if (PACKAGES[s].native_size or resolution) >= resolution]
    styles = list(dict.fromkeys(styles))
    if not styles:
        raise ValueError("styles must name at least one of " + ", ".join(STYLES))
    for style in styles:
        if style not in PACKAGES:
            raise ValueError(f"unknown emoji style {style!r}; valid: {list(STYLES)}")
        native = PACKAGES[style].native_size
        if native is not None and native < resolution:
            usable = [s for s in STYLES if (PACKAGES[s].native_size or resolution) >= resolution]
            raise ValueError(
                f"style {style!r} is {native} px natively; resolution {resolution} would "
                f"upscale it (styles available at {resolution} px: {usable})"
            )
    if "openmoji" in styles:
        try:
            import resvg_py  # noqa: F401
        except ImportError as err:
            raise ValueError(
                "style 'openmoji' renders SVG with resvg-py: pip install 'ylg[emoji]' "
                "(or resvg-py), or leave openmoji out of --styles"
            ) from err

    # Any emoji-datasource tarball carries emoji.json; prefer one that is selected.
    meta_style = next((s for s in styles if s in ("twemoji", "noto")), "twemoji")
    table = _read_metadata(fetch_package(meta_style, cache_dir))

    items: list[tuple[int, int, str, Item]] = []
    dropped: Counter = Counter()
    licences = []
    for style in styles:
        pkg = PACKAGES[style]
        tarball = fetch_package(style, cache_dir)
        images = _read_images(tarball, pkg)
        sid = STYLES.index(style)
        seen: set[tuple[int, ...]] = set()
        for stem in sorted(images):
            try:
                key = _key(stem)
            except ValueError:
                dropped[f"{style}: file name is not code points"] += 1
                continue
            emoji = table.get(key)
            if emoji is None:
                dropped[f"{style}: not an emoji in emoji.json"] += 1
                continue
            if emoji.category not in CATEGORIES:
                dropped[f"{style}: category {emoji.category}"] += 1
                continue
            if emoji.skin_tone and not skin_tones:
                dropped[f"{style}: skin-tone variant"] += 1
                continue
            if style == "fluent" and emoji.category == "Flags":
                dropped[f"{style}: flag (origin undocumented)"] += 1
                continue
            if key in seen:
                dropped[f"{style}: duplicate file of one emoji"] += 1
                continue
            seen.add(key)
            data = images[stem]
            if pkg.suffix == ".svg":

                def opener(data=data):
                    return _open_svg(data, resolution)

            else:

                def opener(data=data):
                    return _open_raster(data)

            label = CATEGORIES.index(emoji.category)
            name = f"{style}/{stem}{pkg.suffix}"
            items.append((sid, emoji.sort_order, stem, Item(name, opener, label, sid)))
        licences.append(
            f"== {style}: {pkg.name}@{pkg.version} ==\n{pkg.credit}\nLicence: {pkg.licence}\n"
            f"\n--- {(pkg.licence_file or 'licence').removeprefix('package/')} of the npm "
            "package ---\n" + _licence_text(tarball, pkg).strip() + "\n"
        )
    items.sort(key=lambda t: t[:3])
    header = (
        "ylg emoji dataset: images from the npm packages below, converted by `ylg data emoji` "
        "(transparent pixels composited on white, resized). Each style keeps its own licence; "
        "credit the artists when you use or share the images.\n"
        "Labels: emoji categories from emoji-datasource's emoji.json "
        "(https://github.com/iamcal/emoji-data, MIT).\n\n"
    )
    return Source(
        items=[t[3] for t in items],
        total=len(items),
        class_names=list(CATEGORIES),
        style_names=list(STYLES),
        dropped=dropped,
        licence_text=header + "\n".join(licences),
    )
