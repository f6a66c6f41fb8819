"""MaintenanceDomain: dispatch between the two data shapes, its models, quality, explanations and headline."""

from __future__ import annotations

import dataclasses

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import FLOAT_MODEL, RunConfig
from pipeline.data.maintenance_generator import (
    AI4I_FAILURE_MODES,
    generate_ai4i_readings,
    generate_histories,
    to_cmapss_text,
)
from pipeline.data.sensor_histories import FORMAT as WINDOWS_FORMAT
from pipeline.data.tabular import FORMAT as TABULAR_FORMAT
from pipeline.domain import Domain
from pipeline.domains.maintenance import MaintenanceDomain, build_maintenance_model, missed_failures_by_group
from pipeline.errors import InputError
from pipeline.metrics import choose_threshold
from pipeline.registry import get_domain
from pipeline.stages.explain_window import explain_windows, window_cells, window_explanation_figures

REAL_AI4I = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "maintenance" / "ai4i2020.csv"


@pytest.fixture(scope="module")
def cmapss_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cmapss") / "train_FD900.txt"
    path.write_text(to_cmapss_text(generate_histories(24, seed=3, life_scale=0.25)))
    return path


@pytest.fixture(scope="module")
def readings_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ai4i") / "readings.csv"
    path.write_bytes(b"\xef\xbb\xbf" + generate_ai4i_readings(3000, seed=3).to_csv(index=False).encode())
    return path


def _config(**overrides) -> RunConfig:
    return RunConfig(domain="maintenance", options={"window": 10, "horizon": 8}, min_group_size=5, **overrides)


def test_registered_with_its_attributes():
    domain = get_domain("maintenance")
    assert isinstance(domain, MaintenanceDomain) and isinstance(domain, Domain)
    assert domain.modality == "window" and domain.headline_metric == "pr_auc"
    assert domain.summary()["default_sensitive"] == ["make", "regime"]
    assert MaintenanceDomain.model_builder is build_maintenance_model
    assert pickle.loads(pickle.dumps(domain.model_builder)) is build_maintenance_model
    with pytest.raises(ValueError, match="architecture 'lstm'"):
        MaintenanceDomain(architecture="lstm")


def test_models_build_in_both_keras_flavours_and_share_weights():
    import keras
    import tf_keras

    from pipeline.stages.compress import copy_weights_by_layer_name, weights_by_layer_name

    window = np.random.default_rng(0).normal(size=(1, 10, 4)).astype(np.float32)
    for architecture, shape, twin_options in (("cnn", (10, 4), {}), ("gru", (10, 4), {"batch_size": 1, "unroll": True}),
                                              ("mlp", (6,), {})):
        options = {"architecture": architecture}
        trained = build_maintenance_model(keras, shape, **options)
        twin = build_maintenance_model(tf_keras, shape, **options, **twin_options)
        copy_weights_by_layer_name(weights_by_layer_name(trained), twin)
        x = window if architecture != "mlp" else window[:, 0, :].repeat(2, axis=1)[:, :6]
        np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(trained(x)), atol=1e-5)
        if twin_options:
            assert twin.inputs[0].shape[0] == 1
    with pytest.raises(ValueError, match="free batch size"):
        build_maintenance_model(keras, (6,), architecture="mlp", batch_size=1)


def test_histories_path_options_and_twin_dispatch(cmapss_file):
    domain = MaintenanceDomain(architecture="gru")
    data = domain.load(_config(data_path=str(cmapss_file), label_column="Machine failure"))
    assert data.preprocessing["format"] == WINDOWS_FORMAT and data.sensitive_columns == ("regime",)
    assert any("--label 'Machine failure' ignored" in n for n in data.source.notes)
    assert domain.twin_model_options(data) == {"batch_size": 1, "unroll": True} and domain.modality_of(data) == "window"
    assert domain.model_options(data, _config())["architecture"] == "gru"
    assert MaintenanceDomain().model_options(data, _config())["architecture"] == "cnn"
    encoded = domain.encode(json.loads(json.dumps(data.preprocessing)), data.validation.raw)
    assert encoded.shape == (len(data.validation), 10, len(data.preprocessing["sensors"]))


