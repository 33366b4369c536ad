"""The built-in dataset: procedural, class-conditional scenes of shapes (no download).

Each item is a scene over a two-colour linear-gradient background: one large *main* shape
whose kind is the label, and 0-3 smaller distractor shapes of other kinds, each drawn either
behind or in front of the main shape (so they occlude it or are occluded), every shape with a
random position, size, rotation and colour. One light direction per scene shades every shape
(brighter on the lit side) and casts a soft shadow from each, so distant parts of an image
agree with each other: the long-range structure attention layers are meant to capture.

The ten kinds are :data:`SHAPE_NAMES`; ``num_classes`` uses the first ``num_classes`` of them
(``0`` = unlabeled: any kind, label 0). Item ``i`` is a pure function of ``(seed, i)``: it is
drawn from ``numpy.random.default_rng([seed, i])`` with label ``i % num_classes`` (classes
exactly balanced), so the dataset is identical across processes, workers and machines.
Scenes are rasterised with PIL at ``supersample`` times the resolution and box-downsampled,
which antialiases edges; any resolution works.

``style="simple"`` (the demo's data, see :data:`STYLES`) draws an easier set: one flat-coloured
shape of a fixed size, upright and centred (:data:`SIMPLE_RADIUS`), on a plain background, no
distractors, shading or shadows. Every item of a class has the same outline; only the two
colours are random. A small GAN learns it in minutes on a CPU; the default ``"scenes"`` are
unchanged.
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset

from ylg.data.images import uint8_to_tensor

__all__ = ["SHAPE_NAMES", "STYLES", "ShapesDataset", "render_scene"]

SHAPE_NAMES = (
    "circle",
    "square",
    "triangle",
    "ring",
    "cross",
    "star",
    "hexagon",
    "crescent",
    "heart",
    "diamond",
)

# "scenes": the full scenes described above; "simple": one flat shape on a plain background.
STYLES = ("scenes", "simple")
# The "simple" shapes: centred, upright, this radius (a share of the image side). A fixed outline
# per class is what lets the demo's GAN learn every class in its few CPU minutes: with random
# size, position and +-15 degree tilt, 1000 steps reached a GAN-test accuracy of 25-32 %,
# with the outline fixed 69 % (raw G; benchmarks/README.md, "demo").
SIMPLE_RADIUS = 0.36

# Polygon outlines in unit coordinates (centre 0, extent about 1), y pointing down.
_UNIT_POLYGONS: dict[str, np.ndarray] = {}


def _regular(k: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _build_polygons() -> None:
    _UNIT_POLYGONS["circle"] = _regular(64)
    _UNIT_POLYGONS["square"] = _regular(4, math.sqrt(2) * 0.8, math.pi / 4)
    _UNIT_POLYGONS["triangle"] = _regular(3)
    a, b = 0.32, 1.0  # cross: arm half-width, arm length
    _UNIT_POLYGONS["cross"] = np.array(
        [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a)]
        + [(-b, a), (-b, -a), (-a, -a)]
    )
    outer, inner = _regular(5), _regular(5, 0.45, -math.pi / 2 + math.pi / 5)
    _UNIT_POLYGONS["star"] = np.stack([outer, inner], axis=1).reshape(10, 2)
    _UNIT_POLYGONS["hexagon"] = _regular(6, 1.0, 0.0)
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    heart = np.stack(
        [
            16 * np.sin(t) ** 3,
            -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)),
        ],
        axis=1,
    )
    _UNIT_POLYGONS["heart"] = (heart - heart.mean(axis=0)) / 16.0
    _UNIT_POLYGONS["diamond"] = np.array([(0, -1.0), (0.55, 0), (0, 1.0), (-0.55, 0)])


_build_polygons()


def _transform(points: np.ndarray, cx: float, cy: float, r: float, theta: float) -> list:
    c, s = math.cos(theta), math.sin(theta)
    x = cx + r * (c * points[:, 0] - s * points[:, 1])
    y = cy + r * (s * points[:, 0] + c * points[:, 1])
    return list(zip(x.tolist(), y.tolist()))


def _draw_shape(mask: Image.Image, kind: str, cx: float, cy: float, r: float, theta: float):
    """Draw ``kind`` into an ``L`` mask: 255 inside, holes cleared back to 0."""
    draw = ImageDraw.Draw(mask)
    if kind == "ring":
        draw.polygon(_transform(_UNIT_POLYGONS["circle"], cx, cy, r, 0.0), fill=255)
        draw.polygon(_transform(_UNIT_POLYGONS["circle"], cx, cy, 0.58 * r, 0.0), fill=0)
    elif kind == "crescent":
        draw.polygon(_transform(_UNIT_POLYGONS["circle"], cx, cy, r, 0.0), fill=255)
        dx, dy = 0.45 * r * math.cos(theta), 0.45 * r * math.sin(theta)
        bite = _transform(_UNIT_POLYGONS["circle"], cx + dx, cy + dy, 0.85 * r, 0.0)
        draw.polygon(bite, fill=0)
    else:
        draw.polygon(_transform(_UNIT_POLYGONS[kind], cx, cy, r, theta), fill=255)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] -> RGB float [3] in [0, 1]."""
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rows = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.array(rows[i], dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _simple_alpha(kind: str, size: int) -> np.ndarray:
    """The fixed outline of ``kind`` in the simple style: float ``[S, S, 1]`` in [0, 1]
    (read-only; drawn once per kind and size, since every item of a class shares it)."""
    mask = Image.new("L", (size, size), 0)
    _draw_shape(mask, kind, 0.5 * size, 0.5 * size, SIMPLE_RADIUS * size, 0.0)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    alpha.flags.writeable = False
    return alpha


def _render_simple(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """One flat shape, centred and upright, on a plain background: float ``[S, S, 3]``."""
    background = _hsv(rng.uniform(), rng.uniform(0.0, 0.3), rng.uniform(0.1, 0.3))  # dark
    colour = _hsv(rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.0))  # bright
    return background + _simple_alpha(kind, size) * (colour - background)


def render_scene(
    rng: np.random.Generator,
    kind: str,
    resolution: int,
    supersample: int = 4,
    style: str = "scenes",
) -> np.ndarray:
    """Render one scene whose main shape is ``kind``; returns ``uint8 [R, R, 3]``."""
    if kind not in SHAPE_NAMES:
        raise ValueError(f"kind must be one of {list(SHAPE_NAMES)}, got {kind!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
    if style == "simple":
        return _downsample(_render_simple(rng, kind, resolution * supersample), supersample)
    size = resolution * supersample  # render side S
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in (0, 1)
    ys, xs = np.meshgrid(coords, coords, indexing="ij")  # [S, S] each

    # Background: a linear gradient between two muted colours.
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)  # [S, S] in [0, 1]
    c0 = _hsv(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.25, 0.95))
    c1 = _hsv(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.25, 0.95))
    image = (c0 + ramp[..., None] * (c1 - c0)).astype(np.float32)  # [S, S, 3]

    # One light direction per scene: shading and shadows agree across the image.
    light = rng.uniform(0, 2 * math.pi)
    lx, ly = math.cos(light), math.sin(light)
    shadow_offset = 0.06 * size

    # The main shape, then distractors behind (drawn first) or in front (drawn last).
    main_r = rng.uniform(0.22, 0.34)
    objects = [(kind, rng.uniform(main_r, 1 - main_r), rng.uniform(main_r, 1 - main_r), main_r)]
    others = [k for k in SHAPE_NAMES if k != kind]
    for _ in range(int(rng.integers(0, 4))):
        other = others[int(rng.integers(len(others)))]
        r = rng.uniform(0.08, 0.55 * main_r)
        obj = (other, rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), r)
        if rng.uniform() < 0.5:
            objects.insert(0, obj)
        else:
            objects.append(obj)

    for name, cx, cy, r in objects:
        theta = rng.uniform(0, 2 * math.pi)
        colour = _hsv(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
        cx_px, cy_px, r_px = cx * size, cy * size, r * size
        sx, sy = cx_px - lx * shadow_offset, cy_px - ly * shadow_offset  # shadow centre

        # Work inside the box covering the shape and its blurred shadow only.
        reach = 1.2 * r_px + 2 * supersample + 2
        x0 = max(0, int(min(cx_px, sx) - reach))
        y0 = max(0, int(min(cy_px, sy) - reach))
        x1 = min(size, int(math.ceil(max(cx_px, sx) + reach)))
        y1 = min(size, int(math.ceil(max(cy_px, sy) + reach)))
        if x1 <= x0 or y1 <= y0:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        w, h = x1 - x0, y1 - y0

        shadow = Image.new("L", (w, h), 0)
        _draw_shape(shadow, name, sx - x0, sy - y0, r_px, theta)
        shadow = shadow.filter(ImageFilter.BoxBlur(max(1, supersample)))
        image[box] *= 1.0 - (0.35 / 255.0) * np.asarray(shadow, dtype=np.float32)[..., None]

        mask = Image.new("L", (w, h), 0)
        _draw_shape(mask, name, cx_px - x0, cy_px - y0, r_px, theta)
        alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0  # [h, w, 1]
        # Lit side up to 25 % brighter, far side darker.
        shade = 1.0 + 0.25 * ((xs[box] - cx) * lx + (ys[box] - cy) * ly) / r  # [h, w]
        fill = np.clip(colour * np.clip(shade, 0.6, 1.3)[..., None], 0.0, 1.0)  # [h, w, 3]
        image[box] += alpha * (fill - image[box])

    return _downsample(image, supersample)


def _downsample(image: np.ndarray, supersample: int) -> np.ndarray:
    """Float ``[S, S, 3]`` in [0, 1] -> ``uint8 [S / supersample, ...]``."""
    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if supersample > 1:
        # Box downsampling of the supersampled render: exact area averages, so edges are
        # antialiased.
        pixels = np.asarray(Image.fromarray(pixels).reduce(supersample))
    return pixels


class ShapesDataset(Dataset):
    """Procedural shape scenes as ``(float32 [3, R, R] in [-1, 1], int label)`` items.

    Args:
        resolution: output side ``R`` (any positive int).
        length: number of items.
        seed: selects the scenes; item ``i`` depends only on ``(seed, i)``.
        num_classes: how many of :data:`SHAPE_NAMES` are classes (1-10); ``0`` = unlabeled.
        supersample: render scale before box downsampling (default: 4 up to 128 px, else 2).
        cache: keep rendered scenes (uint8) in memory, per process, so that later epochs do
            not render again; default: on when all scenes fit in 64 MiB (32 px: 30 MiB).
        style: ``"scenes"`` (default) or ``"simple"`` (one fixed shape per class on a plain
            background, the demo's data); see :data:`STYLES`.
    """

    def __init__(
        self,
        resolution: int,
        *,
        length: int = 10_000,
        seed: int = 0,
        num_classes: int = 10,
        supersample: int | None = None,
        cache: bool | None = None,
        style: str = "scenes",
    ) -> None:
        for name, value, low in (("resolution", resolution, 1), ("length", length, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, int)
            or not 0 <= num_classes <= len(SHAPE_NAMES)
        ):
            raise ValueError(
                f"num_classes must be an int in 0..{len(SHAPE_NAMES)}, got {num_classes!r}"
            )
        if style not in STYLES:
            raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
        if supersample is None:
            supersample = 4 if resolution <= 128 else 2
        if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
            raise ValueError(f"supersample must be an int >= 1, got {supersample!r}")
        self.resolution = resolution
        self.length = length
        self.seed = seed
        self.num_classes = num_classes
        self.supersample = supersample
        self.style = style
        self.classes = list(SHAPE_NAMES[:num_classes])
        if cache is None:
            cache = length * resolution * resolution * 3 <= 64 * 2**20
        self.cache = bool(cache)
        self._rendered: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def label(self, index: int) -> int:
        """The label of item ``index`` (``index % num_classes``; 0 when unlabeled)."""
        return index % self.num_classes if self.num_classes else 0

    def render(self, index: int) -> np.ndarray:
        """Item ``index`` as ``uint8 [R, R, 3]`` (read-only when cached)."""
        index = operator.index(index)
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        index %= self.length
        if index in self._rendered:
            return self._rendered[index]
        rng = np.random.default_rng([self.seed, index])
        if self.num_classes:
            kind = SHAPE_NAMES[self.label(index)]
        else:
            kind = SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))]
        pixels = render_scene(rng, kind, self.resolution, self.supersample, self.style)
        if self.cache:
            pixels.flags.writeable = False
            self._rendered[index] = pixels
        return pixels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = operator.index(index)
        pixels = self.render(index)
        return uint8_to_tensor(pixels), self.label(index % self.length)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resolution={self.resolution}, length={self.length}, "
            f"seed={self.seed}, num_classes={self.num_classes}, style={self.style!r})"
        )
