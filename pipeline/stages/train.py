"""Train: the domain's Functional model in Keras 3, early-stopped on validation PR-AUC.

One machine trains here, in Keras 3; several machines train through distributed.py (tf_keras
under MultiWorkerMirroredStrategy) and the weights come back into the Keras 3 model. Both go
through the one compile and fit of fitting.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pipeline.runtime import Runtime
from pipeline.stages.distributed import DistributedJob, train_multi_worker
# OPTIMIZERS and make_optimizer are re-exported: callers have imported them from this module.
from pipeline.stages.fitting import OPTIMIZERS, best_epoch, compile_model, fit, make_optimizer  # noqa: F401
from pipeline.stages.fitting import training_rows
from pipeline.stages.input_pipeline import Augmentation, evaluation_dataset, training_dataset
from pipeline.stages.twin import build_with_weights


@dataclass
class TrainedModel:
    model: Any                   # a Keras 3 model
    history: dict                # per-epoch metrics
    seconds: float
    epochs_run: int
    best_epoch: int
    class_weights: dict
    optimizer: dict              # {"name": ..., "learning_rate": ..., "loss": ..., "learning_rate_schedule": ...}
    distributed: dict | None = None   # workers, replicas in sync, weights fingerprint
    input_pipeline: dict | None = None  # what the tf.data pipeline did (input_pipeline.InputPipelineSummary)

    def summary(self) -> dict:
        return {"history": self.history, "seconds": round(self.seconds, 3), "epochs_run": self.epochs_run,
                "best_epoch": self.best_epoch, "class_weights": self.class_weights, "optimizer": self.optimizer,
                "parameters": int(self.model.count_params()), "distributed": self.distributed,
                "input_pipeline": self.input_pipeline}


def class_weights_for(labels: np.ndarray) -> dict[int, float]:
    """Up-weight the rare positive class by the square root of the class ratio.

    Full balancing (ratio ~50 at 2 % positives) inflates every score and ruins
    calibration (Brier, ECE); the square root keeps positives influential while the
    decision threshold, chosen on validation data, does the rest.
    """
    labels = np.asarray(labels)
    positives = max(int(labels.sum()), 1)
    negatives = max(int(labels.size - positives), 1)
    return {0: 1.0, 1: float(max(1.0, np.sqrt(negatives / positives)))}


def train_model(
    *,
    model_builder: Callable[..., Any],
    input_shape: tuple[int, ...],
    model_options: dict,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    runtime: Runtime,
    epochs: int,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    patience: int = 5,
    progress: Callable[[str], None] = print,
    cluster=None,
    augmentation: Augmentation | None = None,
    loss: str = "binary_crossentropy",
    learning_rate_schedule: str = "constant",
    train_targets: np.ndarray | None = None,
    extra_rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainedModel:
    """Train the domain's model; with a `cluster`, across several workers (see distributed.py).

    Batches come from the tf.data pipeline of input_pipeline.py (shuffled indices, parallel
    gather, the domain's `augmentation` if any, prefetch), on every device alike. loss and
    learning_rate_schedule: fitting.LOSSES and fitting.LEARNING_RATE_SCHEDULES; train_targets:
    soft targets in place of the train labels (distillation; single machine only). extra_rows:
    (features, targets) of rows a teacher labelled (augmented distillation), trained beside the
    train rows at weight 1.
    """
    import keras

    if cluster is not None:
        if (train_targets is not None or extra_rows is not None or loss != "binary_crossentropy"
                or learning_rate_schedule != "constant"):
            raise ValueError("multi-worker training takes the default recipe: binary cross-entropy on the labels "
                             "at a constant learning rate")
        return _train_on_cluster(
            cluster, model_builder=model_builder, input_shape=input_shape, model_options=model_options,
            train_features=train_features, train_labels=train_labels, validation_features=validation_features,
            validation_labels=validation_labels, runtime=runtime, epochs=epochs, optimizer=optimizer,
            learning_rate=learning_rate, patience=patience, progress=progress, augmentation=augmentation)
    model = model_builder(keras, input_shape, **model_options)
    compile_model(keras, model, optimizer=optimizer, learning_rate=learning_rate, jit_compile=runtime.jit_compile,
                  loss=loss)
    class_weights = class_weights_for(train_labels)
    features, labels, targets, weights = training_rows(train_features, train_labels, class_weights,
                                                       targets=train_targets, extra_rows=extra_rows)
    batches, pipeline = training_dataset(features, labels, class_weights=class_weights,
                                         batch_size=runtime.batch_size, seed=runtime.seed, augmentation=augmentation,
                                         targets=targets, weights=weights)
    started = time.monotonic()
    # TensorFlow 2.21 logs an error-level line ("NodeDef mentions attribute
    # use_unbounded_threadpool ...") for its own tf.data graph under op determinism; native
    # stderr is held for the fit (progress goes to stdout) and shown if the fit fails.
    from pipeline.console import native_output_silenced

    with native_output_silenced():
        history = fit(keras, model, batches, validation=evaluation_dataset(validation_features, validation_labels,
                                                                            batch_size=runtime.batch_size),
                      epochs=epochs, patience=patience, progress=progress, shuffle=False,  # shuffled above
                      learning_rate_schedule=learning_rate_schedule)
    return TrainedModel(model=model, history=history.values, seconds=time.monotonic() - started,
                        epochs_run=history.epochs_run, best_epoch=best_epoch(history.values, history.epochs_run),
                        class_weights=class_weights,
                        optimizer={"name": optimizer, "learning_rate": learning_rate, "loss": loss,
                                   "learning_rate_schedule": learning_rate_schedule},
                        input_pipeline=pipeline.to_json())


def _train_on_cluster(cluster, *, model_builder, input_shape, model_options, train_features, train_labels,
                      validation_features, validation_labels, runtime: Runtime, epochs: int, optimizer: str,
                      learning_rate: float, patience: int, progress: Callable[[str], None],
                      augmentation: Augmentation | None) -> TrainedModel:
    """Train across the cluster (distributed.py), then copy the weights into the Keras 3 model."""
    import keras

    class_weights = class_weights_for(train_labels)
    started = time.monotonic()
    result = train_multi_worker(DistributedJob(
        cluster=cluster, model_builder=model_builder, input_shape=input_shape, model_options=model_options,
        train_features=train_features, train_labels=train_labels,
        class_weights=class_weights,
        validation_features=validation_features, validation_labels=validation_labels, epochs=epochs,
        batch_size=runtime.batch_size, optimizer=optimizer, learning_rate=learning_rate, patience=patience,
        seed=runtime.seed,
        augmentation=augmentation, deterministic_ops=runtime.deterministic_ops),
        progress=progress)
    model = build_with_weights(keras, model_builder, input_shape, model_options, result.weights)
    epochs_run = len(result.history.get("loss", []))
    return TrainedModel(model=model, history=result.history, seconds=time.monotonic() - started,
                        epochs_run=epochs_run, best_epoch=best_epoch(result.history, epochs_run),
                        class_weights=class_weights, optimizer={"name": optimizer, "learning_rate": learning_rate},
                        distributed={"workers": list(cluster.workers), "worker_index": cluster.index,
                                     "replicas_in_sync": result.replicas_in_sync,
                                     "engine": "tf.distribute.MultiWorkerMirroredStrategy (tf_keras flavour)",
                                     "weights_fingerprint": result.weights_fingerprint})


def batched_predict_function(model, batch_size: int = 8192) -> Callable[[np.ndarray], np.ndarray]:
    """A fast predict function of the Keras model: rows -> probability of class 1.

    `predict_on_batch` avoids `predict`'s per-call set-up, which dominates when SHAP
    calls the model thousands of times.
    """

    def predict(features: np.ndarray) -> np.ndarray:
        outputs = [np.asarray(model.predict_on_batch(features[start:start + batch_size]), dtype=np.float64)
                   for start in range(0, len(features), batch_size)]
        return np.concatenate(outputs).reshape(len(features), -1)[:, -1] if outputs else np.zeros(0)

    return predict
