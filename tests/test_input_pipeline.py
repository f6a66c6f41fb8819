"""The tf.data input pipeline every training run uses (pipeline/stages/input_pipeline.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages.input_pipeline import evaluation_dataset, training_dataset


def _epoch(dataset):
    features, labels, weights = zip(*[(f.numpy(), y.numpy(), w.numpy()) for f, y, w in dataset])
    return np.concatenate(features), np.concatenate(labels), np.concatenate(weights)


def _rows(count=103):
    features = np.stack([np.arange(count), np.arange(count) * 10], axis=1).astype(np.float32)
    labels = (np.arange(count) % 5 == 0).astype(np.int64)
    return features, labels


def test_every_row_once_per_epoch_reshuffled_with_its_label_and_class_weight():
    features, labels = _rows()
    dataset, summary = training_dataset(features, labels, class_weights={0: 1.0, 1: 2.5}, batch_size=16, seed=7)
    first_features, first_labels, first_weights = _epoch(dataset)
    second_features, _, _ = _epoch(dataset)
    assert sorted(first_features[:, 0].tolist()) == list(range(103))                # each row exactly once
    assert not np.array_equal(first_features[:, 0], second_features[:, 0])            # a new order each epoch
    rows = first_features[:, 0].astype(int)
    assert np.array_equal(first_labels, labels[rows].astype(np.float32)) and first_labels.dtype == np.float32
    assert np.array_equal(first_weights, np.where(labels[rows] == 1, 2.5, 1.0))
    assert np.array_equal(first_features[:, 1], first_features[:, 0] * 10)             # rows stay whole
    assert summary.batches_per_epoch == 7 and summary.rows == 103 and summary.augmentation is None
    again, _ = training_dataset(features, labels, class_weights={0: 1.0, 1: 2.5}, batch_size=16, seed=7)
    assert np.array_equal(_epoch(again)[0], first_features)                            # seeded
    other, _ = training_dataset(features, labels, class_weights={0: 1.0, 1: 2.5}, batch_size=16, seed=8)
    assert not np.array_equal(_epoch(other)[0], first_features)


def _add_noise(batch, seed):
    import tensorflow as tf

    return batch + tf.random.stateless_uniform(tf.shape(batch), seed, 0.01, 0.02)


def test_augmentation_is_applied_per_batch_reproducibly_and_differs_between_epochs():
    features, labels = _rows(64)
    dataset, summary = training_dataset(features, labels, class_weights={0: 1.0, 1: 1.0}, batch_size=8, seed=1,
                                        augmentation=_add_noise)
    assert summary.augmentation == "_add_noise"
    first, _, _ = _epoch(dataset)
    second, _, _ = _epoch(dataset)
    noise = first - np.round(first)
    assert (noise > 0.009).all() and (noise < 0.021).all()
    assert not np.allclose(first - np.round(first), second - np.round(second))
    again, _ = training_dataset(features, labels, class_weights={0: 1.0, 1: 1.0}, batch_size=8, seed=1,
                                augmentation=_add_noise)
    assert np.array_equal(_epoch(again)[0], first)


def test_evaluation_batches_are_in_order_and_bad_input_is_refused():
    features, labels = _rows(20)
    batches = list(evaluation_dataset(features, labels, batch_size=8))
    assert [len(y) for _, y in batches] == [8, 8, 4]
    assert np.array_equal(np.concatenate([f.numpy() for f, _ in batches]), features)
    with pytest.raises(ValueError, match="20 feature rows but 19 labels"):
        training_dataset(features, labels[:19], class_weights={}, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="empty"):
        training_dataset(features[:0], labels[:0], class_weights={}, batch_size=8, seed=0)


def test_training_uses_the_pipeline_and_records_it():
    from pipeline.runtime import configure_runtime
    from pipeline.stages.train import train_model
    from tests import tiny_models

    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 8)).astype(np.float32)
    labels = (features[:, 0] > 0.8).astype(np.int64)
    runtime = configure_runtime(seed=0, batch_size=32, allow_accelerator=False)
    trained = train_model(model_builder=tiny_models.tiny_mlp, input_shape=(8,), model_options={},
                          train_features=features, train_labels=labels, validation_features=features[:100],
                          validation_labels=labels[:100], runtime=runtime, epochs=4, learning_rate=0.01,
                          patience=10, progress=lambda _: None,
                          augmentation=_add_noise)
    pipeline = trained.summary()["input_pipeline"]
    assert pipeline["rows"] == 300 and pipeline["batches_per_epoch"] == 10 and pipeline["augmentation"] == "_add_noise"
    assert trained.epochs_run == 4 and trained.history["loss"][-1] < trained.history["loss"][0]
    assert trained.history["val_roc_auc"][-1] > 0.9
