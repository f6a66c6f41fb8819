"""FraudDomain: loading through the generic loader, encoding, and its Functional MLP."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pipeline.config import RunConfig
from pipeline.data.fraud_generator import generate_transactions
from pipeline.data.tabular import encode_tabular
from pipeline.domain import Domain, DomainData
from pipeline.domains.fraud import FraudDomain, build_mlp
from pipeline.errors import InputError


def test_class_attributes():
    domain = FraudDomain()
    assert isinstance(domain, Domain)
    assert domain.name == "fraud" and domain.modality == "tabular" and domain.headline_metric == "pr_auc"
    assert domain.default_label == "is_fraud" and domain.default_sensitive == ("sex", "age")
    assert domain.summary()["default_sensitive"] == ["sex", "age"]
    assert domain.title and domain.description


def test_model_builder_is_the_plain_module_function():
    assert FraudDomain.model_builder is build_mlp
    assert FraudDomain().model_builder is build_mlp
    assert pickle.loads(pickle.dumps(FraudDomain.model_builder)) is build_mlp
    assert b"build_mlp" in pickle.dumps(FraudDomain().model_builder)


def test_load_default_data():
    domain = FraudDomain()
    config = RunConfig(domain="fraud", max_rows=4000, seed=3)
    data = domain.load(config)
    assert isinstance(data, DomainData)
    assert data.source.kind == "generated" and data.source.path is None
    assert data.source.rows == 4000
    assert data.label_name == "is_fraud" and data.positive_class == "fraud"
    assert data.sensitive_columns == ("sex", "age")
    assert "fixed seed 0" in data.source.notes[0]
    assert any("stratified subsample of 4000 of 24000" in note for note in data.source.notes)
    encoded = domain.encode(data.preprocessing, data.test.raw)
    assert encoded.dtype == np.float32 and encoded.shape == (len(data.test), len(data.feature_names))
    # the same table whatever the run seed; the split follows the run seed
    other = domain.load(RunConfig(domain="fraud", max_rows=4000, seed=4))
    assert other.source.fingerprint == data.source.fingerprint
    assert not other.test.raw.equals(data.test.raw)
    assert domain.model_options(data, config) == {"hidden_units": (256, 128), "dropout_rate": 0.2}


def test_load_user_file(tmp_path):
    frame = generate_transactions(rows=3000, seed=5).rename(columns={"is_fraud": "fraud_flag"})
    path = tmp_path / "transactions.csv"
    frame.to_csv(path, index=False)
    domain = FraudDomain()
    data = domain.load(RunConfig(domain="fraud", data_path=str(path), label_column="fraud_flag",
                                 sensitive_columns=("sex",), seed=1))
    assert data.source.kind == "file" and data.source.path == str(path)
    assert data.label_name == "fraud_flag" and data.sensitive_columns == ("sex",)
    assert "age" in data.feature_groups   # not sensitive here, so a feature
    np.testing.assert_array_equal(domain.encode(data.preprocessing, data.test.raw),
                                  encode_tabular(data.preprocessing, data.test.raw))


def test_user_file_needs_label_and_sensitive(tmp_path):
    path = tmp_path / "transactions.csv"
    generate_transactions(rows=500).to_csv(path, index=False)
    domain = FraudDomain()
    with pytest.raises(InputError, match=r"no label column given(.|\n)*How to fix: pass --label"):
        domain.load(RunConfig(domain="fraud", data_path=str(path), sensitive_columns=("sex",)))
    with pytest.raises(InputError, match=r"no sensitive column given(.|\n)*How to fix: pass --sensitive"):
        domain.load(RunConfig(domain="fraud", data_path=str(path), label_column="is_fraud"))


def test_default_data_error_names_the_generated_source():
    # sex is a category of the data (it keeps its error); the age bands the tool made merge instead
    with pytest.raises(InputError) as caught:
        FraudDomain().load(RunConfig(domain="fraud", max_rows=300, min_group_size=40))
    text = str(caught.value)
    assert text.startswith("the default fraud data (generated): sensitive column 'sex'")
    assert "raise --max-rows" in text
    data = FraudDomain().load(RunConfig(domain="fraud", max_rows=300, min_group_size=20))
    assert any("merged with its neighbour" in note for note in data.source.notes)
    assert (data.test.groups["age"].value_counts() >= 20).all()


# --------------------------------------------------------------------------- the model


def test_build_mlp_with_keras3_and_tf_keras_gives_twins():
    keras = pytest.importorskip("keras")
    tf_keras = pytest.importorskip("tf_keras")
    model = build_mlp(keras, (7,), hidden_units=(8, 4), dropout_rate=0.1)
    twin = build_mlp(tf_keras, 7, hidden_units=(8, 4), dropout_rate=0.1)
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [type(layer).__name__ for layer in twin.layers] == [type(layer).__name__ for layer in model.layers]
    last = model.layers[-1]
    assert last.units == 1 and last.get_config()["activation"] == "sigmoid"
    assert model.output_shape == (None, 1) and twin.output_shape == (None, 1)
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(32, 7)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    got = twin.predict(x, verbose=0)
    assert expected.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert ((expected > 0) & (expected < 1)).all()


def test_build_mlp_output_stays_float32_under_mixed_precision():
    keras = pytest.importorskip("keras")
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_float16")
        model = build_mlp(keras, (5,), hidden_units=(4,))
        assert model.layers[1].compute_dtype == "float16"
        assert model.output.dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)