def test_loading_keeps_no_twin_state_in_the_domain(cmapss_file, readings_file):
    """The twin's options come from the data asked about: loading other data, into this instance or
    another, changes nothing in the answer (issue 18: load keeps no state for twin_model_options)."""
    first, second = MaintenanceDomain(architecture="gru"), MaintenanceDomain(architecture="gru")
    histories = first.load(_config(data_path=str(cmapss_file)))
    unrolled = {"batch_size": 1, "unroll": True}
    assert first.twin_model_options(histories) == unrolled
    readings = second.load(_config(data_path=str(readings_file)))
    first.load(_config(data_path=str(readings_file)))  # the same instance loads the other kind as well
    assert first.twin_model_options(histories) == second.twin_model_options(histories) == unrolled
    assert first.twin_model_options(readings) == second.twin_model_options(readings) == {}
    assert MaintenanceDomain(architecture="gru").twin_model_options(histories) == unrolled  # never loaded
    assert MaintenanceDomain().twin_model_options(histories) == {}  # the CNN needs no override
    assert MaintenanceDomain.modality == first.modality == "window"  # nothing set on the class or the instance
    assert first.modality_of(readings) == "tabular" and first.modality_of(histories) == "window"
    assert first.explainer_for(readings).kind == "tabular" and first.explainer_for(histories).kind == "window"


def test_readings_path_drops_leaking_columns_and_adds_physics(readings_file):
    domain = MaintenanceDomain(architecture="gru")
    data = domain.load(_config(data_path=str(readings_file)))
    spec = json.loads(json.dumps(data.preprocessing))
    assert spec["format"] == TABULAR_FORMAT and domain.twin_model_options(data) == {}
    assert domain.modality_of(data) == "tabular"
    assert domain.sensitive_inputs(data) == ["Type"]  # the model card says Type is a model input too
    assert data.label_name == "Machine failure" and data.sensitive_columns == ("Type",)
    features = set(data.feature_groups)
    assert not features & {"Machine failure", *AI4I_FAILURE_MODES, "UDI", "Product ID"}
    assert {"Type", "Power [W]", "Strain [min Nm]", "Temperature difference [K]", "Torque [Nm]"} <= features
    notes = " | ".join(data.source.notes)
    assert "leak the label" in notes and "byte-order mark" in notes and "model features as well" in notes
    assert data.source.path == str(readings_file) and len(data.source.fingerprint) == 64
    assert domain.model_options(data, _config())["architecture"] == "mlp"
    # the shipped spec recomputes the derived columns from raw rows
    raw = data.test.raw.drop(columns=["Power [W]", "Strain [min Nm]", "Temperature difference [K]"])
    np.testing.assert_allclose(domain.encode(spec, raw), domain.encode(spec, data.test.raw), atol=1e-5)
    one = domain.encode(spec, raw.iloc[0].to_dict())
    assert one.shape == (1, spec["n_features"])
    # another label: "Machine failure" becomes a leaking column too
    other = domain.load(_config(data_path=str(readings_file), label_column="OSF"))
    assert "Machine failure" not in other.feature_groups and "TWF" not in other.feature_groups


def test_readings_without_label_or_groups_are_clear_errors(tmp_path):
    frame = generate_ai4i_readings(500, seed=1).drop(columns=["Machine failure", "Type"])
    path = tmp_path / "plain.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"no --label(.|\n)*How to fix: pass --label"):
        MaintenanceDomain().load(_config(data_path=str(path)))
    with pytest.raises(InputError, match=r"no sensitive column given"):
        MaintenanceDomain().load(_config(data_path=str(path), label_column="TWF"))


def test_quality_adds_miss_rate_and_false_alarms():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1])
    quality = MaintenanceDomain().quality(labels, scores, 0.5)
    assert quality["miss_rate"] == pytest.approx(0.5)
    assert quality["false_alarms_per_1000_cycles"] == pytest.approx(100.0)
    assert quality["pr_auc"] is not None and quality["recall_at_1pct_fpr"] is not None


