"""Module-level model builders for tests (they must pickle into the compression child)."""

import os
import signal

_calls = {"count": 0}


def tiny_mlp(keras, input_shape, hidden_units=(16,)):
    inputs = keras.Input(shape=input_shape)
    hidden = inputs
    for index, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(hidden)
    return keras.Model(inputs, outputs)


def crashes_on_fourth_build(keras, input_shape):
    """Kills its own process (as the TFLite converter can) the 4th time it is called in a process.

    The compression child builds a fresh twin per PTQ variant: float32, dynamic_range,
    float16, then int8, so int8's process dies with SIGSEGV; a fresh child builds the rest.
    """
    _calls["count"] += 1
    if _calls["count"] == 4:
        os.kill(os.getpid(), signal.SIGSEGV)
    return tiny_mlp(keras, input_shape)


def tiny_conv1d(keras, input_shape):
    """(steps, channels) -> Conv1D -> global average -> Dense: a Conv1D, whose zeros tfmot's prune-preserving QAT
    scheme does not keep by itself."""
    inputs = keras.Input(shape=input_shape)
    hidden = keras.layers.Conv1D(32, 3, padding="same", activation="relu", name="conv")(inputs)
    hidden = keras.layers.GlobalAveragePooling1D(name="pool")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(hidden)
    return keras.Model(inputs, outputs)
