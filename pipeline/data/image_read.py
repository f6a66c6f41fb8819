"""Reading images: the MedMNIST `.npz` layout and a folder of class subfolders -> `ImageCollection`.

Every image is converted to the target size on reading (`image_conversion`); a metadata
CSV, when given, adds group columns, labels or units (`image_metadata`). See "Formats" in
`pipeline.data.images` for every rule.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.image_conversion import MAX_SIDE, MIN_SIDE, convert_image, target_size
from pipeline.data.image_metadata import join_metadata
from pipeline.data.splitting import SPLIT_NAMES as SPLITS
from pipeline.data.splitting import quote_list
from pipeline.errors import InputError

NPZ_SPLITS = {"train": "train", "val": "validation", "test": "test"}
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "dev": "validation", "test": "test", "testing": "test"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
NEGATIVE_CLASS_NAMES = {"normal", "negative", "healthy", "benign", "nofinding", "nofindings", "0", "no", "false",
                        "absent", "control", "clear", "none"}
# MedMNIST binary sets whose label 1 has a known meaning (file stem -> meaning of 1).
MEDMNIST_POSITIVE = {"pneumoniamnist": "pneumonia"}


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


def _npz_arrays(archive: Any, source: str) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[str]]:
    """(images per split, labels per split, each image's split, each image's id "<split>_<index>")."""
    keys = set(archive.files)
    expected = [f"{split}_{kind}" for split in NPZ_SPLITS for kind in ("images", "labels")]
    missing = [key for key in expected if key not in keys]
    if missing:
        raise InputError(f"the archive lacks {quote_list(missing)}; it holds {quote_list(sorted(keys)) or 'nothing'}",
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
    return images, labels, splits, ids


def _npz_binary_labels(all_labels: np.ndarray, source: str, notes: list[str],
                       positive_label: str | None = None) -> np.ndarray:
    """0/1 labels: exactly two classes, the larger value -> 1 (noted unless they are 0 and 1);
    with positive_label, that class -> 1 and every other -> 0."""
    if positive_label is not None:
        from pipeline.data.labels import one_vs_rest

        labels, _, note = one_vs_rest([str(v) for v in all_labels.reshape(-1).tolist()], positive_label,
                                      what="the .npz labels", source=source)
        notes.append(note)
        return labels
    values, counts = np.unique(all_labels, return_counts=True)
    if values.size != 2:
        shown = ", ".join(f"{v} ({c} images)" for v, c in zip(values.tolist(), counts.tolist()))
        raise InputError(
            f"the labels hold {values.size} class{'es' if values.size != 1 else ''} ({shown}); expected exactly two",
            fix=("use a binary dataset (e.g. PneumoniaMNIST), or map the classes to 0 and 1 (1 = the finding to "
                 "detect) and save a new .npz") if values.size > 2 else
                "use a dataset whose labels hold both classes (0 and 1)",
            source=source)
    if values.tolist() != [0, 1]:
        notes.append(f"labels {values[0]} -> 0 and {values[1]} -> 1")
    return (all_labels == values[1]).astype(np.int64)


def _npz_converted(images: list[np.ndarray], source: str, notes: list[str]) -> np.ndarray:
    """Every split's images converted to the target size, stacked (noted)."""
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
    first_shape = images[0].shape
    notes.append(f"images are {first_shape[1]} x {first_shape[2]}"
                 + (f" with {first_shape[3]} channels" if len(first_shape) == 4 else " grayscale")
                 + (f", resized to {height} x {width}" if (height, width) != tuple(first_shape[1:3]) else
                    ", kept at their size"))
    return np.concatenate(converted)


def read_npz(path: str | os.PathLike, *, metadata_path: str | None = None, label_column: str | None = None,
             sensitive_columns: Sequence[str] = (), cluster_column: str | None = None,
             positive_label: str | None = None) -> ImageCollection:
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
    images, labels, splits, ids = _npz_arrays(archive, source)
    all_labels = np.concatenate(labels)
    notes = [f"read {len(all_labels)} images from the MedMNIST .npz layout (train {len(labels[0])}, "
             f"val {len(labels[1])}, test {len(labels[2])})"]
    binary = _npz_binary_labels(all_labels, source, notes, positive_label)
    stack = _npz_converted(images, source, notes)
    meaning = MEDMNIST_POSITIVE.get(p.stem.lower())
    if positive_label is not None:
        meaning = f"class {positive_label} (--positive-label)"
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
    first_shape = images[0].shape
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
                f"the folder holds subfolders {quote_list([p.name for p in top])}: expected either one subfolder "
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


