"""The deep ensemble of the chosen tabular recipe (issue 19): the averaged model, its weights, the validation rule."""

from __future__ import annotations

import numpy as np
import pytest


def _data(rows: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 5)).astype(np.float32)
    labels = ((features[:, 0] + 0.5 * features[:, 1] ** 2 + rng.normal(scale=0.7, size=rows)) > 1.2).astype(np.int64)
    return features, labels


def test_the_ensemble_model_averages_its_members_probabilities():
    import keras

    from pipeline.domains.tabular import build_mlp, member_layer_name
    from pipeline.stages.ensemble import ensemble_weights
    from pipeline.stages.twin import build_with_weights, weights_by_layer_name

    keras.utils.set_random_seed(0)
    singles = [build_mlp(keras, 5, hidden_units=(8, 4)) for _ in range(3)]
    ensemble = build_with_weights(keras, build_mlp, (5,), {"hidden_units": (8, 4), "members": 3},
                                  ensemble_weights([weights_by_layer_name(m) for m in singles], member_layer_name))
    names = {layer.name for layer in ensemble.layers}
    assert {"member_0_dense_0", "member_2_probability", "probability"} <= names and "dense_0" not in names
    assert ensemble.count_params() == 3 * singles[0].count_params()
    rows = _data(50)[0]
    expected = np.mean([np.asarray(m(rows, training=False)) for m in singles], axis=0)
    np.testing.assert_allclose(np.asarray(ensemble(rows, training=False)), expected, atol=1e-6)
    # One network keeps the names it always had: runs and twins of earlier versions still match.
    assert [layer.name for layer in singles[0].layers if layer.weights] == ["dense_0", "dense_1", "probability"]


def test_an_ensemble_converts_to_a_full_integer_tflite_the_microcontroller_runtime_runs():
    import tensorflow as tf
    import tf_keras

    from pipeline.domains.tabular import build_mlp
    from pipeline.stages.microcontroller import run_on_microcontroller

    tf_keras.utils.set_random_seed(0)
    model = build_mlp(tf_keras, 5, hidden_units=(8,), members=3)
    rows = _data(120)[0]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in rows[:100])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    result = run_on_microcontroller(converter.convert(), rows[100:])
    assert result.supported, result.first_unsupported
    assert {"FULLY_CONNECTED", "ADD", "MUL"} <= set(result.operators)   # the average: a sum, then times 1/k
    expected = np.asarray(model(rows[100:], training=False)).reshape(-1)
    assert np.max(np.abs(result.outputs - expected)) < 0.03   # int8 steps of the averaged probability


def test_the_ensemble_is_kept_only_when_averaging_beats_the_members_trained_for_it():
    from pipeline.stages.ensemble import keep_ensemble

    assert keep_ensemble(0.80, [0.78, 0.79])
    assert not keep_ensemble(0.785, [0.78, 0.79])       # equal to the mean: not better
    assert not keep_ensemble(0.99, [])                   # nothing trained for it: nothing to compare
    # The first member (the search's choice, 0.95 on validation) is not in the comparison.
    from pipeline.stages.ensemble import KEEP_RULE
    assert "left out" in KEEP_RULE


def test_train_deep_ensemble_trains_the_other_members_and_records_what_it_decided():
    from pipeline.domains.tabular import build_mlp, member_layer_name
    from pipeline.runtime import configure_runtime
    from pipeline.stages.ensemble import ensemble_sentence, train_deep_ensemble
    from pipeline.stages.train import train_model

    features, labels = _data(900)
    train, validation = slice(0, 600), slice(600, 900)
    runtime = configure_runtime(seed=0, batch_size=64, allow_accelerator=False)
    options = {"hidden_units": (16,), "dropout_rate": 0.0}

    def member(seed: int):
        import dataclasses

        import keras
        keras.utils.set_random_seed(seed)
        return train_model(model_builder=build_mlp, input_shape=(5,), model_options=options,
                           train_features=features[train], train_labels=labels[train],
                           validation_features=features[validation], validation_labels=labels[validation],
                           runtime=dataclasses.replace(runtime, seed=seed), epochs=3, progress=lambda _: None)

    trained_seeds: list[int] = []

    def train_member(m: int):
        trained_seeds.append(m)
        return member(m - 1)

    lines: list[str] = []
    first = member(0)
    outcome = train_deep_ensemble(first, members=3, model_builder=build_mlp, input_shape=(5,), model_options=options,
                                  layer_name=member_layer_name, train_member=train_member,
                                  validation_features=features[validation], validation_labels=labels[validation],
                                  progress=lines.append)
    record = outcome.record
    assert trained_seeds == [2, 3] and len(record["member_validation_pr_auc"]) == 3 and len(lines) == 4
    fresh = np.mean(record["member_validation_pr_auc"][1:])
    assert record["fresh_member_mean_validation_pr_auc"] == pytest.approx(fresh, abs=1e-6)
    assert record["kept"] == (record["validation_pr_auc"] > fresh)
    if record["kept"]:
        assert outcome.model_options == {**options, "members": 3}
        assert outcome.trained.model.count_params() == 3 * first.model.count_params()
        assert "Deep ensemble: 3 networks" in ensemble_sentence(record)
    else:
        assert outcome.trained is first and outcome.model_options == options
        assert "not kept" in ensemble_sentence(record)
    assert ensemble_sentence(None) is None


def test_the_number_of_members_in_force_follows_the_table_size_the_option_and_quick():
    from pipeline.config import RunConfig
    from pipeline.registry import get_domain
    from pipeline.search_step import (
        AUTO_ENSEMBLE_MAX_TRAIN_ROWS,
        AUTO_ENSEMBLE_MEMBERS,
        QUICK_ENSEMBLE_MEMBERS,
        ensemble_members_in_force,
    )

    class Split:
        def __init__(self, rows):
            self.labels = np.zeros(rows)

    class Data:
        def __init__(self, rows):
            self.train = Split(rows)
            self.preprocessing = {"format": "tabular"}

    domain = get_domain("tabular")

    def members(rows, quick=False, cluster=None, **options):
        config = RunConfig(domain="tabular", quick=quick, options=options).with_domain_defaults(domain)
        return ensemble_members_in_force(config, domain, Data(rows), cluster=cluster)

    assert members(AUTO_ENSEMBLE_MAX_TRAIN_ROWS) == AUTO_ENSEMBLE_MEMBERS
    assert members(AUTO_ENSEMBLE_MAX_TRAIN_ROWS + 1) == 1
    assert members(50_000, ensemble_members=3) == 3 and members(500, ensemble_members=1) == 1
    assert members(500, quick=True) == QUICK_ENSEMBLE_MEMBERS
    assert members(500, cluster=object()) == 1   # a multi-worker run trains one network
    sentiment = get_domain("sentiment")
    config = RunConfig(domain="sentiment").with_domain_defaults(sentiment)
    assert ensemble_members_in_force(config, sentiment, Data(500)) == 1   # not a table
