"""Input feed at scale: seconds per training epoch of the same model over the same rows,
fed by the pipeline's tf.data pipeline, by Keras' own array feed, and by an element-wise
tf.data shuffle (what input_pipeline.py replaced).

    python -m benchmarks.input_feed             # 384,000 rows x 40 float inputs (fraud at 16x)

The model is the fraud MLP's shape (Dense 256 -> 128 -> 1), batch 256, 2 % positives with
class weights. Each feed is measured twice, alternating, after a warm-up epoch; the median
of the two is reported. Writes benchmarks/results/input-feed.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=384_000)
    parser.add_argument("--epochs", type=int, default=2)
    arguments = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline.stages.input_pipeline import training_dataset

    rng = np.random.default_rng(0)
    features = rng.normal(size=(arguments.rows, 40)).astype(np.float32)
    labels = (rng.random(arguments.rows) < 0.02).astype(np.int64)
    class_weights = {0: 1.0, 1: 7.0}

    def model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((40,))
        hidden = keras.layers.Dense(128, activation="relu")(keras.layers.Dense(256, activation="relu")(inputs))
        built = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
        built.compile(optimizer="adam", loss="binary_crossentropy")
        return built

    def element_wise_shuffle():
        feature_tensor, label_tensor = tf.constant(features), tf.constant(labels.astype(np.float32))
        table = tf.constant([class_weights[0], class_weights[1]])

        def gather(indices):
            batch_labels = tf.gather(label_tensor, indices)
            return tf.gather(feature_tensor, indices), batch_labels, tf.gather(table, tf.cast(batch_labels, tf.int32))

        return (tf.data.Dataset.range(len(labels)).shuffle(len(labels), seed=0, reshuffle_each_iteration=True)
                .batch(256).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    feeds = {
        "tf.data pipeline (input_pipeline.py)": lambda: (
            (training_dataset(features, labels, class_weights=class_weights, batch_size=256, seed=0)[0],),
            {"shuffle": False}),
        "numpy arrays (Keras' array adapter)": lambda: (
            (features, labels.astype(np.float32)), {"batch_size": 256, "class_weight": class_weights}),
        "tf.data, element-wise shuffle buffer": lambda: ((element_wise_shuffle(),), {"shuffle": False}),
    }
    seconds: dict[str, list[float]] = {name: [] for name in feeds}
    for _ in range(2):
        for name, make in feeds.items():
            fitted = model()
            inputs, options = make()
            fitted.fit(*inputs, epochs=1, verbose=0, **options)          # trace and warm up
            started = time.perf_counter()
            fitted.fit(*inputs, epochs=arguments.epochs, verbose=0, **options)
            seconds[name].append((time.perf_counter() - started) / arguments.epochs)
            print(f"{name:40s} {seconds[name][-1]:.2f} s/epoch", flush=True)
    medians = {name: round(statistics.median(values), 3) for name, values in seconds.items()}
    reference = medians["numpy arrays (Keras' array adapter)"]
    output = {
        "case": "input-feed", "command": "python -m benchmarks.input_feed",
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "rows": arguments.rows, "inputs": 40, "batch_size": 256, "epochs_timed": arguments.epochs,
        "seconds_per_epoch": medians,
        "ratio_to_numpy_feed": {name: round(value / reference, 3) for name, value in medians.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "input-feed.json").write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
