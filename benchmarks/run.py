"""Benchmarks (not tests): measured sizes, latencies, quality and wall time, as ratios.

    python -m benchmarks.run                     # every case whose data is present
    python -m benchmarks.run --case fraud-default

Each case runs the real `edgeaudit run` command in a subprocess (so the wall time and
peak memory include start-up, imports and the compression child), then reads the run
folder it wrote. Results go to `benchmarks/results/<case>.json`; `BENCHMARKS.md` is
regenerated from every JSON file there, never edited by hand.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"
SHARED = ROOT.parent / "shared" / "datasets"

# Targets of the foundation issue, checked against the measurements.
TARGETS = {
    "int8_size_ratio_max": 0.30,
    "pruned_int8_gzip_ratio_max": 0.15,
    "int8_family_pr_auc_drop_max": 0.01,
    "default_fraud_wall_seconds_max": 300.0,
}

CASES = {
    "fraud-default": {"domain": "fraud", "arguments": [], "data": None},
    "fraud-vehicle-claims": {
        "domain": "fraud",
        "arguments": ["--data", str(SHARED / "fraud" / "vehicle_insurance_claims.csv"), "--label", "FraudFound_P",
                      "--sensitive", "Sex", "Age"],
        "data": SHARED / "fraud" / "vehicle_insurance_claims.csv",
    },
}


def run_case(name: str) -> dict:
    case = CASES[name]
    out = RUNS / name
    command = [sys.executable, "-m", "pipeline", "run", case["domain"], *case["arguments"], "--out", str(out)]
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.monotonic() - started
    if completed.returncode not in (0, 3):
        raise SystemExit(f"{name}: edgeaudit exited with {completed.returncode}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    run_dir = max((out / case["domain"]).iterdir(), key=lambda p: p.name)
    read = lambda file: json.loads((run_dir / file).read_text())  # noqa: E731
    manifest, metrics, explanations = read("manifest.json"), read("metrics.json"), read("explanations.json")
    headline = metrics["headline_metric"]
    float_quality = metrics["keras_float"]["quality"]
    variants = {}
    for variant, evaluation in metrics["variants"].items():
        quality = evaluation["quality"]
        variants[variant] = {
            headline: quality[headline],
            f"{headline}_drop_vs_float": float_quality[headline] - quality[headline],
            "roc_auc": quality["roc_auc"],
            "recall_at_1pct_fpr": quality["recall_at_1pct_fpr"],
            "bytes": evaluation["size"]["bytes"],
            "gzip_bytes": evaluation["size"]["gzip_bytes"],
            "size_ratio_to_float32": evaluation["size"].get("ratio_to_float32"),
            "gzip_ratio_to_float32": evaluation["size"].get("gzip_ratio_to_float32"),
            "sparsity": evaluation["sparsity"]["sparsity"],
            "latency_median_ms": evaluation["latency"]["median_ms"],
            "latency_ratio_to_keras": evaluation["latency"]["ratio_to_keras"],
            "throughput_rows_per_second": evaluation["throughput_rows_per_second"],
            "identical_decisions": evaluation["agreement"]["identical_decisions"],
            "max_score_difference": evaluation["agreement"]["max_score_difference"],
        }
    result = {
        "case": name,
        "command": " ".join(["edgeaudit", "run", case["domain"],
                             *[a.replace(str(SHARED.parent), "../shared") for a in case["arguments"]]]),
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": manifest["runtime"]["device"]},
        "exit_code": completed.returncode,
        "gate_passed": manifest["gate"]["passed"],
        "wall_seconds": round(wall, 1),
        "stage_seconds": manifest["stage_seconds"],
        "peak_memory_mb": round(peak_mb, 1),
        "headline_metric": headline,
        "float": {headline: float_quality[headline], "roc_auc": float_quality["roc_auc"],
                  "latency_median_ms": metrics["keras_float"]["latency"]["median_ms"],
                  "latency_call": metrics["keras_float"]["latency_call"]},
        "variants": variants,
        "shap_seconds_per_100_rows": {m: r["seconds_per_100_rows"] for m, r in explanations["models"].items()},
        "targets": _check_targets(name, variants, headline, wall),
        "baselines": _baselines(case),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _baselines(case: dict) -> dict:
    """Context for the model's quality: scikit-learn models on the very same split and encoding."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from pipeline.config import RunConfig
    from pipeline.metrics import pr_auc, roc_auc
    from pipeline.registry import get_domain

    domain = get_domain(case["domain"])
    if domain.modality != "tabular":
        return {}
    arguments = case["arguments"]
    config = RunConfig(domain=case["domain"], data_path=str(case["data"]) if case["data"] else None,
                       label_column=arguments[arguments.index("--label") + 1] if "--label" in arguments else None,
                       sensitive_columns=tuple(arguments[arguments.index("--sensitive") + 1:])
                       if "--sensitive" in arguments else ())
    data = domain.load(config)
    train = domain.encode(data.preprocessing, data.train.raw)
    test = domain.encode(data.preprocessing, data.test.raw)
    results = {}
    for name, model in (("logistic_regression", LogisticRegression(max_iter=3000)),
                        ("hist_gradient_boosting", HistGradientBoostingClassifier(random_state=0))):
        scores = model.fit(train, data.train.labels).predict_proba(test)[:, 1]
        results[name] = {"pr_auc": pr_auc(data.test.labels, scores), "roc_auc": roc_auc(data.test.labels, scores)}
    return results


