"""Input pipeline: the encoded training split -> a `tf.data.Dataset` that keeps the device busy.

One path on every device (a CPU runs the same pipeline; only its batch size and the
model's mixed precision / XLA differ, see pipeline/runtime.py):

    a permutation of the row indices (one vectorised op per epoch, seeded, new every epoch)
                -> batches of indices
                -> parallel map: gather the rows, the float label and the class weight
                -> parallel map: the domain's augmentation, if any (stateless, seeded per batch)
                -> prefetch (autotuned): the next batches are ready while the device trains

Caching: the encoded split is already one in-memory tensor, which is what `cache()` would
build; shuffling indices rather than rows keeps it the only copy (a row shuffle buffer
would hold a second one). As in Keras' own array adapter, the permutation is one op and
each batch one gather: an element-wise tf.data shuffle costs a pipeline step per row.
Rows are never re-read or re-encoded between epochs. The validation split is batched once
and cached.

Augmentation runs here, on the host's CPU threads, not inside the model: the model has
no random layers, so XLA can compile it and nothing needs leaving out of the export.
It is stateless: each batch gets a seed pair from a seeded random stream, so a run is
reproducible however many threads the map uses.

Works under any Keras 3 backend that accepts a `tf.data.Dataset` (tensorflow, jax, torch),
as long as TensorFlow is installed, which EdgeAudit depends on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

# An augmentation: (batch of encoded inputs, int64 seed pair of shape (2,)) -> same shape.
Augmentation = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class InputPipelineSummary:
    rows: int
    batch_size: int
    batches_per_epoch: int
    shuffle: str
    parallel_map: str
    augmentation: str | None
    prefetch: str
    cache: str

    def to_json(self) -> dict:
        return asdict(self)


def training_dataset(features: np.ndarray, labels: np.ndarray, *, class_weights: dict[int, float],
                     batch_size: int, seed: int, augmentation: Augmentation | None = None,
                     augmentation_name: str | None = None,
                     targets: np.ndarray | None = None,
                     weights: np.ndarray | None = None) -> tuple[Any, InputPipelineSummary]:
    """The training split as (features, float32 labels, per-example weights) batches, shuffled each epoch.

    targets: what the loss is fitted to, one float in [0, 1] per row, when not the labels themselves
    (a teacher's soft scores mixed with the labels: distillation); the class weights still follow
    the labels. weights: one weight per row in place of the class weights (rows a teacher labelled
    have no class)."""
    import tensorflow as tf

    features = np.asarray(features)
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("the training split is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size is {batch_size}, expected at least 1")
    rows = len(labels)
    feature_tensor = tf.constant(features)
    label_tensor = tf.constant(labels.astype(np.float32))
    if targets is not None and len(targets) != len(labels):
        raise ValueError(f"{len(targets)} targets but {len(labels)} labels")
    target_tensor = label_tensor if targets is None else tf.constant(np.asarray(targets, dtype=np.float32))
    if weights is not None and len(weights) != len(labels):
        raise ValueError(f"{len(weights)} weights but {len(labels)} labels")
    row_weights = None if weights is None else tf.constant(np.asarray(weights, dtype=np.float32))
    weight_table = tf.constant([float(class_weights.get(0, 1.0)), float(class_weights.get(1, 1.0))], tf.float32)

    full_batches, remainder = divmod(rows, batch_size)

    def permutation(epoch_seed):
        # One vectorised shuffle of all row indices per epoch.
        pair = tf.stack([tf.constant(seed, tf.int64), epoch_seed])
        return tf.argsort(tf.random.stateless_uniform([rows], seed=pair))

    def batches_of(indices):
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(indices[:full_batches * batch_size],
                                                                [full_batches, batch_size]))
        if remainder:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(indices[full_batches * batch_size:]))
        return batches

    def gather(indices):
        batch_labels = tf.gather(label_tensor, indices)
        batch_weights = (tf.gather(weight_table, tf.cast(batch_labels, tf.int32)) if row_weights is None
                         else tf.gather(row_weights, indices))
        return tf.gather(feature_tensor, indices), tf.gather(target_tensor, indices), batch_weights

    dataset = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)  # a new seed each epoch
               .map(permutation).prefetch(1)
               .flat_map(batches_of)
               .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               # flat_map hides the length; Keras needs it to end each epoch without a warning
               .apply(tf.data.experimental.assert_cardinality(full_batches + (1 if remainder else 0))))
    if augmentation is not None:
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)

        def augment(batch, seed_pair):
            batch_features, batch_labels, batch_weights = batch
            return augmentation(batch_features, seed_pair), batch_labels, batch_weights

        dataset = tf.data.Dataset.zip((dataset, seeds)).map(augment, num_parallel_calls=tf.data.AUTOTUNE,
                                                           deterministic=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    summary = InputPipelineSummary(
        rows=rows, batch_size=int(batch_size), batches_per_epoch=int(-(-rows // batch_size)),
        shuffle=f"a permutation of all {rows:,} row indices, new every epoch (seed {seed})",
        parallel_map="gather rows, labels and class weights (tf.data.AUTOTUNE threads, deterministic order)",
        augmentation=(augmentation_name or getattr(augmentation, "__name__", "augmentation")) if augmentation else None,
        prefetch="tf.data.AUTOTUNE batches",
        cache=f"the encoded split as one in-memory tensor ({features.nbytes / 2**20:.1f} MiB); validation batches cached")
    return dataset, summary


def evaluation_dataset(features: np.ndarray, labels: np.ndarray, *, batch_size: int) -> Any:
    """Fixed batches of (features, float32 labels), built once and cached, prefetched."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(features), np.asarray(labels).astype(np.float32)))
    return dataset.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)
