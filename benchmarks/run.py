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
    "imaging-default": {"domain": "imaging", "arguments": [], "data": None},
    "imaging-pneumoniamnist": {
        "domain": "imaging",
        "arguments": ["--data", str(SHARED / "medical_imaging" / "pneumoniamnist.npz")],
        "data": SHARED / "medical_imaging" / "pneumoniamnist.npz",
    },
    "maintenance-default": {"domain": "maintenance", "arguments": [], "data": None},
    "sentiment-default": {"domain": "sentiment", "arguments": [], "data": None},
    "sentiment-sst2": {
        "domain": "sentiment",
        "arguments": ["--data", str(SHARED / "sentiment" / "sst2")],
        "data": SHARED / "sentiment" / "sst2" / "train.tsv",
    },
    "maintenance-ai4i": {
        "domain": "maintenance",
        "arguments": ["--data", str(SHARED / "maintenance" / "ai4i2020.csv")],
        "data": SHARED / "maintenance" / "ai4i2020.csv",
    },
}


def _run_edgeaudit(label: str, domain: str, arguments: list[str], out: Path) -> tuple[float, int, Path]:
    """Run `edgeaudit run` in a subprocess: (wall seconds, exit code, the run folder it wrote)."""
    command = [sys.executable, "-m", "pipeline", "run", domain, *arguments, "--out", str(out)]
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.monotonic() - started
    if completed.returncode not in (0, 3):  # 3: the gate failed, the report is still written
        raise SystemExit(f"{label}: edgeaudit exited with {completed.returncode}")
    return wall, completed.returncode, max((out / domain).iterdir(), key=lambda p: p.name)


def run_case(name: str) -> dict:
    case = CASES[name]
    wall, exit_code, run_dir = _run_edgeaudit(name, case["domain"], case["arguments"], RUNS / name)
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
            "accuracy": quality["accuracy"],
            "accuracy_drop_vs_float": float_quality["accuracy"] - quality["accuracy"],
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
        "exit_code": exit_code,
        "gate_passed": manifest["gate"]["passed"],
        "wall_seconds": round(wall, 1),
        "stage_seconds": manifest["stage_seconds"],
        "peak_memory_mb": manifest["peak_memory_mb"],
        "headline_metric": headline,
        "float": {headline: float_quality[headline], "roc_auc": float_quality["roc_auc"],
                  "latency_median_ms": metrics["keras_float"]["latency"]["median_ms"],
                  "latency_call": metrics["keras_float"]["latency_call"]},
        "variants": variants,
        "shap_seconds_per_100_rows": {m: r["seconds_per_100_rows"] for m, r in explanations["models"].items()},
        "targets": _check_targets(name, variants, headline, wall),
        "baselines": _baselines(case),
        "delegates": _delegate_latency(run_dir, case),
        "explainers": _explainer_comparison(run_dir, case),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _case_data(case: dict):
    """The domain's data for a case, exactly as the run split it (loading is seeded)."""
    from pipeline.config import RunConfig
    from pipeline.registry import get_domain

    arguments = case["arguments"]
    value = lambda flag: arguments[arguments.index(flag) + 1] if flag in arguments else None  # noqa: E731
    sensitive = tuple(arguments[arguments.index("--sensitive") + 1:]) if "--sensitive" in arguments else ()
    sensitive = tuple(a for a in sensitive if not a.startswith("--"))
    domain = get_domain(case["domain"])
    config = RunConfig(domain=case["domain"], data_path=str(case["data"]) if case["data"] else None,
                       label_column=value("--label"), sensitive_columns=sensitive)
    return domain, domain.load(config)


def _delegate_latency(run_dir: Path, case: dict) -> dict:
    """Median single-example latency of every .tflite with and without LiteRT's default XNNPACK delegate.

    XNNPACK's sparse inference (which could speed up pruned models) has no switch in
    ai_edge_litert's Python Interpreter, so it is not measured; the record says so.
    """
    from pipeline.stages.evaluate import LiteRTModel

    domain, data = _case_data(case)
    preprocessing = json.loads((run_dir / "models" / "preprocessing.json").read_text())
    example = domain.encode(preprocessing, data.test.raw)[0]
    results = {"xnnpack_sparse_inference": "not offered by ai_edge_litert's Python Interpreter: no delegate option "
                                           "for XNNPACK sparse inference", "variants": {}}
    for path in sorted((run_dir / "models").glob("*.tflite")):
        content = path.read_bytes()
        results["variants"][path.stem] = {
            "xnnpack_median_ms": LiteRTModel(content).single_example_latency(example)["median_ms"],
            "builtin_kernels_median_ms": LiteRTModel(content, default_delegates=False)
            .single_example_latency(example)["median_ms"],
        }
    return results