def _check_targets(name: str, variants: dict, headline: str, wall: float) -> dict:
    checks = {}
    if "int8" in variants:
        value = variants["int8"]["size_ratio_to_float32"]
        checks["int8 size ≤ 0.30× float32"] = {"value": value, "met": value is not None and value <= 0.30}
    if "pruned_int8" in variants:
        value = variants["pruned_int8"]["gzip_ratio_to_float32"]
        checks["pruned+int8 gzip ≤ 0.15× float32"] = {"value": value, "met": value is not None and value <= 0.15}
    for variant in ("int8", "pruned_int8", "qat_int8", "pqat_int8"):
        if variant in variants:
            drop = variants[variant][f"{headline}_drop_vs_float"]
            checks[f"{variant} within 0.01 {headline} of float"] = {"value": drop, "met": drop <= 0.01}
    if name == "fraud-default":
        checks["default run under 5 minutes"] = {"value": round(wall, 1), "met": wall <= 300}
    return checks


def write_table() -> Path:
    lines = ["# Benchmarks", "",
             "Generated by `python -m benchmarks.run` from `benchmarks/results/*.json`; do not edit by hand.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        headline = result["headline_metric"]
        lines += [f"## {result['case']}", "",
                  f"`{result['command']}` — measured {result['measured_utc']} on {result['machine']['cpus']} CPUs "
                  f"({result['machine']['device']}); wall time {result['wall_seconds']} s, peak memory "
                  f"{result['peak_memory_mb']} MB, gate {'passed' if result['gate_passed'] else 'failed'}.", "",
                  f"Keras float {headline} {result['float'][headline]:.4f}; single-example Keras call "
                  f"({result['float']['latency_call']}) {result['float']['latency_median_ms']:.3f} ms.", "",
                  f"| variant | {headline} | Δ vs float | bytes | × float32 | gzip | gzip × float32 | sparsity | "
                  f"latency ms | × Keras | rows/s | same decisions |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for variant, v in result["variants"].items():
            lines.append(
                f"| {variant} | {v[headline]:.4f} | {-v[f'{headline}_drop_vs_float']:+.4f} | {v['bytes']:,} | "
                f"{v['size_ratio_to_float32']:.3f} | {v['gzip_bytes']:,} | {v['gzip_ratio_to_float32']:.3f} | "
                f"{v['sparsity']:.2f} | {v['latency_median_ms']:.4f} | {v['latency_ratio_to_keras']:.4f} | "
                f"{v['throughput_rows_per_second']:,.0f} | {v['identical_decisions']:.4f} |")
        if result.get("baselines"):
            lines += ["", "Context, scikit-learn on the same split and encoding: " + "; ".join(
                f"{name} PR-AUC {b['pr_auc']:.4f}, ROC-AUC {b['roc_auc']:.4f}" for name, b in result["baselines"].items())
                + f" (Keras float ROC-AUC {result['float']['roc_auc']:.4f})."]
        lines += ["", "SHAP seconds per 100 explained rows: "
                  + ", ".join(f"{m} {s:.2f} s" for m, s in result["shap_seconds_per_100_rows"].items()) + ".", "",
                  "Stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result["stage_seconds"].items()) + ".", "",
                  "| target | measured | met |", "|---|---|---|"]
        for target, check in result["targets"].items():
            lines.append(f"| {target} | {check['value']:.4f} | {'yes' if check['met'] else '**no**'} |")
        lines.append("")
    table = ROOT / "BENCHMARKS.md"
    table.write_text("\n".join(lines))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=list(CASES), action="append", help="run only these cases")
    parser.add_argument("--table-only", action="store_true", help="only regenerate BENCHMARKS.md")
    arguments = parser.parse_args()
    if not arguments.table_only:
        for name in arguments.case or list(CASES):
            data = CASES[name]["data"]
            if data is not None and not Path(data).exists():
                print(f"skipping {name}: {data} is not present")
                continue
            run_case(name)
    print(f"wrote {write_table()}")


if __name__ == "__main__":
    main()