_Entry = tuple[Path, str | None, str | None]   # (file, class name or None, split or None)


def _read_pixels(image_files: list[_Entry], root: Path, skip_unreadable: bool, source: str,
                 notes: list[str]) -> tuple[list[np.ndarray], list[_Entry]]:
    """(converted pixels, their entries): sizes from the headers, then the target size, then the
    pixels; an unreadable file is an error, or skipped and counted with `skip_unreadable`."""
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
                f"cannot read {len(unreadable)} image file(s): {quote_list([str(u) for u in unreadable], 5)}",
                fix="replace or delete the file(s), or pass --skip-unreadable to skip unreadable files and count them",
                source=str(unreadable[0]))
        notes.append(f"skipped {len(unreadable)} unreadable image files (--skip-unreadable): "
                     f"{quote_list([str(u.relative_to(root)) for u in unreadable], 5)}")
    if not kept:
        raise InputError("none of the image files could be read", fix="check that the files open in an image viewer",
                         source=source)
    kept_sizes = sorted(kept_sizes)
    notes.append(f"read {len(kept)} images; sizes {quote_list([f'{h}x{w}' for h, w in kept_sizes], 4)}"
                 + (f"; converted to {height} x {width} grayscale" if kept_sizes != [(height, width)]
                    else "; kept at their size, grayscale"))
    return pixels, kept


def _folder_fingerprint(relative: list[Path], kept: list[_Entry]) -> str:
    """sha256 over every image's relative path and the sha256 of its bytes."""
    digest = hashlib.sha256()
    for r, (f, _, _) in zip(relative, kept):
        digest.update(r.as_posix().encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def read_image_folder(path: str | os.PathLike, *, metadata_path: str | None = None, label_column: str | None = None,
                      sensitive_columns: Sequence[str] = (), skip_unreadable: bool = False,
                      cluster_column: str | None = None, positive_label: str | None = None) -> ImageCollection:
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
                     f"(e.g. {quote_list(ignored, 3)})")
    if not image_files:
        raise InputError(f"no image files found (extensions {', '.join(sorted(IMAGE_EXTENSIONS))})",
                         fix="put PNG or JPEG images in one subfolder per class", source=source)
    pixels, kept = _read_pixels(image_files, root, skip_unreadable, source, notes)
    relative = [f.relative_to(root) for f, _, _ in kept]
    ids = [r.with_suffix("").as_posix() for r in relative]
    fingerprint = _folder_fingerprint(relative, kept)
    splits = np.asarray([s for _, _, s in kept], dtype=object) if kept[0][2] is not None else None

    groups = clusters = None
    if metadata_path is not None:
        alternates = {"file name": [r.name for r in relative], "file stem": [r.stem for r in relative],
                      "relative path": [r.as_posix() for r in relative]}
        joined = join_metadata(metadata_path, ids, alternates, sensitive_columns=sensitive_columns,
                               label_column=label_column, cluster_column=cluster_column,
                               positive_label=positive_label)
        groups, clusters = joined.groups, joined.clusters
        notes += joined.notes
        fingerprint = hashlib.sha256((fingerprint + joined.digest).encode()).hexdigest()
    if label_column is not None:
        labels, positive_class, label_name = joined.labels, f"{label_column} = {joined.positive_value}", label_column
    else:
        labels, positive_class, label_note = _folder_labels([c for _, c, _ in kept], source, positive_label)
        notes.append(label_note)
        label_name = "class"
    return ImageCollection(
        images=np.stack(pixels), labels=labels, ids=ids, groups=groups, splits=splits, label_name=label_name,
        positive_class=positive_class, source=source, kind="file",
        description=f"{root.name}/: {len(kept)} images" + (" in class subfolders" if label_column is None else ""),
        path=source, fingerprint=fingerprint, notes=notes, clusters=clusters)

def _folder_labels(classes: list[str], source: str, positive_label: str | None = None) -> tuple[np.ndarray, str, str]:
    if positive_label is not None:  # one class subfolder is the finding, every other is class 0
        from pipeline.data.labels import one_vs_rest

        labels, positive, note = one_vs_rest(list(classes), positive_label, what="the class subfolders",
                                             source=source)
        return labels, positive, note
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
