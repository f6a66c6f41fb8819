"""Where LiteRT and the microcontroller runtime disagree, and why.

    python -m benchmarks.runtime_agreement      # after `python -m benchmarks.run` wrote benchmarks/runs/

For every case's run folder in benchmarks/runs/ and every full-integer variant that runs
in TensorFlow Lite Micro: its outputs on the whole test split in TFLM, in LiteRT as the
pipeline runs it (default XNNPACK delegate) and in LiteRT's own reference kernels
(no delegate). Decisions at the variant's own threshold; output differences in steps of
the output's quantization (1/256 after a sigmoid). Writes
benchmarks/results/runtime-agreement.json; BENCHMARKS.md shows it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform

import numpy as np

from benchmarks.run import CASES, RESULTS, RUNS, _case_data

FULL_INTEGER = ("int8", "pruned_int8", "qat_int8", "pqat_int8")


def measure_case(name: str) -> dict | None:
    from pipeline.stages.evaluate import LiteRTModel
    from pipeline.stages.microcontroller import run_on_microcontroller

    folder = RUNS / name / CASES[name]["domain"]
    if not folder.is_dir():
        return None
    run_dir = max(folder.iterdir(), key=lambda p: p.name)
    domain, data = _case_data(CASES[name])
    test_x = domain.encode(json.loads((run_dir / "models" / "preprocessing.json").read_text()), data.test.raw)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    variants = {}
    for variant in FULL_INTEGER:
        path = run_dir / "models" / f"{variant}.tflite"
        if not path.exists():
            continue
        content = path.read_bytes()
        threshold = metrics["variants"][variant]["quality"]["threshold"]
        micro = run_on_microcontroller(content, test_x)
        if not micro.supported:
            variants[variant] = {"micro_supported": False, "first_unsupported": micro.first_unsupported}
            continue
        outputs = {"tflite-micro": micro.outputs, "litert_xnnpack": LiteRTModel(content).predict(test_x),
                   "litert_reference_kernels": LiteRTModel(content, default_delegates=False).predict(test_x)}
        decisions = {runtime: values >= threshold for runtime, values in outputs.items()}
        variants[variant] = {"micro_supported": True, "rows": int(len(test_x)), "threshold": threshold}
        for other in ("litert_xnnpack", "litert_reference_kernels"):
            steps = np.abs(outputs["tflite-micro"] - outputs[other]) * 256
            variants[variant][other] = {
                "identical_decisions": float((decisions["tflite-micro"] == decisions[other]).mean()),
                "changed_decisions": int((decisions["tflite-micro"] != decisions[other]).sum()),
                "identical_outputs": float((steps < 1e-6).mean()),
                "max_output_difference_steps": float(steps.max()),
            }
    return {"run_dir": str(run_dir.relative_to(RUNS.parent.parent)), "variants": variants}


def main() -> None:
    result = {"case": "runtime-agreement", "command": "python -m benchmarks.runtime_agreement",
              "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "cases": {}}
    for name in CASES:
        measured = measure_case(name)
        if measured is not None:
            result["cases"][name] = measured
            print(name, json.dumps({v: {k: x.get("identical_decisions") if isinstance(x, dict) else x
                                        for k, x in m.items()} for v, m in measured["variants"].items()}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "runtime-agreement.json").write_text(json.dumps(result, indent=2) + "\n")


def lines(result: dict) -> list[str]:
    """BENCHMARKS.md's section."""
    out = ["## runtime-agreement", "",
           f"`{result['command']}` — measured {result['measured_utc']} on {result['machine']['cpus']} CPUs, over the "
           "run folders of `python -m benchmarks.run`. Test-split decisions of every full-integer variant in "
           "TensorFlow Lite Micro against LiteRT as the pipeline runs it (XNNPACK) and against LiteRT's reference "
           "kernels (no delegate); output differences in steps of 1/256.", "",
           "| case | variant | rows | same decisions as LiteRT XNNPACK (changed) | max steps | same decisions as "
           "LiteRT reference kernels (changed) | max steps | identical outputs vs reference |",
           "|---|---|---|---|---|---|---|---|"]
    for case, measured in result["cases"].items():
        for variant, v in measured["variants"].items():
            if not v.get("micro_supported"):
                out.append(f"| {case} | {variant} | — | does not run: {v.get('first_unsupported')} | | | | |")
                continue
            x, r = v["litert_xnnpack"], v["litert_reference_kernels"]
            out.append(f"| {case} | {variant} | {v['rows']:,} | {x['identical_decisions']:.4f} ({x['changed_decisions']}) "
                       f"| {x['max_output_difference_steps']:.0f} | {r['identical_decisions']:.4f} "
                       f"({r['changed_decisions']}) | {r['max_output_difference_steps']:.0f} | "
                       f"{r['identical_outputs']:.4f} |")
    return out + [""]


if __name__ == "__main__":
    main()