def test_window_explanations_are_exact_for_an_additive_model():
    rng = np.random.default_rng(0)
    sensors = ["s1", "s2", "s3"]
    weights = rng.normal(size=(12, 3)).astype(np.float32)

    def linear(x):
        return 0.5 + 0.01 * (x * weights).sum(axis=(1, 2))

    def coarse(x):   # a "quantized" copy
        return np.round(linear(x), 2)

    background, rows = rng.normal(size=(8, 12, 3)), rng.normal(size=(4, 12, 3))
    result = explain_windows(predict_functions={FLOAT_MODEL: linear, "int8": coarse}, background=background,
                             rows=rows, row_ids=[10, 11, 12, 13], local_row_ids=[11], sensors=sensors, seed=0,
                             reference=FLOAT_MODEL)
    assert set(result) >= {"explainer", "settings", "models", "agreement", "window_cells", "heatmaps", "by_sensor"}
    cells = window_cells(sensors, 12)
    assert list(result["models"][FLOAT_MODEL]["global_importance"]) == sorted(
        cells, key=lambda c: -result["models"][FLOAT_MODEL]["global_importance"][c])
    assert "s1 @ t-1..t-0" in cells and result["window_cells"]["blocks"] == [
        "t-11..t-9", "t-8..t-6", "t-5..t-4", "t-3..t-2", "t-1..t-0"]
    # additive model: each cell's Shapley value is its weights times (x - background mean)
    local = result["models"][FLOAT_MODEL]["local"][0]
    deviation = (rows[1] - background.mean(axis=0)).reshape(-1) * 0.01 * weights.reshape(-1)
    for name, indices in cells.items():
        assert local["contributions"][name] == pytest.approx(deviation[indices].sum(), abs=1e-6)
    assert result["models"][FLOAT_MODEL]["additivity"]["max_abs_error"] < 1e-9
    assert np.asarray(result["heatmaps"]["int8"]).shape == (3, 5)
    figures = window_explanation_figures(result)
    assert set(figures) == {"shap_global", "shap_global_by_sensor", "shap_local_11"}
    json.dumps({k: v for k, v in result.items() if k != "_arrays"}, allow_nan=False)


def test_missed_failures_by_group_is_the_headline_table():
    labels = np.array([1] * 10 + [0] * 30)
    groups = pd.DataFrame({"make": ["A"] * 5 + ["B"] * 5 + ["A"] * 15 + ["B"] * 15})
    caught = np.r_[np.ones(5), [1, 0, 0, 0, 1], np.zeros(28), [1, 1]]   # B misses 3 of 5; 2 false alarms in B

    def model(x):
        return caught[: len(x)] * 0.9 + 0.05

    features = np.zeros((40, 1), dtype=np.float32)
    threshold = choose_threshold(labels, model(features))  # as the evaluation chooses it (F1)
    result = missed_failures_by_group(
        predict_functions={FLOAT_MODEL: model, "int8": model}, thresholds={FLOAT_MODEL: threshold, "int8": threshold},
        test_features=features, test_labels=labels, groups=groups, ship_variant="int8",
        bootstrap_samples=50, min_group_size=5, seed=0)
    b = result["groups"]["make"]["B"]["models"]["int8"]
    assert b["miss_rate"] == pytest.approx(0.6) and b["false_alarms_per_1000_cycles"] == pytest.approx(100.0)
    assert b["interval"][0] <= 0.6 <= b["interval"][1]
    assert result["groups"]["make"]["A"]["models"][FLOAT_MODEL]["miss_rate"] == 0.0
    assert "make = B (0.600)" in result["summary"]
    assert len(result["table"]["rows"]) == 2 and len(result["table"]["headers"]) == len(result["table"]["rows"][0])
    from pipeline.domains.maintenance import miss_rate_figure

    assert miss_rate_figure(result) is not None
    assert result["settings"]["resampling"] == "rows"


