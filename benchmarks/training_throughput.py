"""Training throughput (examples per second) of every domain's model, XLA and mixed precision on and off.

    python -m benchmarks.training_throughput             # every registered domain
    python -m benchmarks.training_throughput --domain fraud

Uses the same builder and the same Keras 3 `fit` as `edgeaudit run`, on the domain's
default data (quick size). Writes benchmarks/results/training-throughput.json with the
device's name. Mixed precision only pays on a GPU (float16 math is emulated on a CPU), so
on a CPU it is measured for completeness, not recommended; the pipeline switches it on
only when an accelerator is present (pipeline/runtime.py).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def measure(domain_name: str, *, mixed_precision: bool, jit_compile: bool, feed: str = "tf.data",
            epochs: int = 3) -> dict:
    """Examples per second of `fit` over the domain's quick-size training split.

    feed "tf.data" is what `edgeaudit run` uses (pipeline/stages/input_pipeline.py, with the
    domain's augmentation); "numpy" hands the arrays to `fit` (Keras' own adapter), without
    augmentation: a baseline for the input pipeline's cost.
    """
    import keras

    from pipeline.config import RunConfig
    from pipeline.registry import get_domain
    from pipeline.runtime import configure_runtime
    from pipeline.stages.input_pipeline import training_dataset
    from pipeline.stages.train import class_weights_for

    domain = get_domain(domain_name)
    config = RunConfig(domain=domain_name).quick_version()
    data = domain.load(config)
    features = domain.encode(data.preprocessing, data.train.raw)
    runtime = configure_runtime(seed=0, batch_size=256)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    model = domain.model_builder(keras, tuple(features.shape[1:]), **domain.model_options(data, config))
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=jit_compile)
    class_weights = class_weights_for(data.train.labels)
    if feed == "tf.data":
        batches, _ = training_dataset(features, data.train.labels, class_weights=class_weights,
                                      batch_size=runtime.batch_size, seed=0, augmentation=domain.augmentation())
        arguments, fit = (batches,), dict(verbose=0, shuffle=False)
    else:
        arguments = (features, data.train.labels.astype("float32"))
        fit = dict(batch_size=runtime.batch_size, verbose=0, class_weight=class_weights)
    model.fit(*arguments, epochs=1, **fit)  # compile and warm up
    started = time.perf_counter()
    model.fit(*arguments, epochs=epochs, **fit)
    seconds = time.perf_counter() - started
    xla_used = bool(model.jit_compile)
    keras.mixed_precision.set_global_policy("float32")
    return {"examples_per_second": round(len(features) * epochs / seconds, 1), "examples": int(len(features)),
            "epochs": epochs, "batch_size": runtime.batch_size, "feed": feed, "xla_used": xla_used,
            "augmentation": getattr(domain.augmentation(), "__name__", None) if feed == "tf.data" else None,
            "device": runtime.device}


def main() -> None:
    from pipeline.registry import domain_names

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", action="append", choices=domain_names())
    arguments = parser.parse_args()
    results: dict = {}
    device = None
    for name in arguments.domain or domain_names():
        results[name] = {}
        settings = [("numpy", False, False)] + [("tf.data", mixed, jit) for mixed in (False, True)
                                                  for jit in (False, True)]
        for feed, mixed, jit in settings:
            key = f"feed={feed}, mixed_precision={'on' if mixed else 'off'}, xla={'on' if jit else 'off'}"
            measured = measure(name, mixed_precision=mixed, jit_compile=jit, feed=feed)
            device = measured.pop("device")
            results[name][key] = measured
            print(f"{name:12s} {key:52s} {measured['examples_per_second']:>12,.0f} examples/s", flush=True)
    output = {
        "case": "training-throughput",
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": device},
        "gpu": None if device == "CPU" else device,
        "note": ("no GPU was lent to this task (the device tool's status said can_start_another: false), so "
                 "these are CPU figures; on a GPU the pipeline turns on mixed precision and XLA itself"
                 if device == "CPU" else "measured on the accelerator named in machine.device"),
        "domains": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training-throughput.json").write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
