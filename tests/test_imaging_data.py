"""Image loaders, the conversion every image goes through, and the default data (no TensorFlow).

Every fixture is a tiny image set the tests write themselves (Pillow PNGs, numpy .npz).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.data import imaging_generator as generator
from pipeline.data.images import (
    EXPOSURE_COLUMN,
    FORMAT,
    box_blur,
    convert_image,
    encode_images,
    image_preprocessing,
    image_regions,
    load_images,
    target_size,
)
from pipeline.errors import InputError

REAL_NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "medical_imaging" / "pneumoniamnist.npz"


# --------------------------------------------------------------------------- fixtures


def tiny_images(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, size, size): class 1 has a bright blob, class 0 none; labels alternate."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int64)
    images = rng.integers(20, 120, size=(n, size, size)).astype(np.uint8)
    images[labels == 1, size // 4:size // 2, size // 4:size // 2] = 230
    return images, labels


def write_npz(path: Path, sizes=(60, 20, 20), size: int = 16, classes: int = 2, **overrides) -> Path:
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        images, labels = tiny_images(n, size, seed=n)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (np.arange(n) % classes).reshape(-1, 1).astype(np.uint8)
    arrays.update(overrides)
    np.savez_compressed(path, **arrays)
    return path


def write_folder(root: Path, classes: dict[str, int], *, size: int = 20, rgb_every: int = 0, odd_size_every: int = 0,
                 split: str | None = None) -> list[str]:
    """PNG files root/[split/]<class>/<class>_<i>.png; returns the file stems."""
    stems = []
    for index, (name, count) in enumerate(classes.items()):
        folder = root / split / name if split else root / name
        folder.mkdir(parents=True, exist_ok=True)
        images, _ = tiny_images(count, size, seed=index + 1)
        for i, image in enumerate(images):
            picture = Image.fromarray(image, mode="L")
            if rgb_every and i % rgb_every == 0:
                picture = picture.convert("RGB")
            if odd_size_every and i % odd_size_every == 0:
                picture = picture.resize((size + 7, size + 3))
            stem = f"{split + '_' if split else ''}{name}_{i}"
            picture.save(folder / f"{stem}.png")
            stems.append(stem)
    return stems


def error_of(path, **kwargs) -> str:
    options = {"min_group_size": 2}
    options.update(kwargs)
    with pytest.raises(InputError) as caught:
        load_images(path, **options)
    text = str(caught.value)
    assert "How to fix:" in text
    return text


# --------------------------------------------------------------------------- the default data


def test_generator_is_seeded_and_honest_about_the_marker():
    data = generator.generate_chest_images()
    assert data.images.shape == (4800, 64, 64) and data.images.dtype == np.uint8
    assert list(data.metadata.columns) == ["sex", "age_band", "site"]
    small = generator.generate_chest_images(200)
    again = generator.generate_chest_images(200)
    assert np.array_equal(small.images, again.images) and np.array_equal(small.labels, again.labels)
    assert not np.array_equal(small.images, generator.generate_chest_images(200, seed=1).images)
    rates = pd.Series(data.labels).groupby(data.metadata["site"]).mean()
    assert 0.3 <= data.labels.mean() <= 0.42
    assert rates["C"] > rates["A"] + 0.2 and rates["C"] > rates["B"] + 0.2   # the site with the marker is sicker
    assert np.array_equal(data.has_marker, data.metadata["site"].to_numpy() == generator.MARKER_SITE)
    corner = data.images[:, generator.MARKER_ROWS, generator.MARKER_COLUMNS]
    assert (corner[data.has_marker] == generator.MARKER_VALUE).all()
    assert corner[~data.has_marker].mean() < 60       # dark background where there is no marker
    # positives look different inside the lungs (opacities brighten them)
    lungs = data.images[:, 20:50, 12:26].mean(axis=(1, 2))
    assert lungs[data.labels == 1].mean() > lungs[data.labels == 0].mean() + 2


def test_marker_can_be_stamped_and_erased():
    data = generator.generate_chest_images(40)
    clean = data.images[~data.has_marker]
    stamped = generator.stamp_marker(clean)
    assert (stamped[:, generator.MARKER_ROWS, generator.MARKER_COLUMNS] == generator.MARKER_VALUE).all()
    erased = generator.erase_marker(stamped)
    assert np.abs(erased.astype(int) - clean.astype(int)).max() < 80
    assert erased[:, generator.MARKER_ROWS, generator.MARKER_COLUMNS].mean() < 60
    outside = np.ones((64, 64), dtype=bool)
    outside[generator.MARKER_ROWS, generator.MARKER_COLUMNS] = False
    assert np.array_equal(erased[:, outside], clean[:, outside])


# --------------------------------------------------------------------------- the conversion


def test_encode_converts_any_size_channels_and_depth():
    spec = json.loads(json.dumps(image_preprocessing(16, 16)))
    assert spec["format"] == FORMAT and spec["input"] == {"height": 16, "width": 16, "channels": 1, "dtype": "float32",
                                                          "layout": "NHWC", "batch": "any"}
    gray = np.full((16, 16), 51, dtype=np.uint8)
    rgb = np.zeros((40, 30, 3), dtype=np.uint8)
    rgb[..., 0] = 255                                            # pure red -> luma 0.299
    rgba = np.concatenate([np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8, 1), np.uint8)], axis=2)
    floats = np.full((16, 16), 0.5, dtype=np.float32)
    deep = np.tile(np.arange(16, dtype=np.uint16) * 4000, (16, 1))  # 16-bit: min-max scaled
    encoded = encode_images(spec, [gray, rgb, rgba, floats, deep])
    assert encoded.shape == (5, 16, 16, 1) and encoded.dtype == np.float32
    assert np.allclose(encoded[0], 0.2)
    assert np.allclose(encoded[1], round(0.299 * 255) / 255, atol=1 / 255)
    assert np.allclose(encoded[2], 1.0)                          # alpha dropped
    assert np.allclose(encoded[3], round(0.5 * 255) / 255)
    assert encoded[4, 0, 0, 0] == 0.0 and encoded[4, 0, -1, 0] == 1.0
    batch = np.stack([gray, gray])
    assert np.array_equal(encode_images(spec, batch), encode_images(spec, list(batch)))
    assert encode_images(spec, np.zeros((0, 16, 16), np.uint8)).shape == (0, 16, 16, 1)
    with pytest.raises(ValueError, match="expected"):
        encode_images(spec, [np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(ValueError, match="format"):
        encode_images({"format": "other"}, batch)


def test_resize_is_bilinear_and_antialiased():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = convert_image(checker, 16, 16)
    assert small.shape == (16, 16) and abs(float(small.mean()) - 127.5) < 3 and small.std() < 10  # averaged, not aliased


def test_box_blur_matches_a_brute_force_mean():
    rng = np.random.default_rng(0)
    images = rng.random((2, 9, 7))
    radius = 2
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    expected = np.zeros_like(images)
    for r in range(9):
        for c in range(7):
            expected[:, r, c] = padded[:, r:r + 2 * radius + 1, c:c + 2 * radius + 1].mean(axis=(1, 2))
    assert np.allclose(box_blur(images, radius), expected)
    assert np.array_equal(box_blur(images, 0), images)


def test_regions_partition_the_pixels():
    for height, width in ((64, 64), (28, 28), (20, 30), (5, 6)):
        regions = image_regions(height, width)
        every = np.sort(np.concatenate([np.asarray(v) for v in regions.values()]))
        assert np.array_equal(every, np.arange(height * width))
        assert len(regions) == min(8, height) * min(8, width)
    regions = image_regions(64, 64)
    assert regions["region r0c7"] == [r * 64 + c for r in range(8) for c in range(56, 64)]


def test_target_size_rule():
    assert target_size([(28, 28), (28, 28)]) == (28, 28)
    assert target_size([(28, 28), (30, 28)]) == (64, 64)
    assert target_size([(512, 512)]) == (64, 64)


# --------------------------------------------------------------------------- .npz


def test_npz_keeps_its_splits_and_groups_by_an_exposure_proxy(tmp_path):
    path = write_npz(tmp_path / "tiny.npz")
    data = load_images(path, min_group_size=2)
    assert (len(data.train), len(data.validation), len(data.test)) == (60, 20, 20)
    assert data.sensitive_columns == (EXPOSURE_COLUMN,)
    assert set(data.test.groups[EXPOSURE_COLUMN]) <= {"dark", "medium", "bright"}
    assert any("PROXY" in note and "NOT a patient attribute" in note for note in data.source.notes)
    assert any("not re-split" in note for note in data.source.notes)
    assert data.train.raw.shape == (60, 16, 16) and data.preprocessing["input"]["height"] == 16
    assert data.source.kind == "file" and len(data.source.fingerprint) == 64
    assert len(data.feature_names) == 256 and len(data.feature_groups) == 64
    # the train split's exposure terciles are (nearly) equal
    counts = data.train.groups[EXPOSURE_COLUMN].value_counts()
    assert counts.max() - counts.min() <= 2
    sub = load_images(path, min_group_size=1, max_rows=50)
    assert len(sub.train) + len(sub.validation) + len(sub.test) == 50
    assert len(sub.train) == 30


def test_npz_with_metadata_audits_patient_groups(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", sizes=(40, 20, 20))
    ids = [f"{split}_{i}" for split, n in (("train", 40), ("val", 20), ("test", 20)) for i in range(n)]
    metadata = pd.DataFrame({"image": ids, "Sex": ["F", "M"] * 40, "Age": np.tile([25, 47, 70, 33], 20)})
    metadata.to_csv(tmp_path / "meta.csv", index=False)
    data = load_images(path, metadata_path=str(tmp_path / "meta.csv"), min_group_size=2)
    assert data.sensitive_columns == ("Sex", "Age")
    assert set(data.test.groups["Sex"]) == {"F", "M"}


def test_npz_bad_inputs(tmp_path):
    three = write_npz(tmp_path / "three.npz", classes=3)
    text = error_of(three)
    assert "3 classes" in text and "expected exactly two" in text
    missing = tmp_path / "missing.npz"
    np.savez(missing, train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros((4, 1)))
    assert "lacks" in error_of(missing) and "val_images" in error_of(missing)
    mismatch = write_npz(tmp_path / "mismatch.npz", val_labels=np.zeros((19, 1), np.uint8))
    assert "20 images but val_labels holds 19 labels" in error_of(mismatch)
    multi = write_npz(tmp_path / "multi.npz", test_labels=np.zeros((20, 14), np.uint8))
    assert "one label per image" in error_of(multi)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert "cannot read the file" in error_of(tmp_path / "broken.npz")
    one_class_test = write_npz(tmp_path / "oneclass.npz", test_labels=np.zeros((20, 1), np.uint8))
    assert "the test split holds only 0 images of class 1" in error_of(one_class_test)
    assert "--label" in error_of(write_npz(tmp_path / "ok.npz"), label_column="y")
    assert "not found" in error_of(tmp_path / "nothing.npz")
    (tmp_path / "data.txt").write_text("x")
    assert ".npz file or a folder" in error_of(tmp_path / "data.txt")


@pytest.mark.skipif(not REAL_NPZ.exists(), reason="the shared PneumoniaMNIST file is not present")
def test_real_pneumoniamnist_layout():
    data = load_images(REAL_NPZ)
    assert (len(data.train), len(data.validation), len(data.test)) == (3882, 524, 624)
    assert data.preprocessing["input"]["height"] == 28 and data.positive_class == "pneumonia"
    assert abs(data.test.labels.mean() - 0.625) < 1e-9


# --------------------------------------------------------------------------- folders


def test_folder_of_class_subfolders_converts_sizes_and_channels(tmp_path):
    write_folder(tmp_path, {"NORMAL": 30, "PNEUMONIA": 30}, rgb_every=3, odd_size_every=5)
    (tmp_path / "NORMAL" / "notes.txt").write_text("not an image")
    data = load_images(tmp_path, min_group_size=1)
    assert data.train.raw.shape[1:] == (64, 64)          # mixed sizes -> 64 x 64
    assert len(data.train) + len(data.validation) + len(data.test) == 60
    assert data.positive_class == "PNEUMONIA"
    notes = " ".join(data.source.notes)
    assert "'NORMAL' (30 images) -> 0, 'PNEUMONIA' (30 images) -> 1" in notes and "ignored 1 files" in notes
    assert "converted to 64 x 64" in notes and data.sensitive_columns == (EXPOSURE_COLUMN,)


def test_folder_with_metadata_and_kept_splits(tmp_path):
    stems = []
    for split, n in (("train", 20), ("val", 8), ("test", 8)):
        stems += write_folder(tmp_path, {"normal": n, "pneumonia": n}, split=split)
    rng = np.random.default_rng(0)
    metadata = pd.DataFrame({"Image Index": [f"{s}.png" for s in stems], "Patient Gender": rng.choice(["F", "M"], len(stems)),
                             "Patient Age": rng.integers(20, 90, len(stems)), "View": "PA"})
    metadata = pd.concat([metadata, pd.DataFrame({"Image Index": ["extra.png"], "Patient Gender": ["F"],
                                                  "Patient Age": [50], "View": ["PA"]})])
    metadata.to_csv(tmp_path / "meta.csv", index=False)
    data = load_images(tmp_path, metadata_path=str(tmp_path / "meta.csv"), min_group_size=1)
    assert (len(data.train), len(data.validation), len(data.test)) == (40, 16, 16)
    assert data.sensitive_columns == ("Patient Gender", "Patient Age")
    assert data.train.raw.shape[1:] == (20, 20)
    notes = " ".join(data.source.notes)
    assert "file name in column 'Image Index'" in notes and "1 metadata rows without an image were ignored" in notes
    assert "banded" in notes
    # the same folder with --sensitive picks the named columns only
    only = load_images(tmp_path, metadata_path=str(tmp_path / "meta.csv"), sensitive_columns=("Patient Gender",),
                       min_group_size=1)
    assert only.sensitive_columns == ("Patient Gender",)


def test_folder_with_labels_from_metadata(tmp_path):
    stems = write_folder(tmp_path, {"images": 40})
    metadata = pd.DataFrame({"image_id": stems, "dx": ["mel", "nv"] * 20, "sex": ["male", "female"] * 20})
    metadata.to_csv(tmp_path.parent / "labels.csv", index=False)
    data = load_images(tmp_path, metadata_path=str(tmp_path.parent / "labels.csv"), label_column="dx", min_group_size=1)
    assert data.label_name == "dx" and data.positive_class == "dx = nv"
    metadata["dx"] = ["mel", "nv", "bkl", "nv"] * 10
    metadata.to_csv(tmp_path.parent / "labels3.csv", index=False)
    text = error_of(tmp_path, metadata_path=str(tmp_path.parent / "labels3.csv"), label_column="dx")
    assert "label column 'dx' has 3 distinct values" in text
    assert "--metadata" in error_of(tmp_path, label_column="dx")


def test_folder_bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "the folder is empty" in error_of(empty)
    one = tmp_path / "one"
    write_folder(one, {"normal": 10})
    assert "only one class subfolder holds images ('normal', 10 images)" in error_of(one)
    three = tmp_path / "three"
    write_folder(three, {"covid": 8, "normal": 8, "viral": 8})
    text = error_of(three)
    assert "found 3 class subfolders" in text and "'viral' (8 images)" in text
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(loose / "a.png")
    assert "no class subfolders" in error_of(loose)
    no_images = tmp_path / "no_images"
    (no_images / "a").mkdir(parents=True)
    (no_images / "b").mkdir()
    (no_images / "a" / "x.txt").write_text("x")
    assert "no image files found" in error_of(no_images)
    mixed = tmp_path / "mixed"
    write_folder(mixed, {"normal": 4}, split="train")
    write_folder(mixed, {"normal": 4, "sick": 4})
    assert "train/, val/ and test/" in error_of(mixed)


def test_unreadable_images_are_named_or_skipped_and_counted(tmp_path):
    write_folder(tmp_path, {"normal": 20, "pneumonia": 20})
    (tmp_path / "pneumonia" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "normal" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 nothing")
    text = error_of(tmp_path)
    assert "cannot read 2 image file(s)" in text and "broken.png" in text and "--skip-unreadable" in text
    data = load_images(tmp_path, skip_unreadable=True, min_group_size=2)
    assert len(data.train) + len(data.validation) + len(data.test) == 40
    assert any("skipped 2 unreadable image files" in note and "broken.png" in note for note in data.source.notes)


def test_images_and_metadata_that_do_not_match(tmp_path):
    stems = write_folder(tmp_path / "images", {"normal": 12, "pneumonia": 12})
    partial = pd.DataFrame({"id": stems[:-3], "sex": ["F", "M"] * 10 + ["F"]})
    partial.to_csv(tmp_path / "partial.csv", index=False)
    text = error_of(tmp_path / "images", metadata_path=str(tmp_path / "partial.csv"))
    assert "do not match: 3 of 24 images have no row" in text and stems[-1] in text
    unrelated = pd.DataFrame({"id": [f"other_{i}" for i in range(24)], "sex": ["F", "M"] * 12})
    unrelated.to_csv(tmp_path / "unrelated.csv", index=False)
    assert "no column of the metadata holds the image ids" in error_of(tmp_path / "images",
                                                                       metadata_path=str(tmp_path / "unrelated.csv"))
    no_groups = pd.DataFrame({"id": stems, "view": "PA"})
    no_groups.to_csv(tmp_path / "nogroups.csv", index=False)
    assert "--sensitive" in error_of(tmp_path / "images", metadata_path=str(tmp_path / "nogroups.csv"))
    doubled = pd.DataFrame({"id": stems + stems[:1], "sex": ["F"] * 25})
    doubled.to_csv(tmp_path / "doubled.csv", index=False)
    assert "more than once" in error_of(tmp_path / "images", metadata_path=str(tmp_path / "doubled.csv"))
    assert "metadata file not found" in error_of(tmp_path / "images", metadata_path=str(tmp_path / "none.csv"))
    small = pd.DataFrame({"id": stems, "site": ["A"] * 23 + ["B"]})
    small.to_csv(tmp_path / "small.csv", index=False)
    assert "fewer than the 5 needed" in error_of(tmp_path / "images", metadata_path=str(tmp_path / "small.csv"),
                                                 min_group_size=5)


def test_a_patient_column_in_the_metadata_keeps_each_patient_in_one_split(tmp_path):
    """Several images of one patient are one piece of evidence: they stay in one split, and the
    test split carries each image's patient for the audit's unit bootstrap."""
    stems = write_folder(tmp_path, {"normal": 60, "pneumonia": 60})
    patients = [f"P{index // 3:03d}" for index in range(len(stems))]  # three images per patient
    metadata = pd.DataFrame({"image_id": stems, "patient": patients,
                             "sex": ["female", "male"] * (len(stems) // 2)})
    path = tmp_path.parent / "patients.csv"
    metadata.to_csv(path, index=False)
    data = load_images(tmp_path, metadata_path=str(path), sensitive_columns=["sex"], cluster_column="patient",
                       min_group_size=2)
    units = [set(split.clusters) for split in (data.train, data.validation, data.test)]
    assert not (units[0] & units[1]) and not (units[0] & units[2]) and not (units[1] & units[2])
    assert set().union(*units) == set(patients)
    assert any("40 units (patients) each stay in one split" in note for note in data.source.notes)
    assert "cluster column 'patient' is empty" not in str(data.source.notes)
    metadata.loc[5, "patient"] = None
    metadata.to_csv(path, index=False)
    assert "cluster column 'patient' is empty for 1 images" in error_of(
        tmp_path, metadata_path=str(path), sensitive_columns=["sex"], cluster_column="patient")
    assert "no --metadata file was given" in error_of(tmp_path, cluster_column="patient")
