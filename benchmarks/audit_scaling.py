"""How the audit's time and memory grow with the rows it audits, up to a 1,536,000-row data set.

    python -m benchmarks.audit_scaling                 # 1x to 64x the default fraud data (a few minutes)
    python -m benchmarks.audit_scaling --largest 16    # stop at 16x

The default fraud run audits a test split of 4,800 rows (20 % of 24,000) with 8 variants,
two sensitive columns and their intersection, 200 bootstrap resamples. Here `audit_variants`
runs on test splits of 1x, 4x, 16x and 64x that size (64x: 307,200 test rows, the test split
of a 1,536,000-row data set), drawn like the fraud data (sex x six age bands, 2 % positives,
eight variants' scores sharing most of their noise). Measured: wall time and the peak of the
process's resident memory above its start (a child process per size, so sizes do not share
a peak). The exponent is the slope of log(time) on log(rows) between consecutive sizes: 1.0
is linear. Writes benchmarks/results/audit-scaling.json; BENCHMARKS.md renders it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BASE_TEST_ROWS = 4_800  # the default fraud data's test split (24,000 rows x 20 %)
VARIANTS = ("keras_float", "float32", "dynamic_range", "float16", "int8", "pruned_int8", "qat_int8", "pqat_int8")


def _measure(rows: int, bootstrap_samples: int, queue) -> None:
    import numpy as np
    import pandas as pd

    from pipeline.metrics import Predictions
    from pipeline.stages.audit import audit_variants

    rng = np.random.default_rng(rows)
    sex = rng.choice(["female", "male"], rows)
    age = rng.choice(["18-25", "26-35", "36-45", "46-55", "56-65", "66+"], rows)
    labels = (rng.random(rows) < 0.02).astype(np.int64)
    base = rng.normal(size=rows) + 2.0 * labels
    predictions = {name: Predictions(1 / (1 + np.exp(-(base + 0.1 * rng.normal(size=rows) - 2.5))), 0.5)
                   for name in VARIANTS}
    groups = pd.DataFrame({"sex": sex, "age": age})
    start_memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    audit_variants(labels=labels, groups=groups, predictions=predictions, bootstrap_samples=bootstrap_samples)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    queue.put({"test_rows": rows, "seconds": round(seconds, 2),
               "peak_memory_mb": round(peak / 1024, 1), "memory_above_start_mb": round((peak - start_memory) / 1024, 1)})


def measure(rows: int, bootstrap_samples: int = 200) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(rows, bootstrap_samples, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--largest", type=int, default=64, choices=(1, 4, 16, 64),
                        help="the largest multiple of the default fraud data to audit")
    parser.add_argument("--bootstrap-samples", type=int, default=200)
    arguments = parser.parse_args()
    results = []
    for multiple in (1, 4, 16, 64):
        if multiple > arguments.largest:
            break
        result = {"multiple": multiple, "data_rows": multiple * BASE_TEST_ROWS * 5,
                  **measure(multiple * BASE_TEST_ROWS, arguments.bootstrap_samples)}
        if results:
            previous = results[-1]
            ratio = math.log(result["test_rows"] / previous["test_rows"])
            result["time_exponent"] = round(math.log(result["seconds"] / previous["seconds"]) / ratio, 2)
            result["memory_exponent"] = round(
                math.log(max(result["memory_above_start_mb"], 1) / max(previous["memory_above_start_mb"], 1)) / ratio, 2)
        results.append(result)
        print(f"{multiple:3d}x: {result['data_rows']:>9,} rows, audit of {result['test_rows']:>7,} test rows "
              f"{result['seconds']:7.1f} s, memory +{result['memory_above_start_mb']:,.0f} MB"
              + (f" (time exponent {result['time_exponent']}, memory {result['memory_exponent']})"
                 if "time_exponent" in result else ""), flush=True)
    output = {"case": "audit-scaling",
              "command": f"python -m benchmarks.audit_scaling --largest {arguments.largest}",
              "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "bootstrap_samples": arguments.bootstrap_samples, "variants": len(VARIANTS), "sizes": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit-scaling.json").write_text(json.dumps(output, indent=2) + "\n")
    print(f"written: {RESULTS / 'audit-scaling.json'}")


if __name__ == "__main__":
    main()
