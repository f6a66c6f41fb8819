"""What fine-tuning in the compression child uses beside the builder (variant_builder.py): a deep ensemble's member
outputs, the callbacks that keep the best validation epoch and a pruned layer's zeros, and the sparsity of kernels.

Every function takes the Keras module (tf_keras in the child) or a model of it; only the child imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Pruning's recovery goes on past its planned epochs while the validation score still improves: it stops once this
# many epochs pass without a better one (at most PRUNING_MAX_EPOCHS_FACTOR x the planned epochs in all).
RECOVERY_PATIENCE = 2
PRUNING_MAX_EPOCHS_FACTOR = 2


def averaged_members(keras, model) -> list | None:
    """The member outputs (tensors) of a deep ensemble, whose output layer averages them; None otherwise."""
    if len(model.outputs) != 1:
        return None
    # The output's own node: a layer without weights (the Average) is shared, not copied, by clone_model, so it has
    # a node in every model cloned from this one, and `layer.input` is the first model's.
    output_layer, node_index, _ = model.outputs[0]._keras_history
    if not isinstance(getattr(output_layer, "layer", output_layer), keras.layers.Average):
        return None
    members = output_layer._inbound_nodes[node_index].input_tensors
    return list(members) if isinstance(members, (list, tuple)) and len(members) > 1 else None


def best_epoch_keeper(keras, features: np.ndarray | None, labels: np.ndarray | None, *, first_eligible: int,
                      batch_size: int, scored_model=None, stop_after: int | None = None,
                      patience: int = RECOVERY_PATIENCE):
    """A `keras.callbacks.Callback` (of the given Keras module) that scores every epoch on the
    validation split by PR-AUC and keeps the weights of the best eligible epoch; None without
    a validation split with both classes. `scored_model`: the model scored and snapshot, where it is not
    the one being fit (an ensemble's average, fit member by member through a model sharing its layers).
    `stop_after`: the planned epochs, where the fit may run longer: from there on, training stops once `patience`
    epochs have passed without a better validation score (still improving at the planned end: it goes on)."""
    if features is None or labels is None or len(labels) == 0 or len(np.unique(labels)) < 2:
        return None
    from sklearn.metrics import average_precision_score

    class KeepBestEpoch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.scores: list[float] = []
            self.best: tuple[float, int, list[np.ndarray]] | None = None

        def on_epoch_end(self, epoch, logs=None):
            model = scored_model if scored_model is not None else self.model
            scores = np.asarray(model.predict(features, batch_size=max(batch_size, 1024), verbose=0)).reshape(-1)
            score = float(average_precision_score(labels, scores))
            self.scores.append(score)
            if epoch + 1 >= first_eligible and (self.best is None or score > self.best[0]):
                self.best = (score, epoch + 1, [np.array(w) for w in model.get_weights()])
            if stop_after is not None and epoch + 1 >= stop_after and self.best is not None \
                    and epoch + 1 - self.best[1] >= patience:
                self.model.stop_training = True

        def restore_best(self, model) -> dict:
            score, epoch, weights = self.best
            model.set_weights(weights)
            return {"kept_epoch": epoch,
                    "kept_because": (f"best validation PR-AUC among epochs {first_eligible}-{len(self.scores)}"
                                     + (" (the epochs after the pruning schedule reached its target)"
                                        if first_eligible > 1 else "")),
                    "validation_pr_auc_by_epoch": [round(s, 5) for s in self.scores]}

    return KeepBestEpoch()


def zero_keeper(keras, model, pruned_layers: list[str]):
    """A `keras.callbacks.Callback` that sets the pruned weights of `pruned_layers` back to zero after every
    training batch, for the layers whose zeros tfmot's prune-preserving QAT scheme does not keep; None if there
    are none. Its `layer_names` says which.

    The scheme keeps the mask of Conv2D and Dense kernels only: Conv1D and Embedding are commented out of
    its registry (`PrunePreserveQuantizeRegistry._LAYERS_CONFIG_MAP`), and a layer left out of QAT is
    plain float. Without this, the zeros of those layers fill in during fine-tuning (measured on main,
    2026-11-28: the maintenance sensor CNN's `pqat_int8` file held 31 % zeros against its pruned model's 75 %,
    the sentiment model's 32 %, and their gzip grew 1.3-1.5x)."""
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve.prune_preserve_quantize_registry import (  # noqa: E501
        PrunePreserveQuantizeRegistry,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    masked: list[tuple[Any, np.ndarray]] = []
    layer_names: list[str] = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # a QuantizeWrapper's wrapped layer, or a layer left out of QAT
        if inner.name not in pruned_layers:
            continue
        if PrunePreserveQuantizeRegistry.supports(inner) \
                and not PrunePreserveQuantizeRegistry._disable_prune_preserve(inner):
            continue  # the scheme masks this layer's kernel itself
        for weight_name in PruneRegistry._weight_names(inner):
            variable = getattr(inner, weight_name)
            masked.append((variable, (np.asarray(variable.numpy()) != 0).astype(variable.dtype.as_numpy_dtype)))
        layer_names.append(inner.name)
    if not masked:
        return None

    class KeepZeros(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for variable, mask in masked:
                variable.assign(variable * mask)

    keeper = KeepZeros()
    keeper.layer_names = layer_names
    return keeper


def kernel_sparsity(model, layer_names: list[str]) -> float | None:
    """Share of exact zeros over the kernels of the given layers."""
    zeros = total = 0
    for layer in model.layers:
        if layer.name in layer_names:
            for weight in layer.get_weights():
                if weight.ndim >= 2:
                    zeros += int((weight == 0).sum())
                    total += weight.size
    return round(zeros / total, 4) if total else None
