"""Per-layer quantization error (pipeline/stages/layer_errors.py): a layer made hard to quantize is found,
by its Keras name; the debugger's rows map back to the builder's layers."""

import numpy as np
import pytest

from pipeline.stages import layer_errors
from pipeline.stages.compress import CompressionJob, compress, weights_by_layer_name
from tests import tiny_models

HARD_LAYER = "hidden_1"


def hard_to_quantize_job(variants=("int8",), **overrides):
    """A trained-looking MLP whose `hidden_1` has one input row of weights 1,000x smaller than the rest: in
    int8 those weights round to zero (the layer's own error), while every other layer quantizes cleanly."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(800, 8)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0.5).astype(np.float32)
    model = tiny_models.tiny_mlp(keras, (8,), hidden_units=(16, 8))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(features, labels, epochs=3, verbose=0)
    first, first_bias = model.get_layer("hidden_0").get_weights()
    first[:, 0] *= 1000.0  # unit 0 of hidden_0: a huge-range activation ...
    first_bias[0] *= 1000.0
    model.get_layer("hidden_0").set_weights([first, first_bias])
    second, second_bias = model.get_layer(HARD_LAYER).get_weights()
    second[0, :] /= 1000.0  # ... that hidden_1 reads through weights 1,000x smaller than its others
    model.get_layer(HARD_LAYER).set_weights([second, second_bias])
    validation = rng.normal(size=(300, 8)).astype(np.float32)
    job = CompressionJob(model_builder=tiny_models.tiny_mlp, input_shape=(8,), model_options={"hidden_units": (16, 8)},
                         weights=weights_by_layer_name(model), train_features=features, train_labels=labels,
                         train_sample_weights=None, representative_features=features[:100],
                         validation_features=validation,
                         validation_labels=(validation[:, 0] + 0.5 * validation[:, 1] > 0.5).astype(np.int64),
                         variants=variants, **overrides)
    return job, model, validation


def test_the_layer_made_hard_to_quantize_is_the_one_marked():
    job, _, _ = hard_to_quantize_job()
    result = compress(job, progress=lambda _: None)["int8"]
    assert result.status == "ok", result.reason
    table = result.layers
    assert "error" not in table, table
    by_layer = {row["keras_layer"]: row for row in table["layers"]}
    assert set(by_layer) >= {"hidden_0", HARD_LAYER, "probability"}
    assert all(row["keras_layer"] is not None for row in table["layers"])
    assert by_layer[HARD_LAYER]["over_warning_level"], by_layer[HARD_LAYER]
    assert table["summary"]["worst"]["keras_layer"] == HARD_LAYER
    assert HARD_LAYER in table["summary"]["over_warning_level"]
    others = [row["rmse_over_scale"] for row in table["layers"] if row["keras_layer"] != HARD_LAYER]
    assert by_layer[HARD_LAYER]["rmse_over_scale"] > 5 * max(others), table["layers"]
    assert by_layer["probability"]["rmse_over_scale"] < layer_errors.WARNING_LEVEL
    assert table["debug_rows"] == 200 and table["warning_level"] == 0.7
    assert "layers" not in result.summary()  # compression.json keeps its shape; layers.json holds the table


@pytest.mark.parametrize("tensor_name, expected", [
    ("fraud_mlp/dense_0/MatMul;fraud_mlp/dense_0/Relu;fraud_mlp/dense_0/BiasAdd", "dense_0"),
    ("model_1/dense_0_1/MatMul", "dense_0"),                    # Keras 3's suffix
    ("model/quant_dense_1/MatMul;model/quant_dense_1/BiasAdd", "dense_1"),   # tfmot's QAT wrapper
    ("StatefulPartitionedCall:0", "probability"),                # the final activation
    ("tfl.quantize", None),
])
def test_tensor_names_map_back_to_the_builders_layers(tensor_name, expected):
    names = ["features", "dense_0", "dropout_0", "dense_1", "probability"]
    assert layer_errors.keras_layer_of(tensor_name, names, "probability") == expected


def test_the_table_computes_rmse_in_quantization_steps():
    dump = ("op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,scale,zero_point,"
            "tensor_name\nFULLY_CONNECTED,19,16.0,0.05,-0.02,0.14,0.01,0.0125,-128,m/dense_1/MatMul\n"
            "FULLY_CONNECTED,15,32.0,0.5,-0.1,1.7,0.25,2.5,-128,m/dense_0/MatMul\n")
    rows = layer_errors.layer_table(dump, ["dense_0", "dense_1"], "dense_1")
    assert [row["keras_layer"] for row in rows] == ["dense_0", "dense_1"]  # in the model's order
    assert rows[0]["rmse_over_scale"] == pytest.approx(0.2) and not rows[0]["over_warning_level"]
    assert rows[1]["rmse_over_scale"] == pytest.approx(8.0) and rows[1]["over_warning_level"]
    assert layer_errors.summary(rows)["worst"]["keras_layer"] == "dense_1"
