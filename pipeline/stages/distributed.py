"""Multi-worker training with TensorFlow's own engine, `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3 does not train under MultiWorkerMirroredStrategy (its `fit` fails converting a
PerReplica value to a Tensor: keras-team/keras#20585, open since Keras 3.7; seen here with
keras 3.15.1 / tensorflow 2.21.0). tf_keras does. Every domain's model builder takes the
Keras module, so multi-worker training builds the tf_keras flavour of the same model,
trains it across the workers with the same compile and fit as one machine (fitting.py), and
hands the weights back by layer name; the parent copies them into the Keras 3 model
(twin.py) and every later stage is unchanged. What is here is what only several machines
need: TF_CONFIG, the strategy and its scope, the chief's and the workers' roles, sharding.

As in compression, all of it runs in a spawned child process: TF_CONFIG and tf_keras stay
out of the parent. Every worker runs the same command; worker 0 is the chief, and only the
chief goes on to compress, evaluate, explain, audit and write the report.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pipeline.console import descriptors_redirected, verbose
from pipeline.errors import InputError
from pipeline.runtime import set_deterministic_ops
from pipeline.stages.fitting import compile_model, fit
from pipeline.stages.input_pipeline import evaluation_dataset, training_dataset
from pipeline.stages.twin import weights_by_layer_name


@dataclass(frozen=True)
class Cluster:
    workers: tuple[str, ...]     # "host:port" of every worker, in index order
    index: int                   # this process's worker index; 0 is the chief

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def tf_config(self) -> dict:
        return {"cluster": {"worker": list(self.workers)}, "task": {"type": "worker", "index": self.index}}


def resolve_cluster(workers: tuple[str, ...], worker_index: int | None,
                    environment: dict[str, str] | None = None) -> Cluster | None:
    """The cluster from --workers/--worker-index, or from TF_CONFIG set by a cluster manager.

    Returns None for ordinary single-process training.
    """
    environment = os.environ if environment is None else environment
    if workers:
        for address in workers:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"worker address {address!r} is not HOST:PORT",
                                 fix="pass --workers as a comma-separated list such as 10.0.0.1:2222,10.0.0.2:2222")
        if worker_index is None or not 0 <= worker_index < len(workers):
            raise InputError(f"--worker-index {worker_index} does not name one of the {len(workers)} workers",
                             fix=f"pass --worker-index between 0 and {len(workers) - 1}: this machine's position "
                                 f"in --workers")
        return Cluster(tuple(workers), worker_index)
    raw = environment.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        addresses = tuple(config["cluster"]["worker"])
        index = int(config["task"]["index"])
        task_type = config["task"].get("type", "worker")
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"TF_CONFIG is not valid ({error})",
                         fix='set TF_CONFIG to {"cluster": {"worker": ["host:port", ...]}, '
                             '"task": {"type": "worker", "index": N}}, or unset it') from None
    if task_type != "worker":
        raise InputError(f"TF_CONFIG task type {task_type!r} is not supported",
                         fix="MultiWorkerMirroredStrategy needs every task to be a 'worker' (index 0 is the chief)")
    return Cluster(addresses, index)


@dataclass(frozen=True)
class DistributedJob:
    cluster: Cluster
    model_builder: Callable[..., Any]
    input_shape: tuple[int, ...]
    model_options: dict
    train_features: np.ndarray
    train_labels: np.ndarray
    class_weights: dict[int, float]
    validation_features: np.ndarray
    validation_labels: np.ndarray
    epochs: int
    batch_size: int             # per worker; the global batch is batch_size × workers
    optimizer: str              # pipeline.stages.fitting.OPTIMIZERS
    learning_rate: float
    patience: int
    seed: int
    augmentation: Callable[[Any, Any], Any] | None = None   # module-level, see Domain.augmentation
    deterministic_ops: bool = False  # the run's choice (pipeline.runtime); threads follow EDGEAUDIT_THREADS


@dataclass(frozen=True)
class DistributedResult:
    weights: dict[str, list[np.ndarray]]
    history: dict
    replicas_in_sync: int
    weights_fingerprint: str


def train_multi_worker(job: DistributedJob, *, progress: Callable[[str], None] = print) -> DistributedResult:
    """Train across the cluster in a child process; returns the trained weights by layer name."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(child_end, job), daemon=True)
    try:
        # The child's own output (TensorFlow's start-up lines, a traceback if Ctrl+C reaches it
        # while it imports) is not shown unless --verbose; progress and errors come back
        # through the pipe.
        if verbose():
            child.start()
        else:
            with tempfile.TemporaryFile() as log, descriptors_redirected(log.fileno(), descriptors=(1, 2)):
                child.start()
        child_end.close()
        while True:
            try:
                message = parent_end.recv()
            except EOFError:
                child.join()
                raise RuntimeError(f"the multi-worker training process died (exit code {child.exitcode}); "
                                   f"check that every worker in {', '.join(job.cluster.workers)} is running "
                                   f"the same command") from None
            if message[0] == "progress":
                progress(message[1])
            elif message[0] == "error":
                child.join()
                raise RuntimeError(f"multi-worker training failed: {message[1]}")
            elif message[0] == "result":
                child.join()
                return message[1]
    except BaseException:  # Ctrl+C or a failure here: the child goes with the run
        if child.is_alive():
            child.kill()
            child.join()
        raise
    finally:
        parent_end.close()


def weights_fingerprint(weights: dict[str, list[np.ndarray]]) -> str:
    """SHA-256 over every weight, by layer name: equal on every worker that trained one model together."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        for value in weights[name]:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _child_main(connection, job: DistributedJob) -> None:
    os.environ["TF_CONFIG"] = json.dumps(job.cluster.tf_config())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.console import start_frameworks

    start_frameworks(query_devices=False)  # the strategy configures the devices itself
    try:
        connection.send(("result", _train(job, lambda text: connection.send(("progress", text)))))
    except Exception as error:  # reported to the parent, which raises it
        connection.send(("error", f"{type(error).__name__}: {error}"))
    connection.close()


def _train(job: DistributedJob, report: Callable[[str], None]) -> DistributedResult:
    import tensorflow as tf
    import tf_keras

    set_deterministic_ops(job.deterministic_ops)
    tf_keras.utils.set_random_seed(job.seed)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    report(f"  worker {job.cluster.index} of {len(job.cluster.workers)} joined: {replicas} replicas in sync")
    global_batch = job.batch_size * replicas
    # The single-process pipeline, with the global batch; every worker builds the same
    # shuffled batches and keeps its share of each one (DATA sharding).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches, _ = training_dataset(job.train_features, job.train_labels, class_weights=job.class_weights,
                                  batch_size=global_batch, seed=job.seed, augmentation=job.augmentation)
    validation = evaluation_dataset(job.validation_features, job.validation_labels, batch_size=global_batch)

    with strategy.scope():
        model = job.model_builder(tf_keras, job.input_shape, **job.model_options)
        compile_model(tf_keras, model, optimizer=job.optimizer, learning_rate=job.learning_rate)

    # The workers' epoch lines have always shown loss, val_loss and val_pr_auc, untimed: kept as they were.
    history = fit(tf_keras, model, batches.with_options(options), validation=validation.with_options(options),
                  epochs=job.epochs, patience=job.patience, progress=report,
                  epoch_line_keys=("loss", "val_loss", "val_pr_auc"), timed_epoch_lines=False)
    weights = weights_by_layer_name(model)
    return DistributedResult(weights=weights, history=history.values, replicas_in_sync=int(replicas),
                             weights_fingerprint=weights_fingerprint(weights))
