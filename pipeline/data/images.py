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

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.image_conversion import (  # noqa: F401 - re-exported: the conversion's old home
    FORMAT,
    HOW_TO_USE,
    MAX_SIDE,
    MIN_SIDE,
    REGION_GRID,
    box_blur,
    convert_image,
    encode_images,
    image_preprocessing,
    image_regions,
    region_bounds,
    region_name,
    resize_uint8,
    target_size,
    to_grayscale_uint8,
)
from pipeline.data.image_metadata import GROUP_NAME_TOKENS, MetadataJoin, join_metadata  # noqa: F401
from pipeline.data.image_read import (  # noqa: F401 - re-exported: the readers' old home
    IMAGE_EXTENSIONS,
    MEDMNIST_POSITIVE,
    NEGATIVE_CLASS_NAMES,
    NPZ_SPLITS,
    SPLIT_FOLDERS,
    SPLITS,
    ImageCollection,
    read_image_folder,
    read_npz,
)
from pipeline.data.splitting import (
    SPLIT_FRACTIONS,
    class_balance,
    domain_data,
    label_group_strata,
    make_splits,
    require_measurable_groups,
    split_by_cluster,
    stratified_partition,
    stratified_sample,
)
from pipeline.domain import DataSource, DomainData
from pipeline.errors import InputError

MIN_CLASS_IMAGES = 5
MIN_STRATUM_IMAGES = 5
EXPOSURE_COLUMN = "exposure"
EXPOSURE_GROUPS = ("dark", "medium", "bright")


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


# --------------------------------------------------------------------------- subsample and split


def _subsample(collection: ImageCollection, labels: np.ndarray, max_rows: int, seed: int,
               notes: list[str]) -> np.ndarray:
    """Sorted indices of a subsample stratified on label x first group column (per split when the
    source fixes the splits, each keeping its share, at least one image)."""
    first_group = collection.groups.iloc[:, 0] if collection.groups is not None else None
    rng = np.random.default_rng([seed, 1])
    if collection.splits is None:
        keep = stratified_sample(label_group_strata(labels, first_group), int(max_rows), rng)
    else:
        chosen = []
        for name in SPLITS:
            members = np.flatnonzero(collection.splits == name)
            share = int(round(max_rows * members.size / len(labels)))
            strata = label_group_strata(labels[members], first_group.iloc[members].reset_index(drop=True)
                                        if first_group is not None else None)
            chosen.append(members[stratified_sample(strata, max(share, 1), rng)])
        keep = np.sort(np.concatenate(chosen))
    stratified = "label" + (f" x {collection.groups.columns[0]!r}" if first_group is not None else "")
    notes.append(f"kept a stratified subsample of {keep.size} of {len(labels)} images (--max-rows {max_rows}), "
                 f"stratified on {stratified}" + (", per split" if collection.splits is not None else ""))
    return keep


def _given_splits(split_of: np.ndarray, labels: np.ndarray, clusters: np.ndarray | None, source: str,
                  positive_class: str, notes: list[str]) -> list[np.ndarray]:
    """The source's own train / validation / test, checked (both classes in each), not re-split."""
    parts = [np.flatnonzero(split_of == name) for name in SPLITS]
    for name, index in zip(SPLITS, parts):
        if index.size == 0:
            raise InputError(f"the {name} split holds no images",
                             fix="give every split (train, validation, test) some images of both classes",
                             source=source)
        _check_classes(labels[index], f"the {name} split", source, positive_class)
    notes.append("splits kept as given by the source (train / validation / test), not re-split; "
                 + ", ".join(f"{name} {index.size}" for name, index in zip(SPLITS, parts)))
    if clusters is not None:
        shared = set(clusters[parts[0]]) & (set(clusters[parts[1]]) | set(clusters[parts[2]]))
        if shared:
            notes.append(f"{len(shared)} units (patients) have images in the training split and in the validation "
                         f"or test split of the source: their test images are not independent of training")
    return parts


def _unit_split(clusters: np.ndarray, labels: np.ndarray, seed: int, source: str, positive_class: str,
                notes: list[str]) -> list[np.ndarray]:
    """60 / 20 / 20 by unit (patient): each unit's images stay in one split."""
    parts = split_by_cluster(clusters, labels, np.random.default_rng([seed, 2]))
    for name, index in zip(SPLITS, parts):
        _check_classes(labels[index], f"the {name} split (split by unit)", source, positive_class)
    notes.append(f"split 60/20/20 by unit train/validation/test (seed {seed}): the "
                 f"{np.unique(clusters).size:,} units (patients) each stay in one split")
    return parts


