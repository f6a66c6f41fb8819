"""Training throughput (examples per second) of every domain's model, XLA and mixed precision on and off.

    python -m benchmarks.training_throughput                       # every registered domain
    python -m benchmarks.training_throughput --domain fraud
    KERAS_BACKEND=jax python -m benchmarks.training_throughput      # any Keras 3 backend

Uses the same builder, the same Keras 3 `fit` and the same batch size as `edgeaudit run` on
the device present (pipeline/runtime.py: the domain's batch size, four times that on an
accelerator), on the domain's default data at full size. Each setting builds a fresh model,
trains one epoch to compile and warm up (timed apart: the compile cost), then times
`--epochs` more.

Settings: the float policy (float32, mixed_float16 as the pipeline uses on a GPU, and
mixed_bfloat16) with XLA on and off, fed plain arrays; on the TensorFlow backend also the
pipeline's own `tf.data` feed (pipeline/stages/input_pipeline.py, with the domain's
augmentation) at the pipeline's settings. Nothing here imports TensorFlow unless the backend
is TensorFlow, so the same command measures on a machine that has only JAX.

Writes benchmarks/results/training-throughput.json on a CPU and
benchmarks/results/training-throughput-gpu.json on an accelerator (or `--output PATH`).
Mixed precision only pays on a GPU (16-bit math is emulated on a CPU), so on a CPU it is
measured for completeness, not recommended.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def _class_weights(labels) -> dict[int, float]:
    # The pipeline's rule (pipeline/stages/train.py::class_weights_for), imported lazily there
    # because train.py pulls in the tf.data input pipeline.
    import numpy as np

    positives = max(int(np.sum(labels)), 1)
    negatives = max(int(np.size(labels) - positives), 1)
    return {0: 1.0, 1: float(max(1.0, np.sqrt(negatives / positives)))}


def load_training_split(domain_name: str, *, quick: bool = False):
    """(domain, encoded training features, labels, model options) for the domain's default data."""
    from pipeline.config import RunConfig
    from pipeline.registry import get_domain

    domain = get_domain(domain_name)
    config = RunConfig(domain=domain_name)
    config = config.quick_version() if quick else config
    data = domain.load(config)
    features = domain.encode(data.preprocessing, data.train.raw)
    return domain, features, data.train.labels, domain.model_options(data, config)


def measure(domain, features, labels, options, *, policy: str, jit_compile: bool, batch_size: int,
            feed: str = "numpy", epochs: int = 3, min_seconds: float = 0.0) -> dict:
    """Examples per second of `fit` over the training split, after one compiling epoch."""
    import keras

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = domain.model_builder(keras, tuple(features.shape[1:]), **options)
        model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=jit_compile)
        class_weights = _class_weights(labels)
        if feed == "tf.data":
            from pipeline.stages.input_pipeline import training_dataset

            batches, _ = training_dataset(features, labels, class_weights=class_weights, batch_size=batch_size,
                                          seed=0, augmentation=domain.augmentation())
            arguments, fit = (batches,), dict(verbose=0, shuffle=False)
        else:
            arguments = (features, labels.astype("float32"))
            fit = dict(batch_size=batch_size, verbose=0, class_weight=class_weights)
        measured = timed_fit(model, arguments, fit, rows=len(features), epochs=epochs, min_seconds=min_seconds)
        xla_used = bool(model.jit_compile)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {**measured, "batch_size": batch_size, "feed": feed, "policy": policy, "xla_used": xla_used,
            "augmentation": getattr(domain.augmentation(), "__name__", None) if feed == "tf.data" else None}


def timed_fit(model, arguments: tuple, fit: dict, *, rows: int, epochs: int = 1, min_seconds: float = 0.0) -> dict:
    """Examples per second of `model.fit(*arguments, **fit)` after one compiling epoch.

    Times at least `epochs` epochs, and more until at least `min_seconds` have passed: an epoch
    of a small model on a GPU takes a few hundredths of a second, too short to time alone.
    """
    started = time.perf_counter()
    model.fit(*arguments, epochs=1, **fit)  # compile and warm up
    first_epoch = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(*arguments, epochs=1, **fit)  # the first timed epoch also sizes the rest
    seconds = time.perf_counter() - started
    more = max(epochs - 1, math.ceil(min_seconds / max(seconds, 1e-6)) - 1)
    if more > 0:
        started = time.perf_counter()
        model.fit(*arguments, epochs=more, **fit)
        seconds += time.perf_counter() - started
    timed_epochs = 1 + more
    return {"examples_per_second": round(rows * timed_epochs / seconds, 1), "first_epoch_seconds": round(first_epoch, 2),
            "timed_seconds": round(seconds, 2), "examples": int(rows), "epochs": timed_epochs}


