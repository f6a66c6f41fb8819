"""Fit: the one compile and the one training loop of the domain's model, in Keras 3 or tf_keras.

Both ways of training go through here: the single-machine path (train.py, Keras 3) and the
multi-worker path (distributed.py, tf_keras under MultiWorkerMirroredStrategy, since Keras 3
cannot train there). So both use the same optimizer, loss and metrics (PR-AUC and ROC-AUC),
the same early stopping on validation PR-AUC with the best epoch's weights restored, and the
same progress line per epoch. What differs stays with each path: where the model is built
(the strategy's scope), the seeds, the batches and how they are sharded.

Every function takes the Keras module (`keras` or `tf_keras`) as its first argument, as the
domains' model builders do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# The optimizers a domain may train with (Domain.optimizer), built the same way in Keras 3
# and tf_keras: Adam, or Adadelta with Zeiler's rho and epsilon as Kim (2014) used it.
OPTIMIZERS = ("adam", "adadelta")

# The values an epoch's progress line shows, in this order, where the epoch's logs hold them.
EPOCH_LINE_KEYS = ("loss", "val_loss", "val_pr_auc", "val_roc_auc")


def make_optimizer(keras: Any, name: str, learning_rate: float) -> Any:
    """The named optimizer of the Keras module `keras` (Keras 3 or tf_keras)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate=learning_rate, rho=0.95, epsilon=1e-6)
    raise ValueError(f"optimizer is {name!r}, expected one of {', '.join(OPTIMIZERS)}")


# The losses a model may train with: binary cross-entropy, or the focal loss of Lin et al. (2017),
# which down-weights the many easy negatives of a rare-positive problem (gamma 2, their default).
LOSSES = ("binary_crossentropy", "focal")
# Learning-rate schedules: constant, or halved after 3 epochs without a better validation PR-AUC.
LEARNING_RATE_SCHEDULES = ("constant", "reduce_on_plateau")


def sample_weights_for(labels: np.ndarray, class_weights: dict[int, float]) -> np.ndarray:
    return np.where(np.asarray(labels) == 1, class_weights[1], class_weights[0]).astype(np.float32)


def training_rows(features: np.ndarray, labels: np.ndarray, class_weights: dict[int, float], *,
                  targets: np.ndarray | None = None, extra_rows: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(features, labels, targets, weights) that a recipe trains on: the train rows, then any `extra_rows` (synthetic
    rows and a teacher's scores) at weight 1 beside the train rows' class weights. targets: `targets` (a teacher's mix)
    or the labels, None where neither is given; weights: None without extra rows (the class weights then apply)."""
    if extra_rows is None:
        return features, labels, targets, None
    extra_features, extra_targets = extra_rows
    return (np.concatenate([features, extra_features]),
            np.concatenate([labels, np.rint(extra_targets).astype(np.asarray(labels).dtype)]),
            np.concatenate([labels if targets is None else targets, extra_targets]),
            np.concatenate([sample_weights_for(labels, class_weights), np.ones(len(extra_targets))]))


def make_loss(keras: Any, name: str) -> Any:
    """The named loss of the Keras module `keras`."""
    if name == "binary_crossentropy":
        return "binary_crossentropy"
    if name == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=2.0)
    raise ValueError(f"loss is {name!r}, expected one of {', '.join(LOSSES)}")


def schedule_callbacks(keras: Any, name: str) -> list:
    """The callbacks that carry out the named learning-rate schedule (none for 'constant')."""
    if name == "constant":
        return []
    if name == "reduce_on_plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor="val_pr_auc", mode="max", factor=0.5, patience=3,
                                                  min_lr=1e-5, verbose=0)]
    raise ValueError(f"learning-rate schedule is {name!r}, expected one of {', '.join(LEARNING_RATE_SCHEDULES)}")


def compile_model(keras: Any, model: Any, *, optimizer: str, learning_rate: float,
                  jit_compile: bool | None = None, loss: str = "binary_crossentropy") -> None:
    """Compile `model` for training: the named optimizer and loss, PR-AUC and ROC-AUC.

    jit_compile: XLA on or off (the run's Runtime); None leaves the Keras module's default, as
    the multi-worker path does.
    """
    options = {} if jit_compile is None else {"jit_compile": jit_compile}
    model.compile(
        optimizer=make_optimizer(keras, optimizer, learning_rate),
        loss=make_loss(keras, loss),
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc"), keras.metrics.AUC(name="roc_auc")],
        **options,
    )


@dataclass(frozen=True)
class FitHistory:
    values: dict[str, list[float]]   # metric name -> one float per epoch run
    epochs_run: int


def fit(keras: Any, model: Any, batches: Any, *, validation: Any, epochs: int, patience: int,
        progress: Callable[[str], None], epoch_line_keys: tuple[str, ...] = EPOCH_LINE_KEYS,
        timed_epoch_lines: bool = True, shuffle: bool | None = None,
        learning_rate_schedule: str = "constant") -> FitHistory:
    """Train a compiled `model` on `batches`, early-stopped on validation PR-AUC.

    Stops after `patience` epochs without a better validation PR-AUC and restores the weights
    of the best epoch; reports one line per epoch through `progress` (the values named in
    `epoch_line_keys`, and the epoch's seconds if `timed_epoch_lines`). shuffle: passed to
    `model.fit` when given (the batches come shuffled already); None leaves it out.
    learning_rate_schedule: one of LEARNING_RATE_SCHEDULES.
    """
    stopper = keras.callbacks.EarlyStopping(monitor="val_pr_auc", mode="max", patience=patience,
                                            restore_best_weights=True)
    line = epoch_line(keras, epochs, progress, keys=epoch_line_keys, timed=timed_epoch_lines)
    options = {} if shuffle is None else {"shuffle": shuffle}
    callbacks = [stopper, line, *schedule_callbacks(keras, learning_rate_schedule)]
    history = model.fit(batches, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=0,
                        **options)
    values = {name: [float(value) for value in series] for name, series in history.history.items()
              if name not in ("lr", "learning_rate")}
    return FitHistory(values=values, epochs_run=len(history.epoch))


def best_epoch(history: dict[str, list[float]], epochs_run: int) -> int:
    """The 1-based epoch of the best validation PR-AUC (the weights early stopping kept); the last
    epoch run when the history has no validation PR-AUC."""
    scores = history.get("val_pr_auc")
    return int(np.argmax(scores)) + 1 if scores else epochs_run


def epoch_line(keras: Any, total_epochs: int, progress: Callable[[str], None], *,
               keys: tuple[str, ...] = EPOCH_LINE_KEYS, timed: bool = True) -> Any:
    """A `keras.callbacks.Callback` (of the given Keras module) that reports one line per epoch."""

    class EpochLine(keras.callbacks.Callback):
        """One progress line per epoch."""

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = "  ".join(f"{key} {logs[key]:.4f}" for key in keys if key in logs)
            seconds = f"  ({time.monotonic() - self._started:.1f} s)" if timed else ""
            progress(f"  epoch {epoch + 1}/{total_epochs}  {shown}{seconds}")

    return EpochLine()
