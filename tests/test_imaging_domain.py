"""ImagingDomain: default data, the CNN in both Keras flavours, image explanations, the shortcut.

The whole pipeline on the default data is run by tests/test_domain_contract.py; this file
checks what is specific to images, on small inputs (about 30 s, most of it one short
training run that shows the model learning the site marker).
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main as cli_main
from pipeline.config import RunConfig
from pipeline.data import imaging_generator as generator
from pipeline.data.images import image_regions, region_bounds
from pipeline.domain import Domain
from pipeline.domains.imaging import (
    AUGMENT_TRANSLATION,
    AUGMENT_ZOOM,
    FILTERS,
    MARKER_REGION_NAME,
    ImagingDomain,
    augment_images,
    build_cnn,
    local_examples,
    shortcut_probe,
)
from pipeline.metrics import choose_threshold
from pipeline.errors import EXIT_BAD_INPUT, InputError
from pipeline.stages.explain_image import explain_images, image_explanation_figures, reference_image


def small_config(**overrides) -> RunConfig:
    return dataclasses.replace(RunConfig(domain="imaging", max_rows=1500, min_group_size=5), **overrides)


@pytest.fixture(scope="module")
def default_data():
    return ImagingDomain().load(small_config())


def test_class_attributes_and_builder():
    domain = ImagingDomain()
    assert isinstance(domain, Domain)
    assert domain.name == "imaging" and domain.modality == "image" and domain.headline_metric == "roc_auc"
    assert domain.default_sensitive == ("sex", "age_band", "site") and domain.default_label == "pneumonia"
    assert ImagingDomain.model_builder is build_cnn
    assert pickle.loads(pickle.dumps(domain.model_builder)) is build_cnn
    assert domain.twin_model_options(None) == {}  # no override, whatever the data
    assert domain.augmentation() is augment_images


def test_load_default_data(default_data):
    data = default_data
    assert data.source.kind == "generated" and data.source.rows == generator.DEFAULT_IMAGES
    assert len(data.train) == 900 and len(data.validation) + len(data.test) == 600 and len(data.test) >= 295
    assert data.sensitive_columns == ("sex", "age_band", "site")
    assert data.train.raw.shape == (900, 64, 64) and data.train.raw.dtype == np.uint8
    assert data.preprocessing["default_data"] == {"marker_site": "C", "marker_region": "region r0c7"}
    notes = " ".join(data.source.notes)
    assert "fixed seed 0" in notes and "burns a bright marker" in notes
    encoded = ImagingDomain().encode(data.preprocessing, data.test.raw)
    assert encoded.shape == (len(data.test), 64, 64, 1) and encoded.dtype == np.float32
    other = ImagingDomain().load(small_config(seed=4))
    assert other.source.fingerprint == data.source.fingerprint           # same images, another split
    assert not np.array_equal(other.test.raw, data.test.raw)
    options = ImagingDomain().model_options(data, small_config())
    assert options == {"filters": FILTERS, "dropout_rate": 0.25, "batch_norm_momentum": 0.9, "stem_stride": 2}


def test_default_data_options_are_checked():
    domain = ImagingDomain()
    with pytest.raises(InputError, match="not in the default data"):
        domain.load(small_config(sensitive_columns=("race",)))
    with pytest.raises(InputError, match="apply to your own images"):
        domain.load(small_config(options={"metadata_path": "meta.csv"}))
    only_site = domain.load(small_config(sensitive_columns=("site",)))
    assert only_site.sensitive_columns == ("site",)


@pytest.mark.parametrize("arguments, message", [
    (["--data", "{empty}"], "the folder is empty"),
    (["--data", "{one}"], "only one class subfolder"),
    (["--data", "{two}", "--metadata", "{metadata}"], "the images and the metadata do not match"),
    (["--data", "{three}"], "the labels hold 3 classes"),
    (["--data", "{one}", "--label", "dx"], "no --metadata file"),
])
def test_cli_exits_2_with_a_clear_message(tmp_path, capsys, arguments, message):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    for name in ("one/normal", "two/normal", "two/pneumonia"):
        (tmp_path / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), i * 30, np.uint8)).save(tmp_path / name / f"{name[-1]}{i}.png")
    pd.DataFrame({"file": [f"l{i}.png" for i in range(6)] + [f"a{i}.png" for i in range(4)], "sex": "F"}).to_csv(
        tmp_path / "meta.csv", index=False)
    np.savez(tmp_path / "three.npz", **{f"{split}_{kind}": np.zeros((9, 8, 8), np.uint8) if kind == "images"
                                        else (np.arange(9) % 3).reshape(-1, 1)
                                        for split in ("train", "val", "test") for kind in ("images", "labels")})
    arguments = [a.format(empty=tmp_path / "empty", one=tmp_path / "one", two=tmp_path / "two",
                          metadata=tmp_path / "meta.csv", three=tmp_path / "three.npz") for a in arguments]
    assert cli_main(["run", "imaging", *arguments, "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert message in error and "How to fix:" in error
    assert not (tmp_path / "out" / "imaging").exists() or not any((tmp_path / "out" / "imaging").iterdir())


# --------------------------------------------------------------------------- the CNN


def test_cnn_twin_matches_and_folds_batch_norm():
    import keras
    import tf_keras

    from pipeline.stages.compress import copy_weights_by_layer_name, fold_batch_normalization, weights_by_layer_name

    trained = build_cnn(keras, (64, 64, 1), stem_stride=2)
    rng = np.random.default_rng(0)
    for layer in trained.layers:   # non-trivial BatchNorm statistics
        if "batch_norm" in layer.name:
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, rng.normal(0, 0.2, mean.shape).astype(np.float32),
                               variance + rng.random(variance.shape).astype(np.float32)])
    twin = build_cnn(tf_keras, (64, 64, 1), stem_stride=2)
    assert [layer.name for layer in twin.layers] == [layer.name for layer in trained.layers]
    copy_weights_by_layer_name(weights_by_layer_name(trained), twin)
    images = rng.random((8, 64, 64, 1)).astype(np.float32)
    expected = np.asarray(trained(images, training=False))
    assert np.abs(expected - twin(images, training=False).numpy()).max() < 1e-5
    # what QAT trains: every Conv2D + BatchNorm pair folded, same outputs
    folded, pairs = fold_batch_normalization(tf_keras, twin)
    assert pairs == [f"batch_norm_{i} into conv_{i} (with relu_{i} as its activation)" for i in range(len(FILTERS))]
    assert not any(layer.name.startswith(("batch_norm", "relu")) for layer in folded.layers)
    assert folded.get_layer("conv_1").get_config()["activation"] == "relu"
    assert np.abs(expected - folded(images, training=False).numpy()).max() < 1e-5
    small = build_cnn(keras, (28, 28, 1))
    assert small.output_shape == (None, 1)


def test_augmentation_is_stateless_bounded_and_moves_the_image():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = np.zeros((16, 64, 64, 1), np.float32)
    images[:, 24:40, 24:40, 0] = 0.5 + 0.5 * rng.random((16, 16, 16))   # a bright square on black
    seed = tf.constant([3, 4], tf.int64)
    augmented = np.asarray(augment_images(images, seed))
    assert augmented.shape == images.shape and augmented.dtype == np.float32
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    assert np.array_equal(augmented, np.asarray(augment_images(images, seed)))            # same seed, same batch
    assert not np.allclose(augmented, np.asarray(augment_images(images, tf.constant([3, 5], tf.int64))))
    # each image moves differently, by no more than the shift and zoom allow
    def centre(batch):
        mass = batch[..., 0]
        ys, xs = np.mgrid[0:64, 0:64]
        return np.stack([(mass * ys).sum((1, 2)) / mass.sum((1, 2)), (mass * xs).sum((1, 2)) / mass.sum((1, 2))], 1)
    moved = np.abs(centre(augmented) - centre(images))
    assert moved.max() > 0.5 and len(np.unique(moved.round(3))) > 8
    assert moved.max() <= 64 * AUGMENT_TRANSLATION * (1 + AUGMENT_ZOOM) + 1.0
    # pixels from outside repeat the edge: a flat image stays flat (contrast about its own mean)
    flat = np.full((4, 64, 64, 1), 0.3, np.float32)
    assert np.allclose(np.asarray(augment_images(flat, seed)), 0.3, atol=1e-6)


# --------------------------------------------------------------------------- explanations


def _linear_setup(height=16, width=12, n=5, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(height, width, 1))

    def predict(x):
        return 0.3 + (np.asarray(x) * weights).sum(axis=(1, 2, 3)) / 50

    rows = rng.random((n, height, width, 1)).astype(np.float32)
    background = rng.random((10, height, width, 1)).astype(np.float32)
    row_edges, column_edges = region_bounds(height, width, 4)
    regions = image_regions(height, width, 4)
    return predict, weights, rows, background, regions, row_edges, column_edges


def test_region_shapley_values_are_exact_for_a_linear_model():
    predict, weights, rows, background, regions, row_edges, column_edges = _linear_setup()
    groups = pd.DataFrame({"site": ["A", "B", "A", "C", "C"]})
    result = explain_images(predict_functions={"float": predict, "copy": lambda x: predict(x) + 1e-4},
                            background=background, rows=rows, row_ids=[10, 11, 12, 13, 14], local_row_ids=[12],
                            regions=regions, row_edges=row_edges, column_edges=column_edges,
                            labels=np.array([0, 1, 0, 1, 1]), groups=groups,
                            named_regions={"top-left": ["region r0c0"]}, seed=0)
    assert set(result) >= {"explainer", "settings", "models", "agreement"}
    reference = reference_image(background)
    values = result["_arrays"]["shap_values"]["float"]
    for i, row in enumerate(rows):
        contribution = ((row - reference) * weights)[..., 0] / 50
        expected = [contribution.ravel()[indices].sum() for indices in regions.values()]
        assert np.allclose(values[i], expected, atol=1e-6)
    model = result["models"]["float"]
    assert model["additivity"]["max_abs_error"] < 1e-6
    assert list(model["global_importance"].values()) == sorted(model["global_importance"].values(), reverse=True)
    mass = model["region_mass"]
    assert abs(sum(mass["share_by_region"].values()) - 1.0) < 1e-9
    assert mass["corners"] <= mass["border"] <= 1.0 and "top-left" in mass
    assert set(mass["by_group"]["site"]) == {"A", "B", "C"} and mass["by_group"]["site"]["C"]["rows"] == 2
    local = model["local"][0]
    assert local["row_id"] == 12 and local["label"] == 0 and local["groups"] == {"site": "A"}
    assert np.array(local["heatmap"]).shape == (4, 4) and np.array(local["image"]).shape == (16, 12)
    assert result["agreement"]["copy"]["top5_overlap"] == 5
    assert result["settings"]["area_share"]["corners"] == pytest.approx(4 / 16)
    figures = image_explanation_figures(result)
    assert {"shap_global", "shap_global_by_site", "shap_local_12"} <= set(figures)
    with pytest.raises(ValueError, match="regions"):
        explain_images(predict_functions={"f": predict}, background=background, rows=rows, row_ids=list(range(5)),
                       local_row_ids=[], regions=dict(list(regions.items())[:3]), row_edges=row_edges,
                       column_edges=column_edges)


def test_local_examples_cover_every_class_and_group():
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 1])
    groups = pd.DataFrame({"site": ["A", "A", "A", "B", "B", "B", "C", "C"], "sex": list("FMFMFMFM")})
    chosen = local_examples(list(range(100, 108)), labels, groups, first=[100])
    assert chosen[0] == 100
    covered = {(c, groups[c].iloc[r - 100], labels[r - 100]) for r in chosen for c in groups.columns}
    wanted = {(c, groups[c].iloc[i], labels[i]) for i in range(8) for c in groups.columns}
    assert covered == wanted and len(chosen) <= 6


def test_shortcut_probe_measures_what_the_marker_does(default_data):
    def marker_reader(x):   # a "model" that looks only at the marker's corner
        return np.asarray(x)[:, 2:7, 57:62, 0].mean(axis=(1, 2))

    def lung_reader(x):     # one that never looks there
        return np.asarray(x)[:, 20:50, 10:30, 0].mean(axis=(1, 2))

    readers = {"marker": marker_reader, "lungs": lung_reader}
    validation_x = ImagingDomain().encode(default_data.preprocessing, default_data.validation.raw)
    thresholds = {name: choose_threshold(default_data.validation.labels, read(validation_x))  # as the evaluation does
                  for name, read in readers.items()}
    probe = shortcut_probe(predict_functions=readers, thresholds=thresholds,
                           preprocessing=default_data.preprocessing, data=default_data,
                           encode=ImagingDomain().encode)
    marker, lungs = probe["models"]["marker"], probe["models"]["lungs"]
    assert marker["mean_score_change_when_stamped"] > 0.5 and marker["mean_score_change_when_erased"] < -0.5
    assert lungs["mean_score_change_when_stamped"] == 0.0 and lungs["flipped_to_positive_when_stamped"] == 0.0
    test_sites = default_data.test.groups["site"]
    assert probe["marker"]["test_images_with_marker"] == int((test_sites == "C").sum())
    assert marker["stamped_images"] == int((test_sites != "C").sum())
    assert probe["table"]["headers"][0] == "model" and len(probe["table"]["rows"]) == 2
    assert "site C" in probe["summary"]


def test_a_model_trained_on_default_data_puts_attribution_on_the_marker(default_data):
    """The hazard is real: a small CNN learns the marker, and the explanation shows it as a number."""
    import keras

    keras.utils.set_random_seed(0)
    domain = ImagingDomain()
    train = domain.encode(default_data.preprocessing, default_data.train.raw)
    test = domain.encode(default_data.preprocessing, default_data.test.raw)
    model = build_cnn(keras, train.shape[1:], stem_stride=2)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy")
    model.fit(train, default_data.train.labels.astype(np.float32), epochs=4, batch_size=32, verbose=0)

    def predict(x):
        return np.asarray(model.predict_on_batch(x), dtype=np.float64)[:, 0]

    site = default_data.test.groups["site"].to_numpy()
    rows = np.concatenate([np.flatnonzero(site == "C")[:6], np.flatnonzero(site != "C")[:6]])
    edges = default_data.preprocessing["explanation_regions"]
    result = explain_images(predict_functions={"float": predict}, background=train[:16], rows=test[rows],
                            row_ids=rows.tolist(), local_row_ids=[], regions=default_data.feature_groups,
                            row_edges=edges["row_edges"], column_edges=edges["column_edges"],
                            groups=default_data.test.groups.iloc[rows].reset_index(drop=True),
                            named_regions={MARKER_REGION_NAME: [generator.MARKER_REGION]})
    by_site = result["models"]["float"]["region_mass"]["by_group"]["site"]
    with_marker = by_site["C"][MARKER_REGION_NAME]
    without_marker = np.mean([by_site[s][MARKER_REGION_NAME] for s in by_site if s != "C"])
    area = result["settings"]["area_share"][MARKER_REGION_NAME]
    assert with_marker > 3 * area and with_marker > 5 * without_marker, (with_marker, without_marker, area)