def _explainer_comparison(run_dir: Path, case: dict, rows: int = 20, background_rows: int = 50) -> dict:
    """Our explainer vs SHAP's KernelExplainer on the same model, rows and background."""
    import numpy as np
    import shap

    from pipeline.stages.evaluate import LiteRTModel
    from pipeline.stages.explain import explain_tabular

    domain, data = _case_data(case)
    if domain.modality != "tabular":
        return {}
    preprocessing = json.loads((run_dir / "models" / "preprocessing.json").read_text())
    rng = np.random.default_rng(0)
    train = domain.encode(preprocessing, data.train.raw)
    test = domain.encode(preprocessing, data.test.raw)
    background = train[rng.choice(len(train), background_rows, replace=False)]
    row_ids = sorted(rng.choice(len(test), rows, replace=False).tolist())
    predict = LiteRTModel((run_dir / "models" / "float32.tflite").read_bytes()).predict
    ours = explain_tabular(predict_functions={"float32": predict}, background=background, rows=test[row_ids],
                           row_ids=row_ids, local_row_ids=[], feature_names=data.feature_names,
                           feature_groups=data.feature_groups, seed=0)
    ours_seconds = ours["models"]["float32"]["seconds"]  # without shap's one-off import and numba compile
    columns = ours["feature_columns"]
    ours_values = np.asarray(ours["_arrays"]["shap_values"]["float32"])
    started = time.monotonic()
    kernel = shap.KernelExplainer(predict, background).shap_values(test[row_ids], silent=True)
    kernel_seconds = time.monotonic() - started
    kernel = np.asarray(kernel).reshape(len(row_ids), -1)
    kernel_values = np.stack([kernel[:, data.feature_groups[c]].sum(axis=1) for c in columns], axis=1)
    global_ours, global_kernel = np.abs(ours_values).mean(0), np.abs(kernel_values).mean(0)
    from scipy.stats import spearmanr

    return {
        "rows": rows, "background_rows": background_rows, "model": "float32.tflite in LiteRT",
        "chosen": {"explainer": ours["explainer"], "players": "original columns (one-hot blocks masked together)",
                   "seconds": round(ours_seconds, 3), "one_off_setup_seconds": ours.get("setup_seconds")},
        "kernel": {"explainer": "shap.KernelExplainer", "players": "encoded inputs, summed per column",
                   "seconds": round(kernel_seconds, 3)},
        "speedup": round(kernel_seconds / ours_seconds, 2) if ours_seconds else None,
        "agreement": {
            "pearson_per_value": float(np.corrcoef(ours_values.ravel(), kernel_values.ravel())[0, 1]),
            "spearman_global_importance": float(spearmanr(global_ours, global_kernel)[0]),
            "mean_abs_difference": float(np.abs(ours_values - kernel_values).mean()),
            "mean_abs_value": float(np.abs(ours_values).mean()),
        },
    }


