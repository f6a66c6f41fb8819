"""Why does the sentiment word CNN train slower in 16-bit than in float32 on a GPU?

    KERAS_BACKEND=jax python -m benchmarks.sentiment_mixed_precision     # on the GPU machine

The training-throughput benchmark measured the word CNN 15-18x slower in mixed_float16 than in
float32 (XLA on, H200), where the other domains gained; so `SentimentDomain` keeps float32 on an
accelerator. This ablation takes the model apart one piece at a time, each in float32 and
mixed_float16 (the pipeline model in mixed_bfloat16 too), on the sentiment domain's default
training split at the pipeline's accelerator batch (4 x 50) with XLA on, and times `fit` the way
benchmarks/training_throughput.py does: one compiling epoch, then epochs until at least
`--min-seconds` have passed. The piece whose removal closes the gap is the cause.

Writes benchmarks/results/sentiment-mixed-precision.json (or `--output PATH`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
from pathlib import Path

from benchmarks.training_throughput import RESULTS, load_training_split, timed_fit

# name -> changes to the pipeline model (see build_variant)
VARIANTS = {
    "pipeline model": {},
    "no max-norm constraint": {"output_max_norm": None},
    "no dropout": {"dropout_rate": 0.0},
    "128 filters (a multiple of 8)": {"filters": 128},
    "one kernel width (4)": {"kernel_sizes": (4,)},
    "average pooling instead of max": {"pooling": "average"},
    "no convolution (embedding, max pool, output)": {"convolution": False},
    "no embedding (float input)": {"embedding": False},
}


def build_variant(keras, length: int, options: dict, *, embedding: bool = True, convolution: bool = True,
                  pooling: str = "max", **changes):
    """The pipeline's word CNN (pipeline.domains.sentiment.build_text_model) with one piece changed."""
    from pipeline.domains.sentiment import build_text_model

    settings = {**options, **changes}
    if embedding and convolution and pooling == "max":
        return build_text_model(keras, (length,), **settings)
    if embedding:
        inputs = keras.Input(shape=(length,), dtype="int32", name="token_ids")
        x = keras.layers.Embedding(settings["vocabulary_size"], settings["embedding_dim"], name="embedding")(inputs)
    else:
        inputs = keras.Input(shape=(length, settings["embedding_dim"]), name="embedded")
        x = inputs
    pool = keras.layers.GlobalMaxPooling1D if pooling == "max" else keras.layers.GlobalAveragePooling1D
    if convolution:
        branches = [pool(name=f"pool_k{size}")(keras.layers.Conv1D(settings["filters"], size, activation="relu",
                                                                   name=f"conv_k{size}")(x))
                    for size in settings["kernel_sizes"]]
        x = branches[0] if len(branches) == 1 else keras.layers.Concatenate()(branches)
    else:
        x = pool(name="pool")(x)
    if settings["dropout_rate"]:
        x = keras.layers.Dropout(settings["dropout_rate"])(x)
    constraint = keras.constraints.MaxNorm(settings["output_max_norm"]) if settings["output_max_norm"] else None
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", kernel_constraint=constraint)(x)
    return keras.Model(inputs, outputs)


def main() -> None:
    import keras
    import numpy as np

    from pipeline.runtime import configure_runtime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time at least this long per setting")
    parser.add_argument("--quick", action="store_true", help="the --quick data size")
    parser.add_argument("--output", type=Path, default=RESULTS / "sentiment-mixed-precision.json")
    arguments = parser.parse_args()
    domain, features, labels, options = load_training_split("sentiment", quick=arguments.quick)
    runtime = configure_runtime(seed=0, batch_size=domain.batch_size)
    embedded = np.random.default_rng(0).normal(size=(*features.shape, options["embedding_dim"])).astype("float32")
    results = {}
    for name, changes in VARIANTS.items():
        policies = ("float32", "mixed_float16", "mixed_bfloat16") if not changes else ("float32", "mixed_float16")
        inputs = features if changes.get("embedding", True) else embedded
        for policy in policies:
            keras.utils.set_random_seed(0)
            keras.mixed_precision.set_global_policy(policy)
            try:
                model = build_variant(keras, features.shape[1], options, **changes)
                model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=runtime.accelerator)
                measured = timed_fit(model, (inputs, labels.astype("float32")),
                                     dict(batch_size=runtime.batch_size, verbose=0),
                                     rows=len(features), min_seconds=arguments.min_seconds)
            except Exception as error:  # a setting a backend cannot run is recorded, not fatal
                measured = {"error": f"{type(error).__name__}: {error}"[:500]}
            finally:
                keras.mixed_precision.set_global_policy("float32")
            results.setdefault(name, {})[policy] = measured
            shown = (f"{measured['examples_per_second']:>12,.0f} examples/s" if "examples_per_second" in measured
                     else measured["error"])
            print(f"{name:48s} {policy:15s} {shown}", flush=True)
    output = {"case": "sentiment-mixed-precision",
              "command": f"KERAS_BACKEND={keras.backend.backend()} python -m benchmarks.sentiment_mixed_precision",
              "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": runtime.device,
                          "backend": keras.backend.backend(), "keras": keras.__version__},
              "batch_size": runtime.batch_size, "xla": runtime.accelerator, "variants": results}
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"written: {arguments.output}")


if __name__ == "__main__":
    main()