def _stratified_split(labels: np.ndarray, groups: pd.DataFrame | None, seed: int, notes: list[str]
                      ) -> list[np.ndarray]:
    """60 / 20 / 20 stratified on label x first group column (the label alone when a stratum is too small)."""
    first = groups.iloc[:, 0] if groups is not None else None
    strata = label_group_strata(labels, first)
    _, sizes = np.unique(strata, return_counts=True)
    if first is not None and sizes.min() < MIN_STRATUM_IMAGES:
        strata = label_group_strata(labels, None)
        how = f"on the label (some label x {groups.columns[0]!r} combinations have fewer than " \
              f"{MIN_STRATUM_IMAGES} images)"
    else:
        how = "on label" + (f" x {groups.columns[0]!r}" if first is not None else "")
    parts = stratified_partition(strata, SPLIT_FRACTIONS, np.random.default_rng([seed, 2]))
    notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified {how}")
    return parts


# --------------------------------------------------------------------------- assemble


def assemble(collection: ImageCollection, *, seed: int, max_rows: int | None, min_group_size: int) -> DomainData:
    """Subsample, split, group and check a collection; fit the (fixed) preprocessing spec.

    The steps: check both classes, subsample, split (the source's splits, by unit, or
    stratified), add the exposure proxy when there are no groups, check the test groups,
    assemble.
    """
    notes = list(collection.notes)
    source = collection.source
    labels = collection.labels.astype(np.int64)
    _check_classes(labels, "the data", source, collection.positive_class)
    keep = np.arange(len(labels))
    if max_rows is not None and len(labels) > max_rows:
        keep = _subsample(collection, labels, max_rows, seed, notes)
    images = collection.images[keep]
    labels = labels[keep]
    groups = collection.groups.iloc[keep].reset_index(drop=True) if collection.groups is not None else None
    clusters = None if collection.clusters is None else np.asarray(collection.clusters, dtype=object)[keep]
    if collection.splits is not None:
        parts = _given_splits(collection.splits[keep], labels, clusters, source, collection.positive_class, notes)
    elif clusters is not None:
        parts = _unit_split(clusters, labels, seed, source, collection.positive_class, notes)
    else:
        parts = _stratified_split(labels, groups, seed, notes)
    if groups is None:
        exposure, exposure_notes = _exposure_groups(images, parts[0])
        groups = pd.DataFrame({EXPOSURE_COLUMN: exposure})
        notes.extend(exposure_notes)
    columns = list(groups.columns)
    group_columns = {column: groups[column] for column in columns}
    require_measurable_groups(
        group_columns, parts[2], min_group_size, column_role="group column", unit="images",
        remedy=lambda group: (f"merge group {group!r} into a neighbouring group in the metadata, use more images"
                              if collection.groups is not None else "use more images"),
        max_rows=max_rows, source=source)

    height, width = images.shape[1:]
    splits = make_splits(parts, raw_of=lambda index: images[index], labels=labels, groups=group_columns,
                         clusters=clusters)
    spec = image_preprocessing(height, width, extra={
        "label": {"name": collection.label_name, "positive_class": collection.positive_class},
        "sensitive_columns": columns,
        **collection.extra_spec,
    })
    json.dumps(spec)
    notes.append(f"images converted to {height} x {width} grayscale, scaled to [0, 1] (the spec ships as "
                 f"models/preprocessing.json)")
    data_source = DataSource(kind=collection.kind, description=collection.description, path=collection.path,
                             fingerprint=collection.fingerprint, rows=int(len(collection.labels)), notes=tuple(notes))
    balance = class_balance(splits, positive_rate=float(labels.mean()), positives=int(labels.sum()))
    return domain_data(splits, preprocessing=spec,
                       feature_names=[f"pixel r{r} c{c}" for r in range(height) for c in range(width)],
                       feature_groups=image_regions(height, width), sensitive_columns=columns,
                       label_name=collection.label_name, positive_class=collection.positive_class,
                       source=data_source, balance=balance)


# --------------------------------------------------------------------------- entry point


def load_images(path: str | os.PathLike, *, seed: int = 0, max_rows: int | None = None, min_group_size: int = 20,
                metadata_path: str | None = None, label_column: str | None = None,
                sensitive_columns: Sequence[str] = (), skip_unreadable: bool = False,
                cluster_column: str | None = None, positive_label: str | None = None) -> DomainData:
    """A user's `.npz` or image folder (plus optional metadata CSV) -> DomainData. positive_label
    (--positive-label): the class subfolder, .npz class or --label value meaning 1, every other 0."""
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
                                       cluster_column=cluster_column, positive_label=positive_label)
    elif p.suffix.lower() == ".npz":
        collection = read_npz(p, metadata_path=metadata_path, label_column=label_column,
                              sensitive_columns=sensitive_columns, cluster_column=cluster_column,
                              positive_label=positive_label)
    else:
        raise InputError(f"expected a .npz file or a folder of images, got a {p.suffix or 'extensionless'} file",
                         fix="pass a MedMNIST-style .npz, or a folder with one subfolder per class", source=str(path))
    return assemble(collection, seed=seed, max_rows=max_rows, min_group_size=min_group_size)