def test_missed_failures_resample_whole_units_when_the_rows_have_them():
    """Two machines of make B, one that fails silently (misses all 20 windows) and one that is always
    caught: by windows the miss rate looks pinned near 0.5; by machines it could be anything."""
    labels = np.array([1] * 40 + [0] * 40)
    groups = pd.DataFrame({"make": ["B"] * 80})
    units = np.array(["u1"] * 20 + ["u2"] * 20 + ["u1"] * 20 + ["u2"] * 20)
    caught = np.r_[np.zeros(20), np.ones(20), np.zeros(40)]

    def model(x):
        return caught[: len(x)] * 0.9 + 0.05

    features = np.zeros((80, 1), dtype=np.float32)
    common = dict(predict_functions={FLOAT_MODEL: model}, thresholds={FLOAT_MODEL: 0.5}, test_features=features,
                  test_labels=labels, groups=groups, ship_variant=FLOAT_MODEL, bootstrap_samples=400,
                  min_group_size=5, seed=0)
    by_windows = missed_failures_by_group(**common)["groups"]["make"]["B"]["models"][FLOAT_MODEL]["interval"]
    result = missed_failures_by_group(**common, units=units)
    by_units = result["groups"]["make"]["B"]["models"][FLOAT_MODEL]["interval"]
    assert by_windows[1] - by_windows[0] < 0.4 and by_units == [0.0, 1.0]
    assert result["settings"]["resampling"] == "whole units" and "whole units at a time" in result["summary"]


@pytest.mark.skipif(not REAL_AI4I.exists(), reason="the shared AI4I 2020 file is not beside this checkout")
def test_real_ai4i_file_takes_the_readings_path():
    data = MaintenanceDomain().load(RunConfig(domain="maintenance", data_path=str(REAL_AI4I), max_rows=3000))
    assert data.preprocessing["format"] == TABULAR_FORMAT and data.label_name == "Machine failure"
    assert set(data.test.groups["Type"]) == {"L", "M", "H"}
    assert not set(data.feature_groups) & {*AI4I_FAILURE_MODES, "UDI", "Product ID"}
    assert 0.02 < data.class_balance["positive_rate"] < 0.05


def test_drop_on_a_readings_table_comes_before_the_automatic_drops_and_derived_inputs(readings_file):
    domain = MaintenanceDomain()
    data = domain.load(_config(data_path=str(readings_file), drop_columns=("UDI", "Air temperature [K]")))
    assert "Air temperature [K]" not in data.feature_groups
    assert "Temperature difference [K]" not in data.feature_groups  # its input was dropped, so it is not derived
    assert any("(--drop)" in note for note in data.source.notes)
    encoded = domain.encode(json.loads(json.dumps(data.preprocessing)), data.test.raw)
    assert encoded.shape[0] == len(data.test)


def test_a_readings_table_is_searched_with_the_mlp_and_the_spec_keeps_its_derived_columns(readings_file, cmapss_file):
    """The model search builds the readings' MLP (architecture "mlp" kept under every trial) and a
    piecewise-linear spec still recomputes the derived physics from raw rows."""
    from pipeline.runtime import configure_runtime
    from pipeline.search_step import recipe

    domain = MaintenanceDomain()
    config = dataclasses.replace(_config(data_path=str(readings_file), epochs=1, seed=0),
                                 options={"search_trials": 2}).with_domain_defaults(domain)
    data = domain.load(config)
    assert domain.searches_model(data)
    runtime = configure_runtime(seed=0, batch_size=256, allow_accelerator=False)
    chosen = recipe(config, domain, data, runtime, progress=lambda _: None)
    trials = chosen.search["trials"]
    assert [trial["values"]["numeric_encoding"] for trial in trials] == ["standardised", "piecewise_linear"]
    assert chosen.model_options["architecture"] == "mlp" and chosen.trained is not None
    piecewise = trials[1]["values"] == chosen.search["chosen"]
    spec = chosen.data.preprocessing
    assert spec.get("derived_columns") and (spec.get("numeric_encoding") is not None) == piecewise
    raw = data.test.raw.drop(columns=["Power [W]", "Strain [min Nm]", "Temperature difference [K]"])
    np.testing.assert_allclose(domain.encode(spec, raw), domain.encode(spec, data.test.raw), atol=1e-5)
    # Sensor histories (windows) are not searched.
    assert not domain.searches_model(domain.load(_config(data_path=str(cmapss_file))))