def _baselines(case: dict) -> dict:
    """Context for the model's quality: scikit-learn models on the very same split and encoding."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from pipeline.metrics import pr_auc, roc_auc

    domain, data = _case_data(case)
    if domain.modality != "tabular":
        return {}
    train = domain.encode(data.preprocessing, data.train.raw)
    test = domain.encode(data.preprocessing, data.test.raw)
    results = {}
    for name, model in (("logistic_regression", LogisticRegression(max_iter=3000)),
                        ("hist_gradient_boosting", HistGradientBoostingClassifier(random_state=0))):
        scores = model.fit(train, data.train.labels).predict_proba(test)[:, 1]
        results[name] = {"pr_auc": pr_auc(data.test.labels, scores), "roc_auc": roc_auc(data.test.labels, scores)}
    return results


def _check_targets(name: str, variants: dict, headline: str, wall: float) -> dict:
    """The measurable goals of each domain's issue, checked against this case's figures."""
    checks = {}

    def within(variant: str, limit: float, metric: str = headline) -> None:
        if variant in variants:
            drop = variants[variant][f"{metric}_drop_vs_float"]
            checks[f"{variant} within {limit} {metric} of float"] = {"value": drop, "met": drop <= limit}

    if name.startswith("fraud"):
        if "int8" in variants:
            value = variants["int8"]["size_ratio_to_float32"]
            checks["int8 size ≤ 0.30× float32"] = {"value": value, "met": value is not None and value <= 0.30}
        if "pruned_int8" in variants:
            value = variants["pruned_int8"]["gzip_ratio_to_float32"]
            checks["pruned+int8 gzip ≤ 0.15× float32"] = {"value": value, "met": value is not None and value <= 0.15}
        for variant in ("int8", "pruned_int8", "qat_int8", "pqat_int8"):
            within(variant, 0.01)
        if name == "fraud-default":
            checks["default run under 5 minutes"] = {"value": round(wall, 1), "met": wall <= 300}
    elif name == "imaging-pneumoniamnist" and "int8" in variants:
        checks["int8 ROC-AUC ≥ 0.94"] = {"value": variants["int8"]["roc_auc"], "met": variants["int8"]["roc_auc"] >= 0.94}
        checks["int8 under 200 KB"] = {"value": variants["int8"]["bytes"], "met": variants["int8"]["bytes"] < 200_000}
    elif name == "maintenance-ai4i":
        within("int8", 0.01)
    elif name == "sentiment-sst2" and "int8" in variants:
        within("int8", 0.01, "accuracy")
        checks["int8 under 1 MB"] = {"value": variants["int8"]["bytes"], "met": variants["int8"]["bytes"] < 1_000_000}
    return checks


SCALING_FACTORS = (1, 4, 16)


def run_scaling() -> dict:
    """Wall time, stage times and peak memory of the fraud run at 1x, 4x and 16x the default rows.

    The growth exponent k fits time ∝ rows^k between the smallest and largest size:
    k ≤ 1 means no worse than linear.
    """
    import math

    from pipeline.data.fraud_generator import generate_transactions
    from pipeline.domains.fraud import DEFAULT_ROWS

    folder = RUNS / "scaling"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    for factor in SCALING_FACTORS:
        rows = DEFAULT_ROWS * factor
        data = folder / f"transactions_{factor}x.csv"
        generate_transactions(rows=rows, seed=0).to_csv(data, index=False)
        out = folder / f"reports_{factor}x"
        wall, _, run_dir = _run_edgeaudit(f"scaling {factor}x", "fraud",
                                          ["--data", str(data), "--label", "is_fraud", "--sensitive", "sex", "age"], out)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        training = json.loads((run_dir / "training.json").read_text())
        sizes.append({"factor": factor, "rows": rows, "wall_seconds": round(wall, 1),
                      "stage_seconds": manifest["stage_seconds"], "peak_memory_mb": manifest["peak_memory_mb"],
                      "training_epochs": training["epochs_run"],
                      "training_seconds_per_epoch": round(training["seconds"] / training["epochs_run"], 3)})
    first, last = sizes[0], sizes[-1]
    ratio = math.log(last["rows"] / first["rows"])
    exponents = {"wall": math.log(last["wall_seconds"] / first["wall_seconds"]) / ratio,
                 "training_per_epoch": math.log(last["training_seconds_per_epoch"]
                                                / first["training_seconds_per_epoch"]) / ratio}
    for stage in first["stage_seconds"]:
        if first["stage_seconds"][stage] > 0.05 and last["stage_seconds"].get(stage):
            exponents[stage] = math.log(last["stage_seconds"][stage] / first["stage_seconds"][stage]) / ratio
    result = {"case": "fraud-scaling", "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "sizes": sizes,
              "growth_exponents": {k: round(v, 3) for k, v in exponents.items()},
              "no_faster_than_linear": exponents["wall"] <= 1.0}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fraud-scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _scaling_lines(result: dict) -> list[str]:
    lines = [f"## {result['case']}", "", f"The default fraud data at {', '.join(f'{f}×' for f in SCALING_FACTORS)} "
             f"its rows, measured {result['measured_utc']} on {result['machine']['cpus']} CPUs.", "",
             "| rows | wall s | train s/epoch (epochs) | " + " | ".join(result["sizes"][0]["stage_seconds"])
             + " | peak MB |", "|---" * (4 + len(result["sizes"][0]["stage_seconds"])) + "|"]
    for size in result["sizes"]:
        lines.append(f"| {size['rows']:,} | {size['wall_seconds']} | {size['training_seconds_per_epoch']} "
                     f"({size['training_epochs']}) | "
                     + " | ".join(f"{v:.1f}" for v in size["stage_seconds"].values()) + f" | {size['peak_memory_mb']} |")
    lines += ["", "Growth exponent k (time ∝ rows^k, smallest to largest): " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["growth_exponents"].items())
        + f". Wall time no faster than linear: {'yes' if result['no_faster_than_linear'] else '**no**'}.", ""]
    return lines


def _dashboard_lines(result: dict) -> list[str]:
    lines = [f"## dashboard", "", f"`python -m benchmarks.dashboard` — measured {result['measured_utc']} over "
             f"{result['reports']['runs']} runs ({result['reports']['source']}), load average "
             f"{result['machine']['load_average'][0]:.1f} on {result['machine']['cpus']} CPUs; target: a cached page "
             f"under {result['target_cached_seconds']} s.", "",
             "| page | AppTest first open s | AppTest cached median s | browser cached median s | browser cached max s |",
             "|---|---|---|---|---|"]
    browser = result.get("browser", {}).get("pages", {})
    for page, values in result["apptest"].items():
        seen = browser.get(page, {})
        lines.append(f"| {page} | {values['first_open_seconds']:.2f} | {values['cached_median_seconds']:.2f} | "
                     f"{seen.get('cached_median_seconds', float('nan')):.2f} | {seen.get('cached_max_seconds', float('nan')):.2f} |")
    if result.get("browser"):
        lines += ["", f"Browser first load (checks every run against its manifest): "
                  f"{result['browser']['first_load_seconds']:.1f} s."]
    return lines + [""]


def _throughput_lines(result: dict) -> list[str]:
    settings = list(next(iter(result["domains"].values())))
    lines = [f"## {result['case']}", "", f"`python -m benchmarks.training_throughput` — measured "
             f"{result['measured_utc']} on {result['machine']['device']} ({result['machine']['cpus']} CPUs). "
             f"{result['note']}.", "", "| domain | " + " | ".join(settings) + " |", "|---" * (1 + len(settings)) + "|"]
    for domain, values in result["domains"].items():
        lines.append(f"| {domain} | " + " | ".join(f"{values[s]['examples_per_second']:,.0f}/s" for s in settings) + " |")
    return lines + [""]


def write_table() -> Path:
    lines = ["# Benchmarks", "",
             "Generated by `python -m benchmarks.run` from `benchmarks/results/*.json`; do not edit by hand.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        if result["case"] == "fraud-scaling":
            lines += _scaling_lines(result)
            continue
        if result["case"] == "training-throughput":
            lines += _throughput_lines(result)
            continue
        if result["case"] == "dashboard":
            lines += _dashboard_lines(result)
            continue
        if "variants" not in result:
            continue
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
        if result.get("explainers"):
            comparison = result["explainers"]
            agreement = comparison["agreement"]
            lines += ["", f"Explainers on the same {comparison['rows']} rows and {comparison['background_rows']} "
                      f"background rows ({comparison['model']}): {comparison['chosen']['explainer']} "
                      f"{comparison['chosen']['seconds']:.2f} s vs {comparison['kernel']['explainer']} "
                      f"{comparison['kernel']['seconds']:.2f} s ({comparison['speedup']}× faster); per-value Pearson "
                      f"{agreement['pearson_per_value']:.3f}, Spearman of global importance "
                      f"{agreement['spearman_global_importance']:.3f}, mean |difference| "
                      f"{agreement['mean_abs_difference']:.4f} (mean |SHAP| {agreement['mean_abs_value']:.4f})."]
        if result.get("delegates"):
            lines += ["", "Single-example latency (ms), XNNPACK vs LiteRT's built-in kernels: " + ", ".join(
                f"{name} {v['xnnpack_median_ms']:.4f} / {v['builtin_kernels_median_ms']:.4f}"
                for name, v in result["delegates"]["variants"].items())
                + f". XNNPACK sparse inference: {result['delegates']['xnnpack_sparse_inference']}."]
        per_ten = result["case"].startswith("imaging")  # the imaging issue asks per 10 images
        lines += ["", ("SHAP seconds per 10 images: " if per_ten else "SHAP seconds per 100 explained rows: ")
                  + ", ".join(f"{m} {(s / 10 if per_ten else s):.2f} s"
                              for m, s in result["shap_seconds_per_100_rows"].items()) + ".", "",
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
    parser.add_argument("--scaling", action="store_true", help="also run fraud at 1x, 4x and 16x its rows (minutes)")
    arguments = parser.parse_args()
    if not arguments.table_only:
        for name in arguments.case or list(CASES):
            data = CASES[name]["data"]
            if data is not None and not Path(data).exists():
                print(f"skipping {name}: {data} is not present")
                continue
            run_case(name)
        if arguments.scaling:
            run_scaling()
    print(f"wrote {write_table()}")


if __name__ == "__main__":
    main()