def settings_for(backend: str) -> list[tuple[str, str, bool]]:
    """(feed, policy, XLA) triples: plain arrays for every policy and XLA on/off; tf.data where TensorFlow is."""
    settings = [("numpy", policy, jit) for policy in POLICIES for jit in (False, True)]
    if backend == "tensorflow":
        settings += [("tf.data", "float32", False), ("tf.data", "mixed_float16", True)]
    return settings


def setting_name(feed: str, policy: str, jit: bool) -> str:
    return f"feed={feed}, policy={policy}, xla={'on' if jit else 'off'}"


def main() -> None:
    import keras

    from pipeline.registry import default_data_domain_names as domain_names
    from pipeline.runtime import configure_runtime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", action="append", choices=domain_names())
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per setting, after one warm-up epoch")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="time more epochs until at least this long has passed (short GPU epochs are noisy)")
    parser.add_argument("--quick", action="store_true", help="the --quick data size instead of the full default data")
    parser.add_argument("--output", type=Path, help="results file (default: benchmarks/results/training-throughput"
                                                    "[-gpu].json by the device)")
    arguments = parser.parse_args()
    backend = keras.backend.backend()
    path = arguments.output
    results: dict = {}
    for name in arguments.domain or domain_names():
        domain, features, labels, options = load_training_split(name, quick=arguments.quick)
        runtime = configure_runtime(seed=0, batch_size=domain.batch_size,
                                    mixed_precision_pays=domain.mixed_precision_on_accelerator)
        results[name] = {"pipeline_setting": setting_name("tf.data" if backend == "tensorflow" else "numpy",
                                                          "mixed_float16" if runtime.mixed_precision else "float32",
                                                          runtime.jit_compile),
                         "settings": {}}
        for feed, policy, jit in settings_for(backend):
            key = setting_name(feed, policy, jit)
            try:
                measured = measure(domain, features, labels, options, policy=policy, jit_compile=jit,
                                   batch_size=runtime.batch_size, feed=feed, epochs=arguments.epochs,
                                   min_seconds=arguments.min_seconds)
            except Exception as error:  # one setting a backend cannot run is recorded, not fatal
                measured = {"error": f"{type(error).__name__}: {error}"[:500]}
                print(f"{name:12s} {key:50s} failed: {measured['error']}", flush=True)
            else:
                print(f"{name:12s} {key:50s} {measured['examples_per_second']:>12,.0f} examples/s "
                      f"(first epoch {measured['first_epoch_seconds']:.1f} s)", flush=True)
            results[name]["settings"][key] = measured
            # Written after every setting, so a run stopped part-way keeps what it measured.
            path = _write(results, runtime.device, backend, keras.__version__, arguments)
    print(f"written: {path}")


def _write(results: dict, device: str, backend: str, keras_version: str, arguments: argparse.Namespace) -> Path:
    accelerator = device != "CPU"
    output = {
        "case": "training-throughput-gpu" if accelerator else "training-throughput",
        "command": f"KERAS_BACKEND={backend} python -m benchmarks.training_throughput"
                   + (" --quick" if arguments.quick else "") + f" --epochs {arguments.epochs} --min-seconds {arguments.min_seconds:g}",
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": device,
                    "backend": backend, "keras": keras_version},
        "gpu": device if accelerator else None,
        "note": ("measured on the accelerator named in machine.device" if accelerator else
                 "CPU figures: mixed precision is emulated on a CPU, so the pipeline turns it and XLA on only "
                 "on an accelerator"),
        "domains": results,
    }
    path = arguments.output or RESULTS / f"{output['case']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(output, indent=2) + "\n")
    temporary.replace(path)
    return path

if __name__ == "__main__":
    main()
