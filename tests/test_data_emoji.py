"""The emoji source on a fake package tree (the four npm tarballs' real layouts, tiny contents)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from ylg.cli import main as cli_main
from ylg.data.sources import emoji as E

# Fake emoji.json: (unified, category, sort_order, skin variants)
_ENTRIES = [
    ("1F600", "Smileys & Emotion", 1, []),
    ("1F44B", "People & Body", 2, ["1F44B-1F3FB"]),
    ("1F3FB", "Component", 3, []),
    ("1F436", "Animals & Nature", 4, []),
    ("0023-FE0F-20E3", "Symbols", 5, []),
    ("1F1E6-1F1E8", "Flags", 6, []),
]
# A distinct colour per emoji (the image content the test checks end to end).
_COLOURS = {
    "1f600": (250, 10, 10),
    "1f44b": (10, 250, 10),
    "1f44b-1f3fb": (10, 10, 250),
    "1f3fb": (120, 60, 30),
    "1f436": (200, 200, 0),
    "0023-fe0f-20e3": (0, 200, 200),
    "1f1e6-1f1e8": (200, 0, 200),
}


def _png(colour, size, alpha=255, fmt="PNG") -> bytes:
    image = Image.new("RGBA", (size, size), (*colour, alpha))
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def _svg(colour) -> bytes:
    r, g, b = colour
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72" width="72" height="72">'
        f'<rect x="0" y="0" width="72" height="72" fill="rgb({r},{g},{b})"/></svg>'
    ).encode()


def _tarball(path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _emoji_json() -> bytes:
    entries = []
    for unified, category, order, skins in _ENTRIES:
        entries.append(
            {
                "unified": unified,
                "image": unified.lower() + ".png",
                "category": category,
                "sort_order": order,
                "skin_variations": {
                    s.split("-")[-1]: {"unified": s, "image": s.lower() + ".png"} for s in skins
                }
                or None,
            }
        )
    return json.dumps(entries).encode()


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    """A cache folder with four fake tarballs; PACKAGES patched to their hashes."""
    npm = tmp_path / "cache" / "npm"
    npm.mkdir(parents=True)
    meta = {"package/emoji.json": _emoji_json(), "package/LICENSE": b"MIT fake"}
    stems = list(_COLOURS)
    trees = {
        "twemoji": {
            **meta,
            # alpha 0 for the dog: composited on white
            **{
                f"package/img/twitter/64/{s}.png": _png(_COLOURS[s], 64, 0 if s == "1f436" else 255)
                for s in stems
            },
            "package/img/twitter/sheets-256/64.png": _png((1, 2, 3), 8),
        },
        "noto": {
            **meta,
            **{f"package/img/google/64/{s}.png": _png(_COLOURS[s], 64) for s in stems},
        },
        "fluent": {
            "package/package.json": b"{}",
            # Fluent's names: lower case, leading zeros sometimes dropped, keycap twice
            **{
                f"package/assets/{s}.webp": _png(_COLOURS[s], 256, fmt="WEBP")
                for s in stems
                if s != "1f600"
            },
            "package/assets/1f600.webp": b"not a webp at all",  # corrupt: skipped, counted
            "package/assets/23-fe0f-20e3.webp": _png(_COLOURS["0023-fe0f-20e3"], 256, fmt="WEBP"),
        },
        "openmoji": {
            "package/LICENSE.txt": b"CC BY-SA fake",
            **{f"package/color/svg/{s.upper()}.svg": _svg(_COLOURS[s]) for s in stems},
            "package/color/svg/E000.svg": _svg((1, 1, 1)),  # an OpenMoji extra
            "package/black/svg/1F600.svg": _svg((0, 0, 0)),  # ignored folder
        },
    }
    for style, files in trees.items():
        pkg = E.PACKAGES[style]
        digest = _tarball(npm / E._tarball_name(pkg), files)
        monkeypatch.setitem(E.PACKAGES, style, dataclasses.replace(pkg, sha256=digest))
    return tmp_path / "cache"


def test_labels_styles_and_drops(fake_cache):
    src = E.emoji_source(64, styles=["twemoji", "noto", "fluent"], cache_dir=fake_cache)
    names = [(i.name, E.CATEGORIES[i.label], E.STYLES[i.style]) for i in src.items]
    per_style = ["1f600", "1f44b", "1f436", "0023-fe0f-20e3", "1f1e6-1f1e8"]  # sort order
    expected = [
        (f"twemoji/{s}.png", cat, "twemoji")
        for s, cat in zip(
            per_style,
            ["Smileys & Emotion", "People & Body", "Animals & Nature", "Symbols", "Flags"],
        )
    ]
    assert names[:5] == expected
    assert [n for n, _, st in names if st == "noto"] == [f"noto/{s}.png" for s in per_style]
    # fluent: no flag, keycap once (the first file name in sorted order), corrupt 1f600 kept
    # as an item (it is skipped when written)
    assert [n for n, _, st in names if st == "fluent"] == [
        "fluent/1f600.webp",
        "fluent/1f44b.webp",
        "fluent/1f436.webp",
        "fluent/0023-fe0f-20e3.webp",
    ]
    assert src.dropped["fluent: flag (origin undocumented)"] == 1
    assert src.dropped["fluent: duplicate file of one emoji"] == 1
    assert src.dropped["twemoji: skin-tone variant"] == 1
    assert src.dropped["noto: category Component"] == 1
    assert src.class_names == list(E.CATEGORIES)
    assert src.style_names == list(E.STYLES)


def test_skin_tones_flag_keeps_variants(fake_cache):
    src = E.emoji_source(64, styles=["twemoji"], skin_tones=True, cache_dir=fake_cache)
    names = [i.name for i in src.items]
    assert "twemoji/1f44b-1f3fb.png" in names
    assert E.CATEGORIES[src.items[names.index("twemoji/1f44b-1f3fb.png")].label] == (
        "People & Body"
    )


def test_no_upscaling_and_bad_style(fake_cache):
    with pytest.raises(ValueError, match="upscale"):
        E.emoji_source(128, styles=["twemoji"], cache_dir=fake_cache)
    with pytest.raises(ValueError, match="unknown emoji style 'apple'"):
        E.emoji_source(64, styles=["apple"], cache_dir=fake_cache)
    # default at 128: only the styles that reach it
    if importlib.util.find_spec("resvg_py") is not None:
        src = E.emoji_source(128, cache_dir=fake_cache)
        assert {E.STYLES[i.style] for i in src.items} == {"fluent", "openmoji"}


def test_hash_mismatch_is_an_error(fake_cache, monkeypatch):
    pkg = E.PACKAGES["noto"]
    monkeypatch.setitem(E.PACKAGES, "noto", dataclasses.replace(pkg, sha256="0" * 64))
    with pytest.raises(ValueError, match="SHA-256"):
        E.fetch_package("noto", fake_cache)


def test_cli_writes_npz_with_contract(fake_cache, tmp_path):
    out = tmp_path / "emoji32.npz"
    rc = cli_main(
        ["data", "emoji", "--resolution", "32", "--styles", "twemoji", "fluent",
         "--cache-dir", str(fake_cache), "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert rc == 0
    with np.load(out, allow_pickle=False) as d:
        assert set(d.files) == {"images", "labels", "class_names", "styles", "style_names"}
        images, labels, styles = d["images"], d["labels"], d["styles"]
        assert images.dtype == np.uint8 and images.shape == (8, 32, 32, 3)
        assert labels.dtype == np.int64 and styles.dtype == np.int64
        assert list(d["class_names"]) == list(E.CATEGORIES)
        assert list(d["style_names"]) == list(E.STYLES)
    # twemoji 5 (one per emoji in sort order), fluent 3 (corrupt 1f600 skipped, flag dropped)
    assert styles.tolist() == [0] * 5 + [2] * 3
    cats = [E.CATEGORIES[k] for k in labels]
    assert cats == ["Smileys & Emotion", "People & Body", "Animals & Nature", "Symbols",
                    "Flags", "People & Body", "Animals & Nature", "Symbols"]  # fmt: skip
    # solid colours survive (Lanczos of a constant is the constant); alpha 0 -> white
    expected = [_COLOURS["1f600"], _COLOURS["1f44b"], (255, 255, 255), _COLOURS["0023-fe0f-20e3"],
                _COLOURS["1f1e6-1f1e8"], _COLOURS["1f44b"], _COLOURS["1f436"],
                _COLOURS["0023-fe0f-20e3"]]  # fmt: skip
    for image, colour in zip(images, expected):
        assert np.array_equal(image, np.broadcast_to(np.array(colour, np.uint8), image.shape))
    summary = json.loads((tmp_path / "emoji32.npz.summary.json").read_text())
    assert summary["skipped"] == {"unreadable (UnidentifiedImageError)": 1}
    licence = (tmp_path / "emoji32.LICENSE.txt").read_text()
    assert "CC BY 4.0" in licence and "Fluent" in licence


def test_openmoji_renders_svg(fake_cache, tmp_path):
    pytest.importorskip("resvg_py")
    src = E.emoji_source(16, styles=["openmoji"], cache_dir=fake_cache)
    assert [i.name for i in src.items] == [
        "openmoji/1F600.svg",
        "openmoji/1F44B.svg",
        "openmoji/1F436.svg",
        "openmoji/0023-FE0F-20E3.svg",
        "openmoji/1F1E6-1F1E8.svg",
    ]
    assert src.dropped["openmoji: not an emoji in emoji.json"] == 1
    with src.items[0].open() as image:
        assert image.size == (16, 16)
        rgb = np.asarray(image.convert("RGB"))
    assert np.abs(rgb.astype(int) - np.array(_COLOURS["1f600"])).max() <= 1
