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


def measure(domain_name: str, *, mixed_precision: bool, jit_compile: bool, epochs: int = 3) -> dict:
    import keras

    from pipeline.config import RunConfig
    from pipeline.registry import get_domain
    from pipeline.runtime import configure_runtime
    from pipeline.stages.train import class_weights_for

    domain = get_domain(domain_name)
    config = RunConfig(domain=domain_name).quick_version()
    data = domain.load(config)
    features = domain.encode(data.preprocessing, data.train.raw)
    runtime = configure_runtime(seed=0, batch_size=256)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    model = domain.model_builder(keras, tuple(features.shape[1:]), **domain.model_options(data, config))
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=jit_compile)
    labels = data.train.labels.astype("float32")
    fit = dict(batch_size=runtime.batch_size, verbose=0, class_weight=class_weights_for(data.train.labels))
    model.fit(features, labels, epochs=1, **fit)  # compile and warm up
    started = time.perf_counter()
    model.fit(features, labels, epochs=epochs, **fit)
    seconds = time.perf_counter() - started
    keras.mixed_precision.set_global_policy("float32")
    return {"examples_per_second": round(len(labels) * epochs / seconds, 1), "examples": int(len(labels)),
            "epochs": epochs, "batch_size": runtime.batch_size, "device": runtime.device}


def main() -> None:
    from pipeline.registry import domain_names

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", action="append", choices=domain_names())
    arguments = parser.parse_args()
    results: dict = {}
    device = None
    for name in arguments.domain or domain_names():
        results[name] = {}
        for mixed in (False, True):
            for jit in (False, True):
                key = f"mixed_precision={'on' if mixed else 'off'}, xla={'on' if jit else 'off'}"
                measured = measure(name, mixed_precision=mixed, jit_compile=jit)
                device = measured.pop("device")
                results[name][key] = measured
                print(f"{name:12s} {key:36s} {measured['examples_per_second']:>12,.0f} examples/s", flush=True)
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
