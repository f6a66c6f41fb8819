"""Fold BatchNormalization into the convolution or Dense layer before it, in a tf_keras twin.

tfmot keeps a BatchNormalization after a convolution as its own layer, which the converter
cannot fold into an already fake-quantized kernel (it stays as int8 MUL + ADD ops, measured:
2.5x the latency of post-training int8 for the imaging CNN). So quantization-aware training
folds it first (compress_variants.py), and QAT trains, and the file holds, the folded layer.

Works on the model's functional config: the folded model is rebuilt from an edited config,
and its weights are set from the original's.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fold_batch_normalization(keras, model) -> tuple[Any, list[str]]:
    """Fold every BatchNormalization that directly follows a Conv2D / DepthwiseConv2D / Dense.

    A pair folds when the layer has a linear activation, is called once, and feeds only the
    BatchNormalization, which normalises its last axis. The folded layer keeps its name and
    gets a bias: kernel * s and (bias - moving_mean) * s + beta, s = gamma / sqrt(moving_variance
    + epsilon), so in inference the new model computes what the old one did. A plain ReLU layer
    that alone follows the BatchNormalization becomes the folded layer's activation: tfmot's
    LayerReLUQuantize transform gives a Conv2D / Dense feeding a ReLU *layer* a no-op quantize
    config, which leaves its weights out of QAT (and out of pruning-preserving QAT's sparsity
    masks). Returns (a new functional model, ["<batch norm> into <layer>", ...]); (model, [])
    when nothing folds.
    """
    config = model.get_config()
    if "output_layers" not in config or any("inbound_nodes" not in entry for entry in config.get("layers", [])):
        return model, []   # not a functional model
    entries = {entry["name"]: entry for entry in config["layers"]}
    consumers: dict[str, list[str]] = {name: [] for name in entries}
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for inbound in node:
                consumers[inbound[0]].append(entry["name"])
    output_names = {item[0] for item in config["output_layers"]}
    pairs = _foldable_pairs(keras, model, entries, consumers, output_names)
    if not pairs:
        return model, []
    removed, described = _fold_in_config(pairs, entries, consumers, output_names)

    def replacement(name: str) -> str:
        while name in removed:
            name = removed[name]
        return name

    config["layers"] = [entry for entry in config["layers"] if entry["name"] not in removed]
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for inbound in node:
                if inbound[0] in removed:
                    inbound[0], inbound[1], inbound[2] = replacement(inbound[0]), 0, 0
    config["output_layers"] = [[replacement(item[0]), 0, 0] if item[0] in removed else item
                               for item in config["output_layers"]]
    folded_model = keras.Model.from_config(config)
    _set_folded_weights(keras, model, folded_model, pairs)
    return folded_model, described


def _foldable_pairs(keras, model, entries: dict, consumers: dict[str, list[str]],
                    output_names: set[str]) -> dict[str, str]:
    """{batch norm: the layer it folds into}, for every pair fold_batch_normalization can fold."""
    foldable = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    pairs: dict[str, str] = {}  # batch norm -> the layer it folds into
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        nodes = entries[layer.name]["inbound_nodes"]
        if len(nodes) != 1 or len(nodes[0]) != 1:
            continue
        producer = model.get_layer(nodes[0][0][0])
        axis = layer.get_config()["axis"]
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if (isinstance(producer, foldable) and producer.get_config().get("activation") == "linear"
                and len(entries[producer.name]["inbound_nodes"]) == 1 and consumers[producer.name] == [layer.name]
                and producer.name not in output_names and axis in (-1, len(layer.input_shape) - 1)):
            pairs[layer.name] = producer.name
    return pairs


def _fold_in_config(pairs: dict[str, str], entries: dict, consumers: dict[str, list[str]],
                    output_names: set[str]) -> tuple[dict[str, str], list[str]]:
    """Edit the folded layers' config entries (a bias; a following ReLU as their activation).

    Returns ({a removed layer: the layer whose output replaces its output}, the descriptions).
    """
    removed: dict[str, str] = {}  # a removed layer -> the layer whose output replaces its output
    described = []
    for batch_norm, producer in pairs.items():
        entries[producer]["config"]["use_bias"] = True
        removed[batch_norm] = producer
        followers = consumers[batch_norm]
        relu = entries[followers[0]] if len(followers) == 1 else None
        if (relu is not None and relu["class_name"] == "ReLU" and len(relu["inbound_nodes"]) == 1
                and batch_norm not in output_names and relu["config"].get("max_value") is None
                and not relu["config"].get("negative_slope") and not relu["config"].get("threshold")):
            entries[producer]["config"]["activation"] = "relu"
            removed[relu["name"]] = producer
            described.append(f"{batch_norm} into {producer} (with {relu['name']} as its activation)")
        else:
            described.append(f"{batch_norm} into {producer}")
    return removed, described


def _set_folded_weights(keras, model, folded_model, pairs: dict[str, str]) -> None:
    """Set the folded model's weights from the original's: unchanged layers copied, folded ones
    scaled by their batch normalization."""
    folded_into = {producer: batch_norm for batch_norm, producer in pairs.items()}
    for layer in folded_model.layers:
        if not layer.weights:
            continue
        original = model.get_layer(layer.name)
        if layer.name not in folded_into:
            layer.set_weights(original.get_weights())
            continue
        batch_norm = model.get_layer(folded_into[layer.name])
        values = dict(zip([w.name.split("/")[-1].split(":")[0] for w in batch_norm.weights],
                          batch_norm.get_weights()))
        scale = values.get("gamma", 1.0) / np.sqrt(values["moving_variance"] + batch_norm.get_config()["epsilon"])
        shift = values.get("beta", 0.0) - values["moving_mean"] * scale
        weights = original.get_weights()
        kernel = weights[0]
        bias = weights[1] if len(weights) > 1 else np.zeros(np.shape(scale), dtype=kernel.dtype)
        if isinstance(original, keras.layers.DepthwiseConv2D):  # output channel = input channel x multiplier
            kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        else:
            kernel = kernel * scale
        layer.set_weights([kernel.astype(weights[0].dtype), (bias * scale + shift).astype(weights[0].dtype)])
