"""Mosaic rendering: label rows -> grey images of `grid x grid` cells holding one tile per label.

Each labelled class gets its own random cell and a random tile of that class from the pool, scaled by
U(0.8, 1.2) x cell, jittered by up to 15% of a cell and dimmed to U(0.55, 1) intensity. About a third
of the free cells get unlabelled clutter: a fragment of a random tile (any class) or a few strokes.
Faint Gaussian noise covers the canvas. Images are PNG-encoded; each one is seeded by (seed, stream, row),
so a row renders the same whatever else is rendered.
"""

from __future__ import annotations

import cv2
import numpy as np

from comic.data.tiles import TilePool

SCALE_RANGE = (0.8, 1.2)
JITTER = 0.15
INTENSITY_RANGE = (0.55, 1.0)
CLUTTER_PROB = 0.35
NOISE_STD = 4.0


def _paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Max-composite `patch` onto `canvas` at (top, left), clipped to the canvas."""
    h, w = canvas.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    if t1 > t0 and l1 > l0:
        region = canvas[t0:t1, l0:l1]
        np.maximum(region, patch[t0 - top : t1 - top, l0 - left : l1 - left], out=region)


def _place(canvas, tile, cell_rc, cell_size, scale, rng) -> None:
    side = max(4, round(cell_size * scale))
    patch = cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    patch *= rng.uniform(*INTENSITY_RANGE)
    centre = (np.asarray(cell_rc) + 0.5) * cell_size + rng.uniform(-JITTER, JITTER, size=2) * cell_size
    _paste(canvas, patch, round(centre[0] - side / 2), round(centre[1] - side / 2))


def _clutter(canvas, pool: TilePool, cell_rc, cell_size, rng) -> None:
    if rng.random() < 0.5:  # a fragment: a corner-to-half window of a random tile
        tile = pool.images[rng.integers(len(pool.images))]
        size = int(rng.integers(9, 16))
        top, left = rng.integers(0, 28 - size, size=2)
        fragment = tile[top : top + size, left : left + size]
        _place(canvas, fragment, cell_rc, cell_size, rng.uniform(0.4, 0.6), rng)
        return
    origin = np.asarray(cell_rc)[::-1] * cell_size  # cv2 points are (x, y)
    for _ in range(int(rng.integers(1, 3))):
        (x0, y0), (x1, y1) = (origin + rng.uniform(0.1, 0.9, size=(2, 2)) * cell_size).round().astype(int)
        colour, thickness = float(rng.uniform(100, 230)), int(rng.integers(1, 3))
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), colour, thickness, cv2.LINE_AA)


def render_mosaic(labels_c: np.ndarray, pool: TilePool, image_size: int, grid: int, rng) -> np.ndarray:
    """(image_size, image_size) uint8 mosaic of the classes where `labels_c` is 1."""
    classes = np.flatnonzero(labels_c)
    if len(classes) > grid * grid:
        raise ValueError(f"{len(classes)} labels do not fit a {grid}x{grid} mosaic")
    cell_size = image_size / grid
    canvas = np.zeros((image_size, image_size), dtype=np.float32)
    cells = rng.permutation(grid * grid)
    for c, cell in zip(classes, cells, strict=False):
        tiles = pool.of_class(c)
        tile = pool.images[tiles[rng.integers(len(tiles))]]
        _place(canvas, tile, divmod(int(cell), grid), cell_size, rng.uniform(*SCALE_RANGE), rng)
    for cell in cells[len(classes) :]:
        if rng.random() < CLUTTER_PROB:
            _clutter(canvas, pool, divmod(int(cell), grid), cell_size, rng)
    canvas += rng.normal(0.0, NOISE_STD, size=canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def render_split(labels_nc: np.ndarray, pool: TilePool, image_size: int, grid: int, seed: int, stream: int):
    """PNG bytes of one mosaic per label row."""
    images = []
    for row, labels_c in enumerate(labels_nc):
        image = render_mosaic(labels_c, pool, image_size, grid, np.random.default_rng([seed, stream, row]))
        ok, png = cv2.imencode(".png", image)
        assert ok, "cv2 failed to encode a uint8 image as PNG"
        images.append(png.tobytes())
    return images
