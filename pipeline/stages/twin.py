"""The twin: one trained model in both Keras flavours, its weights copied by layer name.

tfmot works only on tf_keras models, and Keras 3 does not train under
MultiWorkerMirroredStrategy; training otherwise happens in Keras 3. Every domain's model
builder takes the Keras module and names every layer that has weights, so the same builder
builds the model in either flavour and the weights go across by layer name (DESIGN.md,
"Keras 3 and tensorflow-model-optimization"):

  * Keras 3 -> tf_keras: the compression stage's twin (`build_with_weights(tf_keras, ...)`);
  * tf_keras -> Keras 3: a model trained by the multi-worker path (`build_with_weights(keras, ...)`).

Weights travel as {layer name: [arrays]} (`weights_by_layer_name`), which pickles into the
child processes where tf_keras lives. This module imports neither flavour itself.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def weights_by_layer_name(model) -> dict[str, list[np.ndarray]]:
    """{layer name: its weights} for every layer that has weights (Keras 3 or tf_keras)."""
    weights = {}
    for layer in model.layers:
        values = layer.get_weights()
        if values:
            if layer.name in weights:
                raise ValueError(f"two layers are named {layer.name!r}: give every layer a unique name")
            weights[layer.name] = [np.asarray(value) for value in values]
    return weights


def copy_weights_by_layer_name(weights: dict[str, list[np.ndarray]], model) -> None:
    """Set every weighted layer of `model` from `weights`; fail loudly on a mismatch."""
    targets = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(targets) - set(weights))
    unused = sorted(set(weights) - set(targets))
    if missing or unused:
        raise ValueError(f"the tf_keras twin does not match the trained model: layers without trained weights "
                         f"{missing}, trained layers absent from the twin {unused}; the model builder must give "
                         f"every layer with weights the same explicit name in both Keras flavours")
    for name, layer in targets.items():
        layer.set_weights(weights[name])


def build_with_weights(keras: Any, model_builder: Callable[..., Any], input_shape: tuple[int, ...],
                       model_options: dict, weights: dict[str, list[np.ndarray]]) -> Any:
    """The domain's model built with the Keras module `keras` and given `weights` by layer name.

    A fresh model (new layer objects) every call. For the tf_keras twin that is converted,
    `model_options` are the training options updated with the domain's twin_model_options.
    """
    model = model_builder(keras, input_shape, **model_options)
    copy_weights_by_layer_name(weights, model)
    return model


def max_output_difference(first, second, rows: np.ndarray) -> float:
    """The largest absolute difference between two models' outputs on `rows`, in inference mode:
    how far a rebuilt or rewritten model is from the one it stands for."""
    return float(np.max(np.abs(np.asarray(first(rows, training=False)) - np.asarray(second(rows, training=False)))))
