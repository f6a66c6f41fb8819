"""The one conversion every image goes through, the image spec, and the explanation regions.

`convert_image` is applied by the loaders and again by `encode_images` from the shipped
spec (format "edgeaudit.image.v1"), so a device can repeat it: grayscale (ITU-R 601-2
luma), 8-bit, resized with Pillow's bilinear filter to the target size, divided by 255.
See "The conversion" in `pipeline.data.images`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FORMAT = "edgeaudit.image.v1"
MAX_SIDE = 64
MIN_SIDE = 8
REGION_GRID = 8

HOW_TO_USE = (
    "Turn one image into a float32 tensor of shape [1, height, width, 1] and feed it as the model's only "
    "input; the output is the probability of the positive class. 1) Grayscale: for RGB use "
    "L = 0.299 R + 0.587 G + 0.114 B, drop alpha. 2) 8-bit: a float image in [0, 1] times 255; an integer "
    "image with values above 255 scaled (value - min) / (max - min) * 255. 3) Resize to height x width with "
    "bilinear interpolation (antialiased when shrinking), stretching, no crop. 4) Divide by 255."
)


# --------------------------------------------------------------------------- the conversion


def to_grayscale_uint8(image: Any) -> np.ndarray:
    """One image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of any numeric dtype -> uint8 (H, W)."""
    original = np.asarray(image)
    floating = np.issubdtype(original.dtype, np.floating)
    array = original
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        if array.shape[2] == 1:
            array = array[:, :, 0]
        else:
            array = array[:, :, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            if not floating:
                array = np.round(array)
    if array.ndim != 2:
        raise ValueError(f"an image of shape {original.shape}; expected (height, width) with an optional "
                         f"last axis of 1, 3 or 4 channels")
    if min(array.shape) < 1:
        raise ValueError(f"an empty image of shape {original.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("an image with NaN or infinite pixel values")
    low, high = float(values.min()), float(values.max())
    if floating and low >= 0.0 and high <= 1.0:
        return np.round(values * 255.0).astype(np.uint8)
    if low >= 0.0 and high <= 255.0:
        return np.round(values).astype(np.uint8)
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) / (high - low) * 255.0).astype(np.uint8)


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W) -> uint8 (height, width), Pillow bilinear (antialiased when shrinking)."""
    if image.shape == (height, width):
        return image
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image), mode="L").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def convert_image(image: Any, height: int, width: int) -> np.ndarray:
    """Any image -> uint8 grayscale (height, width): what every image goes through."""
    return resize_uint8(to_grayscale_uint8(image), height, width)


def encode_images(preprocessing: dict, raw: Any) -> np.ndarray:
    """Raw images -> float32 (N, height, width, 1) in [0, 1], using only the shipped spec.

    raw: a uint8 array (N, H, W) or (N, H, W, C), or a sequence of images of any size,
    channels and numeric dtype.
    """
    if preprocessing.get("format") != FORMAT:
        raise ValueError(f"preprocessing format {preprocessing.get('format')!r}; expected {FORMAT!r}")
    height = int(preprocessing["input"]["height"])
    width = int(preprocessing["input"]["width"])
    divide_by = float(preprocessing["scaling"]["divide_by"])
    if isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.shape[1:] == (height, width):
        gray = raw
    else:
        gray = np.stack([convert_image(image, height, width) for image in raw]) if len(raw) else \
            np.zeros((0, height, width), dtype=np.uint8)
    return (gray.astype(np.float32) / np.float32(divide_by))[..., None]


def box_blur(images: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1)^2 window of every pixel of float images (..., H, W); edges replicated.

    Separable, by cumulative sums (no OpenCV, no scipy).
    """
    images = np.asarray(images, dtype=np.float64)
    if radius < 1:
        return images.copy()
    out = images
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        padded = np.pad(out, pad, mode="edge")
        sums = np.cumsum(padded, axis=axis)
        size = out.shape[axis]
        upper = np.take(sums, np.arange(2 * radius + 1, 2 * radius + 1 + size), axis=axis)
        lower = np.take(sums, np.arange(0, size), axis=axis)
        out = (upper - lower) / (2 * radius + 1)
    return out


def region_bounds(height: int, width: int, grid: int = REGION_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Row and column boundaries of a grid x grid partition (as equal as the size allows)."""
    rows = min(grid, height)
    columns = min(grid, width)
    return (np.round(np.linspace(0, height, rows + 1)).astype(int),
            np.round(np.linspace(0, width, columns + 1)).astype(int))


def region_name(row: int, column: int) -> str:
    """How an explanation region is named: "region r0c7" (row 0, column 7 of the grid)."""
    return f"region r{row}c{column}"


def image_regions(height: int, width: int, grid: int = REGION_GRID) -> dict[str, list[int]]:
    """Region name -> flattened pixel indices (row-major, one channel): the explanation's players."""
    row_edges, column_edges = region_bounds(height, width, grid)
    index = np.arange(height * width).reshape(height, width)
    return {region_name(i, j): index[row_edges[i]:row_edges[i + 1], column_edges[j]:column_edges[j + 1]].ravel().tolist()
            for i in range(len(row_edges) - 1) for j in range(len(column_edges) - 1)}


def image_preprocessing(height: int, width: int, *, extra: dict | None = None) -> dict:
    """The JSON-able spec written beside every .tflite."""
    row_edges, column_edges = region_bounds(height, width)
    return {
        "format": FORMAT,
        "input": {"height": int(height), "width": int(width), "channels": 1, "dtype": "float32",
                  "layout": "NHWC", "batch": "any"},
        "channels": "grayscale: RGB -> L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2 luma), alpha dropped",
        "bit_depth": "8-bit: float images in [0, 1] times 255; integer images above 255 min-max scaled per image",
        "resize": {"method": "bilinear", "antialias_when_shrinking": True, "aspect": "stretched, no crop"},
        "scaling": {"divide_by": 255.0, "range": [0.0, 1.0]},
        "explanation_regions": {"grid": [len(row_edges) - 1, len(column_edges) - 1],
                                "row_edges": row_edges.tolist(), "column_edges": column_edges.tolist(),
                                "names": "region r<row>c<column>, r0c0 at the top left"},
        "how_to_use": HOW_TO_USE,
        **(extra or {}),
    }


def target_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The images' own size when they share one no larger than MAX_SIDE, else MAX_SIDE x MAX_SIDE."""
    distinct = set(sizes)
    if len(distinct) == 1:
        height, width = next(iter(distinct))
        if max(height, width) <= MAX_SIDE:
            return int(height), int(width)
    return MAX_SIDE, MAX_SIDE
