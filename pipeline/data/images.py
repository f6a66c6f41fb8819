"""Image data -> `DomainData`: the MedMNIST `.npz` layout, a folder of class subfolders with
an optional metadata CSV, and the one conversion every image goes through.

Every decision is written, in plain words, into `DataSource.notes`; every bad input raises
`InputError` naming the file, folder, column or value, and how to fix it.

The conversion (`convert_image`, applied by the loaders and again by `encode_images` from
the shipped spec, so a device can repeat it)
  * channels: grayscale. RGB(A) -> ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B
    (what Pillow's "L" mode does), alpha dropped; one channel kept as is.
  * bit depth: 8-bit. Float images in [0, 1] are multiplied by 255; integer images with
    values above 255 (16-bit X-rays) are min-max scaled to 0..255 per image.
  * size: resized to the target size with Pillow's bilinear filter (antialiased when
    shrinking), stretched, not cropped. The target is the images' own size when they all
    share one size no larger than 64 x 64 (MAX_SIDE), otherwise 64 x 64.
  * model input: float32 (N, height, width, 1), pixel / 255, so in [0, 1].

Formats
  * `.npz` (MedMNIST): `{train,val,test}_images` (N x H x W [x C], uint8) and
    `{train,val,test}_labels` (N x 1). The splits are kept as given (no re-split); the
    labels must hold exactly two classes. MedMNIST files carry no patient attributes.
  * a folder with one subfolder per class (`normal/`, `pneumonia/`), or with `train/`,
    `val/`, `test/` subfolders each holding the class subfolders (the split is then kept).
    The class whose name reads "normal" (or negative, healthy, benign, no finding, 0, ...)
    is label 0; otherwise the rarer class is 1. PNG, JPEG, BMP, GIF, TIFF, WebP and PGM
    files are read; other files are ignored (counted). An unreadable image is an error
    naming it, or, with `skip_unreadable`, skipped and counted.
  * a metadata CSV (optional, `--metadata`) mapping an image id to group columns, as
    HAM10000 and NIH ChestX-ray14 publish theirs: the id column is found by matching its
    values against the image file names, with or without extension (for a `.npz`, ids are
    "<split>_<index>", e.g. "train_0"). Every image needs a row; rows without an image are
    ignored (counted). Group columns: `--sensitive`, or else every column whose name says
    sex / gender, age, or site / hospital / centre / institution / scanner. Continuous ages
    are banded as in the tabular loader. With `--label COLUMN` the labels come from that
    metadata column (then the class subfolders are not needed).

Groups without metadata
  The audit needs at least one group column. When the data carry no patient attributes
  (a `.npz`, or a folder without `--metadata`) the images are grouped by `exposure`: the
  tercile of the image's mean brightness ("dark", "medium", "bright"), with cut points
  from the training split. It is an image-derived PROXY (acquisition and body habitus
  mix in it), not a patient attribute, and the notes say so.

Rows and splits
  `max_rows` keeps a stratified subsample (label x first group column; per split when the
  source fixes the splits). Otherwise the split is 60 / 20 / 20 train / validation / test,
  seeded, stratified on label x first group column (label only when a stratum is too
  small). Every group of every group column needs `min_group_size` test images.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.tabular import (
    _binary_label,
    _group_column,
    _quote_list,
    _split_by_cluster,
    _strata,
    _stratified_split,
    _stratified_subsample,
    _tokens,
    read_csv_file,
)
from pipeline.domain import DataSource, DomainData, Split
from pipeline.errors import InputError

FORMAT = "edgeaudit.image.v1"
MAX_SIDE = 64
MIN_SIDE = 8
REGION_GRID = 8
MIN_CLASS_IMAGES = 5
MIN_STRATUM_IMAGES = 5
EXPOSURE_COLUMN = "exposure"
EXPOSURE_GROUPS = ("dark", "medium", "bright")
SPLITS = ("train", "validation", "test")
NPZ_SPLITS = {"train": "train", "val": "validation", "test": "test"}
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "dev": "validation", "test": "test", "testing": "test"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
NEGATIVE_CLASS_NAMES = {"normal", "negative", "healthy", "benign", "nofinding", "nofindings", "0", "no", "false",
                        "absent", "control", "clear", "none"}
GROUP_NAME_TOKENS = {"sex": "sex", "gender": "sex", "age": "age", "site": "site", "hospital": "site",
                     "centre": "site", "center": "site", "institution": "site", "scanner": "site"}
# MedMNIST binary sets whose label 1 has a known meaning (file stem -> meaning of 1).
MEDMNIST_POSITIVE = {"pneumoniamnist": "pneumonia"}

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


# --------------------------------------------------------------------------- the loaded collection


@dataclass
class ImageCollection:
    """Every image of a source, converted to the target size, before subsampling and splitting."""

    images: np.ndarray                  # uint8 (N, H, W)
    labels: np.ndarray                  # int64 (N,)
    ids: list[str]
    groups: pd.DataFrame | None         # str columns, RangeIndex; None -> the exposure proxy
    splits: np.ndarray | None           # "train" / "validation" / "test" per image when the source fixes them
    label_name: str
    positive_class: str
    source: str                         # how errors name the data
    kind: str
    description: str
    path: str | None
    fingerprint: str
    notes: list[str] = field(default_factory=list)
    extra_spec: dict = field(default_factory=dict)
    clusters: np.ndarray | None = None  # the patient (unit) of each image, from --cluster-column


def _check_classes(labels: np.ndarray, where: str, source: str, positive_class: str) -> None:
    positives = int(labels.sum())
    for value, count in ((1, positives), (0, labels.size - positives)):
        if count < MIN_CLASS_IMAGES:
            meaning = positive_class if value == 1 else "the other class"
            raise InputError(
                f"{where} holds only {count} images of class {value} ({meaning}); at least {MIN_CLASS_IMAGES} "
                f"of each class are needed",
                fix="use data with more images of both classes (raise or drop --max-rows)", source=source)


def _exposure_groups(images: np.ndarray, train_index: np.ndarray) -> tuple[pd.Series, list[str]]:
    brightness = images.reshape(len(images), -1).mean(axis=1)
    cuts = np.quantile(brightness[train_index], [1 / 3, 2 / 3])
    band = np.searchsorted(cuts, brightness, side="right")
    groups = pd.Series(np.asarray(EXPOSURE_GROUPS, dtype=object)[band])
    note = (f"no patient attributes in the data: the audit groups images by {EXPOSURE_COLUMN!r}, the tercile of "
            f"mean image brightness (0-255) with cut points {cuts[0]:.1f} and {cuts[1]:.1f} from the training split "
            f"({', '.join(EXPOSURE_GROUPS)}). This is an image-derived PROXY (exposure, scanner and body habitus "
            f"mix in it), NOT a patient attribute; pass --metadata with sex / age / site columns for a patient audit")
    return groups, [note]


def assemble(collection: ImageCollection, *, seed: int, max_rows: int | None, min_group_size: int) -> DomainData:
    """Subsample, split, group and check a collection; fit the (fixed) preprocessing spec."""
    notes = list(collection.notes)
    source = collection.source
    labels = collection.labels.astype(np.int64)
    _check_classes(labels, "the data", source, collection.positive_class)
    first_group = collection.groups.iloc[:, 0] if collection.groups is not None else None
    keep = np.arange(len(labels))
    if max_rows is not None and len(labels) > max_rows:
        rng = np.random.default_rng([seed, 1])
        if collection.splits is None:
            keep = _stratified_subsample(_strata(labels, first_group), int(max_rows), rng)
        else:
            chosen = []
            for name in SPLITS:
                members = np.flatnonzero(collection.splits == name)
                share = int(round(max_rows * members.size / len(labels)))
                strata = _strata(labels[members], first_group.iloc[members].reset_index(drop=True)
                                 if first_group is not None else None)
                chosen.append(members[_stratified_subsample(strata, max(share, 1), rng)])
            keep = np.sort(np.concatenate(chosen))
        stratified = "label" + (f" x {collection.groups.columns[0]!r}" if first_group is not None else "")
        notes.append(f"kept a stratified subsample of {keep.size} of {len(labels)} images (--max-rows {max_rows}), "
                     f"stratified on {stratified}" + (", per split" if collection.splits is not None else ""))
    images = collection.images[keep]
    labels = labels[keep]
    groups = collection.groups.iloc[keep].reset_index(drop=True) if collection.groups is not None else None
    clusters = None if collection.clusters is None else np.asarray(collection.clusters, dtype=object)[keep]

    if collection.splits is not None:
        split_of = collection.splits[keep]
        parts = tuple(np.flatnonzero(split_of == name) for name in SPLITS)
        for name, index in zip(SPLITS, parts):
            if index.size == 0:
                raise InputError(f"the {name} split holds no images",
                                 fix="give every split (train, validation, test) some images of both classes",
                                 source=source)
            _check_classes(labels[index], f"the {name} split", source, collection.positive_class)
        notes.append("splits kept as given by the source (train / validation / test), not re-split; "
                     + ", ".join(f"{name} {index.size}" for name, index in zip(SPLITS, parts)))
        if clusters is not None:
            shared = set(clusters[parts[0]]) & (set(clusters[parts[1]]) | set(clusters[parts[2]]))
            if shared:
                notes.append(f"{len(shared)} units (patients) have images in the training split and in the validation "
                             f"or test split of the source: their test images are not independent of training")
    elif clusters is not None:
        parts = _split_by_cluster(clusters, labels, groups.iloc[:, 0], rng=np.random.default_rng([seed, 2]))
        for name, index in zip(SPLITS, parts):
            _check_classes(labels[index], f"the {name} split (split by unit)", source, collection.positive_class)
        notes.append(f"split 60/20/20 by unit train/validation/test (seed {seed}): the "
                     f"{np.unique(clusters).size:,} units (patients) each stay in one split")
    else:
        first = groups.iloc[:, 0] if groups is not None else None
        strata = _strata(labels, first)
        _, sizes = np.unique(strata, return_counts=True)
        if first is not None and sizes.min() < MIN_STRATUM_IMAGES:
            strata = _strata(labels, None)
            how = f"on the label (some label x {groups.columns[0]!r} combinations have fewer than " \
                  f"{MIN_STRATUM_IMAGES} images)"
        else:
            how = "on label" + (f" x {groups.columns[0]!r}" if first is not None else "")
        parts = _stratified_split(strata, np.random.default_rng([seed, 2]))
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified {how}")

    if groups is None:
        exposure, exposure_notes = _exposure_groups(images, parts[0])
        groups = pd.DataFrame({EXPOSURE_COLUMN: exposure})
        notes.extend(exposure_notes)
    columns = list(groups.columns)
    for column in columns:
        counts = groups[column].iloc[parts[2]].value_counts()
        small = [(g, int(counts.get(g, 0))) for g in sorted(groups[column].unique())
                 if counts.get(g, 0) < min_group_size]
        if small:
            listed = ", ".join(f"{g!r} has {n} images" for g, n in small)
            raise InputError(
                f"group column {column!r}: group {listed} in the test split, fewer than the {min_group_size} "
                f"needed to measure it (--min-group-size)",
                fix=((f"merge group {small[0][0]!r} into a neighbouring group in the metadata, use more images"
                      if collection.groups is not None else "use more images")
                     + (" (raise --max-rows)" if max_rows is not None else "")
                     + f", or lower --min-group-size (now {min_group_size})"),
                source=source)

    height, width = images.shape[1:]
    splits = []
    for index in parts:
        split_groups = pd.DataFrame({c: groups[c].iloc[index].to_numpy(dtype=object) for c in columns}).astype(str)
        splits.append(Split(raw=images[index], labels=labels[index], groups=split_groups,
                            clusters=None if clusters is None else clusters[index].astype(str)))
    train, validation, test = splits
    spec = image_preprocessing(height, width, extra={
        "label": {"name": collection.label_name, "positive_class": collection.positive_class},
        "sensitive_columns": columns,
        **collection.extra_spec,
    })
    json.dumps(spec)
    notes.append(f"images converted to {height} x {width} grayscale, scaled to [0, 1] (the spec ships as "
                 f"models/preprocessing.json)")
    regions = image_regions(height, width)
    feature_names = tuple(f"pixel r{r} c{c}" for r in range(height) for c in range(width))
    data_source = DataSource(kind=collection.kind, description=collection.description, path=collection.path,
                             fingerprint=collection.fingerprint, rows=int(len(collection.labels)), notes=tuple(notes))
    class_balance = {
        "positive_rate": float(labels.mean()),
        "positives": int(labels.sum()),
        **{f"{name}_rows": len(s) for name, s in zip(SPLITS, splits)},
        **{f"{name}_positive_rate": float(s.labels.mean()) for name, s in zip(SPLITS, splits)},
    }
    return DomainData(train=train, validation=validation, test=test, preprocessing=spec,
                      feature_names=feature_names, feature_groups=regions, sensitive_columns=tuple(columns),
                      label_name=collection.label_name, positive_class=collection.positive_class,
                      source=data_source, class_balance=class_balance)


# --------------------------------------------------------------------------- .npz (MedMNIST)


def _npz_images(array: np.ndarray, key: str, source: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[3] in (1, 3, 4):
        return array
    if array.ndim == 3:
        return array
    raise InputError(f"array {key!r} has shape {array.shape}; expected images as (N, height, width) or "
                     f"(N, height, width, channels) with 1, 3 or 4 channels",
                     fix="save the images as one array of shape (N, height, width) per split, as MedMNIST does",
                     source=source)


def _npz_labels(array: np.ndarray, key: str, source: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"array {key!r} has shape {array.shape}; expected one label per image, (N,) or (N, 1) "
                         f"(a multi-label set such as ChestMNIST needs one binary label chosen first)",
                         fix=f"save {key!r} as an (N, 1) array of 0/1 labels", source=source)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)) or \
            not np.all(np.mod(array, 1) == 0):
        raise InputError(f"array {key!r} holds values that are not whole-number class labels",
                         fix=f"save {key!r} as integer labels 0 and 1", source=source)
    return array.astype(np.int64)


def read_npz(path: str | os.PathLike, *, metadata_path: str | None = None, label_column: str | None = None,
             sensitive_columns: Sequence[str] = (), cluster_column: str | None = None) -> ImageCollection:
    """A MedMNIST-layout .npz -> ImageCollection with its splits kept."""
    source = str(path)
    p = Path(path)
    if label_column is not None:
        raise InputError(f"--label {label_column!r} was given, but a .npz carries its own labels",
                         fix="drop --label", source=source)
    data = p.read_bytes()
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read the file as a numpy .npz archive ({type(error).__name__}: {error})",
                         fix="pass a .npz saved with numpy.savez / savez_compressed (the MedMNIST layout)",
                         source=source) from None
    keys = set(archive.files)
    expected = [f"{split}_{kind}" for split in NPZ_SPLITS for kind in ("images", "labels")]
    missing = [key for key in expected if key not in keys]
    if missing:
        raise InputError(f"the archive lacks {_quote_list(missing)}; it holds {_quote_list(sorted(keys)) or 'nothing'}",
                         fix="use the MedMNIST layout: train_images, train_labels, val_images, val_labels, "
                             "test_images, test_labels", source=source)
    images, labels, splits, ids = [], [], [], []
    for split, name in NPZ_SPLITS.items():
        split_images = _npz_images(archive[f"{split}_images"], f"{split}_images", source)
        split_labels = _npz_labels(archive[f"{split}_labels"], f"{split}_labels", source)
        if len(split_images) != len(split_labels):
            raise InputError(f"{split}_images holds {len(split_images)} images but {split}_labels holds "
                             f"{len(split_labels)} labels; they must match one to one",
                             fix=f"save one label per image in {split}_labels", source=source)
        images.append(split_images)
        labels.append(split_labels)
        splits += [name] * len(split_labels)
        ids += [f"{split}_{i}" for i in range(len(split_labels))]
    all_labels = np.concatenate(labels)
    values, counts = np.unique(all_labels, return_counts=True)
    if values.size != 2:
        shown = ", ".join(f"{v} ({c} images)" for v, c in zip(values.tolist(), counts.tolist()))
        raise InputError(
            f"the labels hold {values.size} class{'es' if values.size != 1 else ''} ({shown}); expected exactly two",
            fix=("use a binary dataset (e.g. PneumoniaMNIST), or map the classes to 0 and 1 (1 = the finding to "
                 "detect) and save a new .npz") if values.size > 2 else
                "use a dataset whose labels hold both classes (0 and 1)",
            source=source)
    notes = [f"read {len(all_labels)} images from the MedMNIST .npz layout (train {len(labels[0])}, "
             f"val {len(labels[1])}, test {len(labels[2])})"]
    if values.tolist() != [0, 1]:
        notes.append(f"labels {values[0]} -> 0 and {values[1]} -> 1")
    binary = (all_labels == values[1]).astype(np.int64)
    sizes = [tuple(int(d) for d in a.shape[1:3]) for a in images]
    height, width = target_size(sizes)
    if min(height, width) < MIN_SIDE:
        raise InputError(f"the images are {height} x {width} pixels; at least {MIN_SIDE} x {MIN_SIDE} are needed",
                         fix="use larger images", source=source)
    converted = []
    for split_images in images:
        if split_images.dtype == np.uint8 and split_images.ndim == 3 and split_images.shape[1:] == (height, width):
            converted.append(split_images)
        else:
            converted.append(np.stack([convert_image(image, height, width) for image in split_images]))
    stack = np.concatenate(converted)
    first_shape = images[0].shape
    notes.append(f"images are {first_shape[1]} x {first_shape[2]}"
                 + (f" with {first_shape[3]} channels" if len(first_shape) == 4 else " grayscale")
                 + (f", resized to {height} x {width}" if (height, width) != tuple(first_shape[1:3]) else
                    ", kept at their size"))
    meaning = MEDMNIST_POSITIVE.get(p.stem.lower())
    positive_class = meaning or "label 1"
    if meaning:
        notes.append(f"label 1 means {meaning!r} (MedMNIST's convention for {p.name})")
    groups = clusters = None
    fingerprint = hashlib.sha256(data).hexdigest()
    if metadata_path is not None:
        joined = join_metadata(metadata_path, ids, {}, sensitive_columns=sensitive_columns,
                               cluster_column=cluster_column)
        groups, clusters = joined.groups, joined.clusters
        notes += joined.notes
        fingerprint = hashlib.sha256((fingerprint + joined.digest).encode()).hexdigest()
    return ImageCollection(
        images=stack, labels=binary, ids=ids, groups=groups, splits=np.asarray(splits, dtype=object),
        label_name="label", positive_class=positive_class, source=source, kind="file",
        description=f"{p.name}: {len(binary)} images ({first_shape[1]} x {first_shape[2]}), MedMNIST layout",
        path=source, fingerprint=fingerprint, notes=notes, clusters=clusters)


# --------------------------------------------------------------------------- folder of images


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name.startswith("__")


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not _is_hidden(p))


def _files_under(path: Path) -> list[Path]:
    """Every file below `path`, hidden files and folders (".x", "__MACOSX") left out."""
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith((".", "__")) for part in p.relative_to(path).parts))


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            return int(height), int(width)
    except Exception:  # noqa: BLE001 - any failure means "unreadable", reported with the file name below
        return None


def _read_image(path: Path, height: int, width: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.draft("L", (width, height))   # JPEG: decode at a reduced scale when much larger
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            array = np.asarray(image)        # more than 8 bits: the conversion scales the values
        elif image.mode in ("L", "LA", "1"):
            array = np.asarray(image.convert("L"))
        else:
            array = np.asarray(image.convert("RGB"))
    return convert_image(array, height, width)


def _folder_files(root: Path, source: str, *, labels_from_metadata: bool
                  ) -> tuple[list[tuple[Path, str | None, str | None]], list[str]]:
    """(file, class name or None, split or None) for every file of the layout; notes."""
    notes: list[str] = []
    top = _subfolders(root)
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith((".", "__"))]
    if not top and not loose:
        raise InputError("the folder is empty: no images and no subfolders",
                         fix="put the images in one subfolder per class, e.g. <folder>/normal/ and "
                             "<folder>/pneumonia/", source=source)
    if labels_from_metadata:
        return [(f, None, None) for f in _files_under(root)], notes
    if not top:
        raise InputError(f"found {len(loose)} files directly in the folder but no class subfolders",
                         fix="put the images in one subfolder per class, e.g. <folder>/normal/ and "
                             "<folder>/pneumonia/ (or pass --metadata with --label naming a label column)",
                         source=source)
    if loose:
        notes.append(f"ignored {len(loose)} files lying directly in the folder, outside the class subfolders")
    split_of = {p: SPLIT_FOLDERS.get(p.name.lower()) for p in top}
    files: list[tuple[Path, str | None, str | None]] = []
    if any(split_of.values()):
        if sorted(filter(None, split_of.values())) != sorted(SPLITS) or not all(split_of.values()):
            raise InputError(
                f"the folder holds subfolders {_quote_list([p.name for p in top])}: expected either one subfolder "
                f"per class, or exactly train/, val/ and test/, each holding the class subfolders",
                fix="arrange the images as <folder>/<class>/<image> or <folder>/<train|val|test>/<class>/<image>",
                source=source)
        for split_folder, split in split_of.items():
            for class_folder in _subfolders(split_folder):
                files += [(f, class_folder.name, split) for f in _files_under(class_folder)]
        notes.append("the folder holds train/, val/ and test/ subfolders: that split is kept")
    else:
        for class_folder in top:
            files += [(f, class_folder.name, None) for f in _files_under(class_folder)]
    return files, notes


def read_image_folder(path: str | os.PathLike, *, metadata_path: str | None = None, label_column: str | None = None,
                      sensitive_columns: Sequence[str] = (), skip_unreadable: bool = False,
                      cluster_column: str | None = None) -> ImageCollection:
    """A folder of class subfolders (optionally under train/val/test) -> ImageCollection."""
    root = Path(path)
    source = str(path)
    if label_column is not None and metadata_path is None:
        raise InputError("--label names a metadata column, but no --metadata file was given",
                         fix="pass --metadata CSV with that column, or drop --label to take the classes from the "
                             "subfolder names", source=source)
    files, notes = _folder_files(root, source, labels_from_metadata=label_column is not None)
    image_files = [(f, c, s) for f, c, s in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    ignored = [f.name for f, _, _ in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
    if ignored:
        notes.append(f"ignored {len(ignored)} files that are not images by their extension "
                     f"(e.g. {_quote_list(ignored, 3)})")
    if not image_files:
        raise InputError(f"no image files found (extensions {', '.join(sorted(IMAGE_EXTENSIONS))})",
                         fix="put PNG or JPEG images in one subfolder per class", source=source)

    # sizes from the headers, then the target size, then the pixels
    readable, unreadable, sizes = [], [], []
    for entry in image_files:
        size = _image_size(entry[0])
        if size is None:
            unreadable.append(entry[0])
        else:
            readable.append(entry)
            sizes.append(size)
    height, width = target_size(sizes) if sizes else (MAX_SIDE, MAX_SIDE)
    if min(height, width) < MIN_SIDE:
        raise InputError(f"the images are {height} x {width} pixels; at least {MIN_SIDE} x {MIN_SIDE} are needed",
                         fix="use larger images", source=source)
    pixels, kept, kept_sizes = [], [], set()
    for entry, size in zip(readable, sizes):
        try:
            pixels.append(_read_image(entry[0], height, width))
            kept.append(entry)
            kept_sizes.add(size)
        except Exception:  # noqa: BLE001 - any failure makes the file unreadable; named below
            unreadable.append(entry[0])
    if unreadable:
        unreadable.sort()
        if not skip_unreadable:
            raise InputError(
                f"cannot read {len(unreadable)} image file(s): {_quote_list([str(u) for u in unreadable], 5)}",
                fix="replace or delete the file(s), or pass --skip-unreadable to skip unreadable files and count them",
                source=str(unreadable[0]))
        notes.append(f"skipped {len(unreadable)} unreadable image files (--skip-unreadable): "
                     f"{_quote_list([str(u.relative_to(root)) for u in unreadable], 5)}")
    if not kept:
        raise InputError("none of the image files could be read", fix="check that the files open in an image viewer",
                         source=source)
    kept_sizes = sorted(kept_sizes)
    notes.append(f"read {len(kept)} images; sizes {_quote_list([f'{h}x{w}' for h, w in kept_sizes], 4)}"
                 + (f"; converted to {height} x {width} grayscale" if kept_sizes != [(height, width)]
                    else "; kept at their size, grayscale"))
    relative = [f.relative_to(root) for f, _, _ in kept]
    ids = [r.with_suffix("").as_posix() for r in relative]
    digest = hashlib.sha256()
    for r, (f, _, _) in zip(relative, kept):
        digest.update(r.as_posix().encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    fingerprint = digest.hexdigest()
    splits = np.asarray([s for _, _, s in kept], dtype=object) if kept[0][2] is not None else None

    groups = clusters = None
    if metadata_path is not None:
        alternates = {"file name": [r.name for r in relative], "file stem": [r.stem for r in relative],
                      "relative path": [r.as_posix() for r in relative]}
        joined = join_metadata(metadata_path, ids, alternates, sensitive_columns=sensitive_columns,
                               label_column=label_column, cluster_column=cluster_column)
        groups, clusters = joined.groups, joined.clusters
        notes += joined.notes
        fingerprint = hashlib.sha256((fingerprint + joined.digest).encode()).hexdigest()
    if label_column is not None:
        labels, positive_class, label_name = joined.labels, f"{label_column} = {joined.positive_value}", label_column
    else:
        labels, positive_class, label_note = _folder_labels([c for _, c, _ in kept], source)
        notes.append(label_note)
        label_name = "class"
    return ImageCollection(
        images=np.stack(pixels), labels=labels, ids=ids, groups=groups, splits=splits, label_name=label_name,
        positive_class=positive_class, source=source, kind="file",
        description=f"{root.name}/: {len(kept)} images" + (" in class subfolders" if label_column is None else ""),
        path=source, fingerprint=fingerprint, notes=notes, clusters=clusters)


def _folder_labels(classes: list[str], source: str) -> tuple[np.ndarray, str, str]:
    unique, counts = np.unique(np.asarray(classes, dtype=str), return_counts=True)
    names = [str(name) for name in unique]
    count_of = dict(zip(names, counts.tolist()))
    if len(names) == 1:
        raise InputError(f"only one class subfolder holds images ({names[0]!r}, {counts[0]} images); a classifier "
                         f"needs two",
                         fix="add a second subfolder holding the images of the other class (e.g. normal/ and "
                             "pneumonia/)", source=source)
    if len(names) > 2:
        shown = ", ".join(f"{n!r} ({count_of[n]} images)" for n in names[:8])
        raise InputError(f"found {len(names)} class subfolders ({shown}); expected exactly two",
                         fix="keep two subfolders, the negative class (e.g. normal/) and the positive class, merging "
                             "or removing the others", source=source)
    negative_like = [n for n in names if _normalised(n) in NEGATIVE_CLASS_NAMES]
    if len(negative_like) == 1:
        negative = negative_like[0]
        positive = next(n for n in names if n != negative)
        why = f"{negative!r} reads as the normal class"
    else:
        a, b = sorted(names, key=lambda n: (-count_of[n], n))
        if count_of[a] == count_of[b]:
            positive, negative, why = max(a, b), min(a, b), "equally frequent: the name sorting last"
        else:
            positive, negative, why = b, a, "the rarer class"
    labels = (np.asarray(classes, dtype=str) == positive).astype(np.int64)
    note = (f"classes from the subfolder names: {negative!r} ({count_of[negative]} images) -> 0, {positive!r} "
            f"({count_of[positive]} images) -> 1 ({why})")
    return labels, positive, note


# --------------------------------------------------------------------------- metadata CSV


@dataclass(frozen=True)
class MetadataJoin:
    groups: pd.DataFrame           # one str column per group column, aligned with the image ids
    labels: np.ndarray | None      # with label_column
    positive_value: str | None
    notes: list[str]
    digest: str                    # sha256 of the CSV bytes
    clusters: np.ndarray | None = None  # with cluster_column: each image's unit (a patient id), str


def _default_group_columns(columns: Sequence[str]) -> list[str]:
    chosen, kinds = [], set()
    for column in columns:
        tokens = set(_tokens(column))
        for token, kind in GROUP_NAME_TOKENS.items():
            if token in tokens and kind not in kinds:
                chosen.append(column)
                kinds.add(kind)
                break
    return chosen


def join_metadata(metadata_path: str, ids: list[str], alternates: dict[str, list[str]], *,
                  sensitive_columns: Sequence[str] = (), label_column: str | None = None,
                  cluster_column: str | None = None) -> MetadataJoin:
    """Group columns (and labels, with label_column) for every image id, from a metadata CSV."""
    frame, digest, read_notes = read_csv_file(metadata_path)
    source = str(metadata_path)
    notes = [f"metadata {Path(metadata_path).name}: {len(frame)} rows, {frame.shape[1]} columns", *read_notes]
    frame.columns = [str(c).strip() for c in frame.columns]
    # a key that names two images (the same file name in two class folders) cannot identify them
    keys = {kind: values for kind, values in {"image id": ids, **alternates}.items()
            if len(set(values)) == len(values)}
    best: tuple[int, str, str] | None = None
    for column in frame.columns:
        values = set(frame[column].dropna().astype(str).str.strip())
        for kind, candidates in keys.items():
            matches = sum(1 for c in candidates if c in values)
            if matches and (best is None or matches > best[0]):
                best = (matches, column, kind)
    if best is None:
        examples = list(alternates.get("file name", ids))[:3]
        raise InputError(
            f"no column of the metadata holds the image ids: the images are named like {_quote_list(examples)}, "
            f"the metadata columns are {_quote_list(list(frame.columns), 20)}",
            fix="add a column holding each image's file name (with or without extension) to the metadata",
            source=source)
    _, id_column, kind = best
    candidates = keys[kind]
    id_values = frame[id_column].astype(str).str.strip()
    wanted = set(candidates)
    repeated = id_values[id_values.duplicated() & id_values.isin(wanted)]
    if len(repeated):
        raise InputError(f"metadata column {id_column!r} lists image {repeated.iloc[0]!r} more than once "
                         f"({len(repeated)} repeated ids)", fix="keep one row per image in the metadata", source=source)
    position = dict(zip(id_values, range(len(frame))))
    missing = [c for c in candidates if c not in position]
    if missing:
        raise InputError(
            f"the images and the metadata do not match: {len(missing)} of {len(candidates)} images have no row "
            f"(matched by {kind} in column {id_column!r}), e.g. {_quote_list(missing, 5)}",
            fix="add a metadata row for every image, or remove the images that have none", source=source)
    rows = frame.iloc[[position[c] for c in candidates]].reset_index(drop=True)
    unused = len(frame) - len(candidates)
    notes.append(f"metadata matched to the images by {kind} in column {id_column!r}"
                 + (f"; {unused} metadata rows without an image were ignored" if unused else ""))
    available = [c for c in frame.columns if c != id_column]
    columns = list(dict.fromkeys(str(c) for c in sensitive_columns)) or _default_group_columns(
        [c for c in available if c != label_column])
    if not columns:
        raise InputError(f"no group columns found in the metadata; its columns are {_quote_list(available, 20)}",
                         fix="pass --sensitive naming the metadata columns to audit by (e.g. --sensitive sex age site)",
                         source=source)
    for column in columns + ([label_column] if label_column else []) + ([cluster_column] if cluster_column else []):
        if column not in frame.columns:
            raise InputError(f"column {column!r} not found in the metadata; its columns are "
                             f"{_quote_list(available, 20)}",
                             fix="pass column names spelled exactly as in the metadata header", source=source)
    if not sensitive_columns:
        notes.append(f"group columns chosen by their names: {_quote_list(columns)} (pass --sensitive to choose)")
    groups = {}
    for column in columns:
        if rows[column].isna().all():
            raise InputError(f"group column {column!r} has no values for these images",
                             fix="fill in the column, or pass other columns with --sensitive", source=source)
        groups[column], group_notes = _group_column(rows[column], column)
        notes += group_notes
    def require_values(column: str, role: str, fix: str) -> None:
        empty = rows[column].isna().to_numpy()
        if empty.any():
            raise InputError(f"{role} column {column!r} is empty for {int(empty.sum())} images, e.g. "
                             f"{_quote_list([candidates[i] for i in np.flatnonzero(empty)[:3]])}",
                             fix=fix, source=source)

    labels = positive = None
    if label_column is not None:
        require_values(label_column, "label", "fill in the label of every image")
        labels, positive, label_note = _binary_label(rows[label_column], label_column, source)
        notes.append(label_note)
    clusters = None
    if cluster_column is not None:
        require_values(cluster_column, "cluster", "fill in every image's patient (or other unit) id")
        clusters = rows[cluster_column].astype(str).str.strip().to_numpy(dtype=object)
    groups_frame = pd.DataFrame({c: g.to_numpy(dtype=object) for c, g in groups.items()}).astype(str)
    return MetadataJoin(groups=groups_frame, labels=labels, positive_value=positive, notes=notes, digest=digest,
                        clusters=clusters)


# --------------------------------------------------------------------------- entry point


def load_images(path: str | os.PathLike, *, seed: int = 0, max_rows: int | None = None, min_group_size: int = 20,
                metadata_path: str | None = None, label_column: str | None = None,
                sensitive_columns: Sequence[str] = (), skip_unreadable: bool = False,
                cluster_column: str | None = None) -> DomainData:
    """A user's `.npz` or image folder (plus optional metadata CSV) -> DomainData."""
    p = Path(path)
    if not p.exists():
        raise InputError("file or folder not found", fix="check the path given with --data", source=str(path))
    if cluster_column is not None and metadata_path is None:
        raise InputError("--cluster-column names a metadata column, but no --metadata file was given",
                         fix="pass --metadata CSV holding each image's patient id, or drop --cluster-column")
    if metadata_path is not None and not Path(metadata_path).is_file():
        raise InputError("metadata file not found", fix="check the path given with --metadata",
                         source=str(metadata_path))
    if p.is_dir():
        collection = read_image_folder(p, metadata_path=metadata_path, label_column=label_column,
                                       sensitive_columns=sensitive_columns, skip_unreadable=skip_unreadable,
                                       cluster_column=cluster_column)
    elif p.suffix.lower() == ".npz":
        collection = read_npz(p, metadata_path=metadata_path, label_column=label_column,
                              sensitive_columns=sensitive_columns, cluster_column=cluster_column)
    else:
        raise InputError(f"expected a .npz file or a folder of images, got a {p.suffix or 'extensionless'} file",
                         fix="pass a MedMNIST-style .npz, or a folder with one subfolder per class", source=str(path))
    return assemble(collection, seed=seed, max_rows=max_rows, min_group_size=min_group_size)
