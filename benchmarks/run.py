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


# Every case ships for a named microcontroller: the decision (pipeline.stages.deploy) then weighs the
# measured fit, and the audit judges the microcontroller runtime's decisions.
DEVICE_TARGET = ["--target", "cortex-m4"]


def run_case(name: str) -> dict:
    case = CASES[name]
    wall, exit_code, run_dir = _run_edgeaudit(name, case["domain"], case["arguments"] + DEVICE_TARGET, RUNS / name)
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
                             *[a.replace(str(SHARED.parent), "../shared") for a in case["arguments"] + DEVICE_TARGET]]),
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
        "deployment": _deployment(run_dir, headline),
        "targets": {**_check_targets(name, variants, headline, wall),
                    **_deployment_targets(name, _deployment(run_dir, headline), manifest)},
        "baselines": _baselines(case),
        "delegates": _delegate_latency(run_dir, case),
        "explainers": _explainer_comparison(run_dir, case),
        "repair": _compression_repair(run_dir, metrics),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _compression_repair(run_dir: Path, metrics: dict) -> dict:
    """Issue 20's figures of one run: each variant's worst group TPR/FPR change against float on test (audit.json),
    its flip rate overall and in its most-flipped group (flips.json), its worst layer (layers.json), and what
    selective_int8 did on validation (compression.json)."""
    read = lambda file: json.loads((run_dir / file).read_text()) if (run_dir / file).exists() else {}  # noqa: E731
    audit, flips, layers, compression = read("audit.json"), read("flips.json"), read("layers.json"), read("compression.json")
    gate = json.loads((run_dir / "manifest.json").read_text())["config"]["gate"]
    limit, min_positives = gate["max_gap_widening"], gate["min_positives_per_group"]
    variants = {}
    for variant, columns in (audit.get("compression") or {}).items():
        worst = None
        for column, table in columns.items():
            if column not in audit["settings"]["sensitive_columns"]:
                continue  # the single columns, as the gate judges them
            for group, cell in table["groups"].items():
                counts = audit["by_group"][variant][column]["groups"][group]
                positives = ((counts.get("metrics") or {}).get("positives") or {}).get("value") or 0
                enough = {"tpr": positives >= min_positives, "fpr": counts["count"] - positives >= min_positives}
                for metric in ("tpr", "fpr"):
                    # as selective_int8 judges it: a rate with too few positives (negatives) is not judged
                    change = ((cell.get("changes") or {}).get(metric) or {}).get("change") \
                        if cell["measurable"] and enough[metric] else None
                    if change is not None and (worst is None or abs(change) > abs(worst["change"])):
                        worst = {"column": column, "group": group, "metric": metric, "change": change}
        flip = (flips.get("variants") or {}).get(variant) or {}
        highest = []
        for column, group in (flip.get("highest") or {}).items():
            if group is not None and column in audit["settings"]["sensitive_columns"]:
                cell = flip["by_group"][column][group]
                highest.append({"column": column, "group": group, "rate": cell["rate"]["value"],
                                "interval": cell["rate"]["interval"]})
        layer = ((layers.get("variants") or {}).get(variant) or {}).get("summary") or {}
        variants[variant] = {
            "worst_group_change_test": worst, "within_limit_test": None if worst is None else abs(worst["change"]) <= limit,
            "flip_rate": ((flip.get("overall") or {}).get("rate") or {}).get("value"),
            "flips": (flip.get("overall") or {}).get("flips"),
            "highest_group_flip_rate": max(highest, key=lambda h: h["rate"]) if highest else None,
            "worst_layer": layer.get("worst"), "layers_over_warning_level": layer.get("over_warning_level"),
            "bytes": (metrics["variants"].get(variant) or {}).get("size", {}).get("bytes"),
        }
    selective = compression.get("selective_int8") or {}
    details = (selective.get("details") or {}).get("selective") or {}
    calibration = (((compression.get("int8") or {}).get("details") or {}).get("calibration")) or {}
    pruned = (compression.get("pruned_int8") or {}).get("details") or {}
    allocation = pruned.get("sparsity_allocation") or {}
    search = pruned.get("learning_rate_search") or {}
    return {"limit": limit, "variants": variants, "pruning": {
        "method": allocation.get("method"), "sparsity": allocation.get("sparsity"), "overall": allocation.get("overall"),
        "target": allocation.get("target"), "learning_rate": search.get("chosen"),
        "learning_rate_because": search.get("chosen_because"), "learning_rate_candidates": search.get("candidates")},
        "calibration": {
        "chosen": calibration.get("chosen"),
        "sets": {row["name"]: row["worst"] for row in calibration.get("sets") or []}}, "selective_int8": {
        "status": selective.get("status"), "reason": selective.get("reason"),
        "validation_worst_int8": (details.get("start") or {}).get("worst"),
        "validation_worst_selective": (details.get("final") or {}).get("worst"),
        "restored": [{"keras_layer": step["keras_layer"], "bytes_added": step["bytes_added"],
                      "latency_ms_added": step["latency_ms_added"]} for step in details.get("restored") or []],
        "bytes_ratio_to_int8": (details["final"]["bytes"] / details["int8_bytes"]) if details.get("final") else None,
    }}


def _repair_lines(repair: dict) -> list[str]:
    limit = repair["limit"]
    lines = ["", f"When compression hurts (issue 20): worst group change of TPR or FPR against float on the test "
                 f"split (gate limit ±{limit}; a group's TPR (FPR) counts with at least --min-positives-per-group "
                 "positives (negatives)), decisions flipped, and the layer with the largest quantization error "
                 "(RMSE / scale, on validation).", "",
             "| variant | worst group change (test) | flip rate | most-flipped group | worst layer |",
             "|---|---|---|---|---|"]
    for variant, v in repair["variants"].items():
        worst = v["worst_group_change_test"]
        change = "n/a" if worst is None else (f"{worst['metric'].upper()} {worst['change']:+.3f} "
                                              f"({worst['column']} = {worst['group']})")
        if worst is not None and not v["within_limit_test"]:
            change = f"**{change}**"
        high = v["highest_group_flip_rate"]
        layer = v["worst_layer"]
        lines.append(f"| {variant} | {change} | "
                     + ("n/a" if v["flip_rate"] is None else f"{v['flip_rate']:.4f} ({v['flips']:,})") + " | "
                     + ("—" if not high else f"{high['column']} = {high['group']}: {high['rate']:.4f} "
                        f"[{high['interval'][0]:.4f}, {high['interval'][1]:.4f}]") + " | "
                     + ("—" if not layer else f"{layer['keras_layer']} {layer['rmse_over_scale']:.2f}") + " |")
    selective = repair["selective_int8"]
    fmt = lambda w: ("n/a" if not w or w.get("column") is None  # noqa: E731
                     else f"{w['metric'].upper()} {w['change']:+.3f} ({w['column']} = {w['group']})")
    if selective.get("status") == "ok":
        inside = selective["validation_worst_selective"] is not None and \
            abs(selective["validation_worst_selective"]["change"]) <= limit
        lines += ["", f"selective_int8 on validation: int8 {fmt(selective['validation_worst_int8'])} → "
                      f"{fmt(selective['validation_worst_selective'])}; kept in float: "
                      + (", ".join(f"{s['keras_layer']} ({s['bytes_added']:+,} B, {s['latency_ms_added']:+.4f} ms)"
                                   for s in selective["restored"]) or "nothing")
                      + f"; {selective['bytes_ratio_to_int8']:.3f}× the int8 bytes. Target (inside ±{limit} for at "
                      f"most 1.25× int8's bytes): " + ("met" if inside and selective["bytes_ratio_to_int8"] <= 1.25
                                                        else "**not met**") + "."]
    elif selective.get("status"):
        lines += ["", f"selective_int8 {selective['status']}: {selective.get('reason')}."]
    pruning = repair.get("pruning") or {}
    if pruning.get("method") == "sensitivity":
        lines += ["", "pruned_int8's sparsity per layer (sensitivity scan on validation, pqat_int8 starts from it): "
                      + ", ".join(f"{layer} {level:.0%}" for layer, level in pruning["sparsity"].items())
                      + f"; {pruning['overall']:.1%} of the pruned weights (target {pruning['target']:.0%})."]
    if pruning.get("learning_rate_candidates"):
        lines += ["", f"pruned_int8's fine-tuning learning rate: {pruning['learning_rate']:g}, chosen on validation "
                      "from " + "; ".join(
                          f"{rate}: PR-AUC {value['validation_pr_auc']:.4f}" + (
                              f", rank correlation with float {value['rank_correlation_with_float']:.3f}"
                              if value.get("rank_correlation_with_float") is not None else "")
                          for rate, value in pruning["learning_rate_candidates"].items())
                      + f" ({pruning['learning_rate_because']})."]
    calibration = repair.get("calibration") or {}
    if calibration.get("sets"):
        lines += ["", "int8 calibration sets, worst group change on validation: " + "; ".join(
            f"{name}{' (used)' if name == calibration['chosen'] else ''} {fmt(worst)}"
            for name, worst in calibration["sets"].items()) + "."]
    return lines


def _deployment(run_dir: Path, headline: str) -> dict:
    """What deployment.json says: every variant in the microcontroller runtime, and the automatic choice."""
    deployment = json.loads((run_dir / "deployment.json").read_text())
    decision = deployment["decision"]
    variants = {}
    for name, entry in deployment["variants"].items():
        micro = entry["microcontroller"] or {}
        agreement = micro.get("agreement_with_litert") or {}
        variants[name] = {
            "flash_bytes": entry["flash_bytes"], "micro_supported": micro.get("supported"),
            "first_unsupported": micro.get("first_unsupported"), "arena_bytes": micro.get("arena_bytes"),
            "agreement_with_litert": agreement.get("identical_decisions"),
            "changed_decisions": agreement.get("changed_decisions"),
            f"micro_{headline}": (micro.get("quality") or {}).get(headline),
            "fits": {target: fit["fits"] for target, fit in entry["targets"].items()},
            "validation_verdict": decision["table"][name]["validation_verdict"],
            "why_not_chosen": decision["table"][name]["why_not_chosen"]}
    return {"named_targets": decision["named_targets"], "ship_variant": decision["ship_variant"],
            "choice_verdict": decision["verdict"], "explanation": decision["explanation"],
            "threshold": decision.get("threshold"), "variants": variants}


def _deployment_targets(name: str, deployment: dict, manifest: dict) -> dict:
    """Issue 16's goals: int8 runs on the microcontroller runtime and agrees with LiteRT; the imaging int8 fits
    the 256 KB target; the default fraud run passes its gate with the automatic choice."""
    checks = {}
    int8 = deployment["variants"].get("int8")
    if int8:
        checks["int8 decisions agree with LiteRT ≥ 0.999 (tflite-micro)"] = {
            "value": int8["agreement_with_litert"] or 0.0,
            "met": bool(int8["micro_supported"]) and (int8["agreement_with_litert"] or 0.0) >= 0.999}
    if name.startswith("imaging") and int8:
        checks["imaging int8 fits cortex-m4 (256 KB RAM)"] = {"value": int8["arena_bytes"] or 0,
                                                             "met": bool(int8["fits"].get("cortex-m4"))}
    if name == "fraud-default":
        qualifies = any(v["validation_verdict"] == "pass" and v["fits"].get("cortex-m4")
                        for v in deployment["variants"].values())
        checks["gate passes with --ship auto (a variant passes on validation: "
               f"{'yes' if qualifies else 'no'})"] = {"value": float(manifest["gate"]["passed"]),
                                                       "met": manifest["gate"]["passed"] or not qualifies}
    return checks


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
    """Our explainer vs SHAP's KernelExplainer on the same model, rows and background.

    Tabular: KernelExplainer on the encoded inputs, summed per original column. Images,
    windows and text: both explain the same Shapley game over the same players
    (`_explainer_comparison_players`).
    KernelExplainer runs without feature selection (l1_reg=False): shap 0.51's default,
    "num_features(10)", would give every player but ten a value of exactly 0.
    """
    import numpy as np
    import shap

    from pipeline.stages.evaluate import LiteRTModel
    from pipeline.explainers.grouped_permutation import explain_groups as explain_tabular

    domain, data = _case_data(case)
    preprocessing = json.loads((run_dir / "models" / "preprocessing.json").read_text())
    if domain.modality_of(data) != "tabular":
        return _explainer_comparison_players(run_dir, domain, data, preprocessing, rows=rows,
                                             background_rows=background_rows)
    from pipeline.data.tabular_preprocessing import with_spec

    data = with_spec(data, preprocessing)   # the encoding the run shipped (the model search may have chosen it)
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
    np.random.seed(0)   # KernelExplainer samples coalitions from NumPy's global generator: seeded, it repeats
    kernel = shap.KernelExplainer(predict, background).shap_values(test[row_ids], l1_reg=False, silent=True)
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
                   "nsamples": "auto (2 * inputs + 2048)", "l1_reg": False, "seconds": round(kernel_seconds, 3)},
        "speedup": round(kernel_seconds / ours_seconds, 2) if ours_seconds else None,
        "agreement": {
            "pearson_per_value": float(np.corrcoef(ours_values.ravel(), kernel_values.ravel())[0, 1]),
            "spearman_global_importance": float(spearmanr(global_ours, global_kernel)[0]),
            "mean_abs_difference": float(np.abs(ours_values - kernel_values).mean()),
            "mean_abs_value": float(np.abs(ours_values).mean()),
        },
    }


# The modalities with a same-player comparison. Its cost: KernelExplainer evaluates about
# 2M + 2048 coalitions per row (M players; all 2^M - 2 when fewer), each one model row per
# background row. Measured on quick runs (2 shared CPU cores, LiteRT): 20 images (64 players)
# about 8 s, 20 windows (70 cells, 50 background windows) about 12 s, 20 texts about 5 s.
PLAYER_COMPARISON_MODALITIES = ("image", "window", "text")


def _explainer_comparison_players(run_dir: Path, domain, data, preprocessing: dict, *,
                                  rows: int = 20, background_rows: int = 50) -> dict:
    """Our explainer vs KernelExplainer on the SAME players, for images, windows and text.

    Our explainer runs through the domain's own `explain` hook (the pipeline's call). For
    each explained row with M players, KernelExplainer explains a coalition function
    f(z), z in {0, 1}^M: player on -> the row's values, off -> what our explainer puts in
    its place (the reference image's region; a background window's cell, averaged over
    the same background windows; the text masker's removal of the token), at z = ones(M)
    against the background zeros((1, M)) (every player off). Both thus estimate the same
    game: ours by shap's permutation sampling (text: PartitionExplainer's Owen values over
    shap's token tree), KernelExplainer by its weighted regression.
    """
    import dataclasses

    import numpy as np

    from pipeline.stages.evaluate import LiteRTModel

    modality = domain.modality_of(data)
    if modality not in PLAYER_COMPARISON_MODALITIES:
        return {"not_compared": f"no same-player comparison is defined for the {modality!r} modality"}
    # The shipped spec (what the .tflite was trained with), not a re-fit of it.
    data = dataclasses.replace(data, preprocessing=preprocessing)
    rng = np.random.default_rng(0)
    train = domain.encode(preprocessing, data.train.raw)
    test = domain.encode(preprocessing, data.test.raw)
    background = train[rng.choice(len(train), min(background_rows, len(train)), replace=False)]
    row_ids = sorted(rng.choice(len(test), min(rows, len(test)), replace=False).tolist())
    lite = LiteRTModel((run_dir / "models" / "float32.tflite").read_bytes())
    ours = domain.explain(predict_functions={"float32": lite.predict}, data=data, background=background,
                          rows=test[row_ids], row_ids=row_ids, local_row_ids=[], seed=0, reference="float32")
    model = ours["models"]["float32"]
    settings = ours["settings"]
    result = {
        "rows": len(row_ids), "model": "float32.tflite in LiteRT",
        "chosen": {"explainer": ours["explainer"], "seconds": round(model["seconds"], 3),
                   "one_off_setup_seconds": ours.get("setup_seconds"), "model_rows": model["predict_rows"]},
    }
    if modality == "text":
        from pipeline.explainers.text import visible_text

        texts = [visible_text(preprocessing, str(t))
                 for t in np.asarray(data.test.raw, dtype=object)[np.asarray(row_ids, dtype=np.int64)]]
        comparison = _kernel_on_tokens(ours, texts, preprocessing, lite.predict)
        result.update(
            players=comparison.pop("players"), background_rows=None,
            background="a hidden token is removed from the text (no background rows; all hidden: the empty text)",
            game="v(S) = f(the text with the tokens outside S removed), as shap's Text masker builds it")
        result["chosen"].update(players="the tokens of the shipped tokenizer (PartitionExplainer: Owen values over "
                                        "shap's token tree)", max_evals=settings.get("max_evals"),
                                max_evals_used=settings.get("max_evals_used"))
        result["note"] = ("same game and players, not the same attribution: PartitionExplainer gives Owen values "
                          "(coalitions follow shap's token tree), KernelExplainer Shapley values (exact up to 11 "
                          "tokens), so part of the difference is by design, not estimation noise")
    else:
        shape = test.shape[1:]
        columns = ours["feature_columns"]
        if modality == "image":
            groups = data.feature_groups
        else:
            from pipeline.explainers.window import window_cells

            groups = window_cells(ours["window_cells"]["sensors"], shape[0], len(ours["window_cells"]["blocks"]))
        if list(groups) != list(columns):
            raise ValueError("the players of our explanation differ from the comparison's")
        if modality == "image":
            from pipeline.explainers.image import reference_image

            masked_by = reference_image(background).reshape(1, -1)
            result.update(background_rows=len(background),
                          background=f"one reference image: the box-blurred mean of {len(background)} training "
                                     f"images (explain_image.reference_image)",
                          game="v(S) = f(the image, regions outside S taken from the reference image)")
        else:
            if settings["background_rows"] != len(background):
                raise ValueError(f"our explainer used {settings['background_rows']} of {len(background)} background "
                                 f"windows; the comparison needs all of them")
            masked_by = background.reshape(len(background), -1)
            result.update(background_rows=len(background),
                          background=f"{len(background)} training windows (interventional: a masked cell comes from "
                                     f"each of them, the value is the mean)",
                          game="v(S) = mean over background windows b of f(the window, cells outside S from b)")
        comparison = _kernel_on_groups(np.asarray(ours["_arrays"]["shap_values"]["float32"]),
                                       test[row_ids].reshape(len(row_ids), -1), masked_by,
                                       [np.asarray(groups[c]) for c in columns], shape, lite.predict)
        result["players"] = len(columns)
        result["chosen"]["players"] = settings.get("players")
        result["chosen"]["permutations"] = settings.get("permutations")
        if settings.get("method") == "exact":
            result["note"] = ("the same Shapley values: ours exact (every coalition), KernelExplainer estimated by "
                              "regression on sampled coalitions; the difference is KernelExplainer's sampling noise")
        else:
            result["note"] = (f"both estimate the same Shapley values: ours from {settings.get('permutations')} "
                              f"antithetic permutations per row, KernelExplainer by regression on sampled "
                              f"coalitions; the difference is the sampling noise of both")
    kernel_seconds = comparison.pop("seconds")
    result["kernel"] = {"explainer": "shap.KernelExplainer",
                        "players": "the same players, through the coalition function f(z); background zeros((1, M)), "
                                   "explained point ones((1, M))",
                        "nsamples": "auto: 2M + 2048 coalitions (all 2^M - 2 when fewer)",
                        "nsamples_used": comparison.pop("nsamples_used"), "l1_reg": False,
                        "seconds": round(kernel_seconds, 3), "model_rows": comparison.pop("model_rows")}
    ours_seconds = result["chosen"]["seconds"]
    result["speedup"] = round(kernel_seconds / ours_seconds, 2) if ours_seconds else None
    result.update(comparison)
    return result


class _CountingGame:
    """A coalition function f(z), z in {0,1}^M, counting the model rows it evaluates."""

    def __init__(self, function):
        self.function, self.model_rows = function, 0

    def __call__(self, z):
        import numpy as np

        z = np.asarray(z, dtype=np.float64) > 0.5
        out, rows = self.function(z)
        self.model_rows += rows
        return out


def _kernel_row(shap, game: _CountingGame, players: int) -> tuple:
    """KernelExplainer's values of one game at ones(M) against zeros((1, M)), and its nsamples."""
    import numpy as np

    np.random.seed(0)   # KernelExplainer samples coalitions from NumPy's global generator: seeded, it repeats
    explainer = shap.KernelExplainer(game, np.zeros((1, players)))
    values = explainer.shap_values(np.ones((1, players)), nsamples="auto", l1_reg=False, silent=True)
    return np.asarray(values, dtype=np.float64).reshape(players), int(getattr(explainer, "nsamples", 0))


def _kernel_on_groups(ours, rows, masked_by, groups, shape, predict, chunk_rows: int = 4096) -> dict:
    """KernelExplainer over groups of input indices; off: the indices from each `masked_by` row, mean output."""
    import numpy as np

    from pipeline.explainers.common import import_shap as _import_shap

    shap = _import_shap()
    n, width = rows.shape
    column_of = np.empty(width, dtype=np.intp)
    for g, idx in enumerate(groups):
        column_of[idx] = g
    masked_by = np.asarray(masked_by, dtype=np.float32)
    k = len(masked_by)
    step = max(1, chunk_rows // k)

    def game_for(x):
        def f(z):
            out = []
            for start in range(0, len(z), step):
                keep = z[start:start + step][:, column_of]                               # [m, width]
                filled = np.where(keep[:, None, :], x[None, None, :], masked_by[None])  # [m, k, width]
                out.append(predict(filled.reshape(-1, *shape)).reshape(-1, k).mean(axis=1))
            return np.concatenate(out), len(z) * k
        return _CountingGame(f)

    kernel = np.empty_like(ours, dtype=np.float64)
    model_rows, nsamples = 0, []
    started = time.monotonic()
    for i in range(n):
        game = game_for(rows[i].astype(np.float32))
        kernel[i], used = _kernel_row(shap, game, len(groups))
        model_rows, nsamples = model_rows + game.model_rows, nsamples + [used]
    seconds = time.monotonic() - started
    ours_global, kernel_global = np.abs(ours).mean(axis=0), np.abs(kernel).mean(axis=0)
    return {"seconds": seconds, "model_rows": model_rows, "nsamples_used": sorted(set(nsamples)),
            "agreement": _agreement([ours[i] for i in range(n)], [kernel[i] for i in range(n)],
                                    ours_global, kernel_global)}


def _kernel_on_tokens(ours: dict, texts: list, spec: dict, predict) -> dict:
    """KernelExplainer over each text's tokens; off: removed, exactly as our explainer's Text masker does."""
    import numpy as np

    from pipeline.explainers.common import import_shap as _import_shap
    from pipeline.explainers.text import MASK, SpecTokenizer, _token_totals, string_predict_function

    shap = _import_shap()
    masker = shap.maskers.Text(SpecTokenizer(spec), mask_token=MASK, collapse_mask_token=True)  # as explain_texts
    f_text = string_predict_function(spec, predict)
    ours_values = [np.asarray(v, dtype=np.float64).reshape(-1) for v in ours["_arrays"]["shap_values"]["float32"]]
    tokens = ours["_arrays"]["tokens"]

    def game_for(text):
        def f(z):
            return f_text([masker(keep, text)[0][0] for keep in z]), len(z)
        return _CountingGame(f)

    kernel_values, model_rows, nsamples, skipped = [], 0, [], 0
    started = time.monotonic()
    for text, values in zip(texts, ours_values):
        players = len(values)
        if players == 0:
            kernel_values.append(np.zeros(0))
            skipped += 1
            continue
        if int(masker.shape(text)[1]) != players:
            raise ValueError(f"the Text masker sees {masker.shape(text)[1]} tokens, our explainer {players}")
        game = game_for(text)
        values, used = _kernel_row(shap, game, players)
        kernel_values.append(values)
        model_rows, nsamples = model_rows + game.model_rows, nsamples + [used]
    seconds = time.monotonic() - started
    ours_importance, _ = _token_totals(tokens, ours_values, len(texts))
    kernel_importance, _ = _token_totals(tokens, kernel_values, len(texts))
    vocabulary = sorted(ours_importance)
    counts = [len(v) for v in ours_values]
    return {"seconds": seconds, "model_rows": model_rows, "nsamples_used": sorted(set(nsamples)),
            "players": f"the tokens of each text: {min(counts)} to {max(counts)} ({sum(counts)} in all)",
            "text_rows_without_tokens": skipped,
            "agreement": _agreement(ours_values, kernel_values,
                                    np.array([ours_importance[t] for t in vocabulary]),
                                    np.array([kernel_importance[t] for t in vocabulary]),
                                    global_over="token strings (mean over texts of the summed |value| of a "
                                                "token's occurrences)")}


def _agreement(ours: list, kernel: list, ours_global, kernel_global, *,
               global_over: str = "players (mean |value| over rows)") -> dict:
    """Pearson over all values, the mean per-row Pearson and Spearman, Spearman of global importance."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    def finite(value):
        value = float(value)
        return value if np.isfinite(value) else None

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    flat_ours, flat_kernel = np.concatenate(ours), np.concatenate(kernel)
    # A row's correlation needs at least 3 players and values that vary.
    usable = [(a, b) for a, b in zip(ours, kernel) if len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0]
    return {
        "pearson_per_value": finite(pearsonr(flat_ours, flat_kernel)[0]),
        "pearson_per_row_mean": mean([finite(pearsonr(a, b)[0]) for a, b in usable]),
        "spearman_per_row_mean": mean([finite(spearmanr(a, b)[0]) for a, b in usable]),
        "rows_with_correlation": len(usable),
        "spearman_global_importance": finite(spearmanr(ours_global, kernel_global)[0]),
        "global_importance_over": global_over,
        "mean_abs_difference": float(np.abs(flat_ours - flat_kernel).mean()),
        "mean_abs_value": float(np.abs(flat_ours).mean()),
        "mean_abs_value_kernel": float(np.abs(flat_kernel).mean()),
        # Both sum to f(row) - f(every player off) when they explain the same game.
        "row_sum_max_abs_difference": float(max(abs(a.sum() - b.sum()) for a, b in zip(ours, kernel))),
    }


def _baselines(case: dict) -> dict:
    """Context for the model's quality: scikit-learn models on the very same split and encoding."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from pipeline.metrics import pr_auc, roc_auc

    domain, data = _case_data(case)
    if domain.modality_of(data) != "tabular":
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

    # Issue 20, every case: pruning (spread over the layers by sensitivity) keeps quality and size.
    for variant, label in (("pruned_int8", "pruned+int8"), ("pqat_int8", "pqat+int8")):
        if variant in variants:
            within(variant, 0.01)
            value = variants[variant]["gzip_ratio_to_float32"]
            checks[f"{label} gzip ≤ 0.15× float32"] = {"value": value, "met": value is not None and value <= 0.15}
    if name.startswith("fraud"):
        if "int8" in variants:
            value = variants["int8"]["size_ratio_to_float32"]
            checks["int8 size ≤ 0.30× float32"] = {"value": value, "met": value is not None and value <= 0.30}
        for variant in ("int8", "qat_int8"):
            within(variant, 0.01)
        if name == "fraud-default":
            checks["default run under 5 minutes"] = {"value": round(wall, 1), "met": wall <= 300}
    elif name == "imaging-pneumoniamnist" and "int8" in variants:
        checks["int8 ROC-AUC ≥ 0.94"] = {"value": variants["int8"]["roc_auc"], "met": variants["int8"]["roc_auc"] >= 0.94}
        checks["int8 under 200 KB"] = {"value": variants["int8"]["bytes"], "met": variants["int8"]["bytes"] < 200_000}
    elif name == "maintenance-ai4i":
        within("int8", 0.01)
    elif name == "sentiment-sst2" and "int8" in variants:
        checks["float word CNN accuracy ≥ 0.82"] = {"value": variants["float32"]["accuracy"],
                                                    "met": variants["float32"]["accuracy"] >= 0.82}
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
    """Examples per second per domain and setting; the pipeline's own setting on that device in bold."""
    domains = {name: (values["settings"] if "settings" in values else values)  # older records: no "settings"
               for name, values in result["domains"].items()}
    settings = list(dict.fromkeys(key for values in domains.values() for key in values))
    command = result.get("command", "python -m benchmarks.training_throughput")
    machine = result["machine"]
    backend = f", {machine['backend']} backend" if machine.get("backend") else ""
    lines = [f"## {result['case']}", "", f"`{command}` — measured {result['measured_utc']} on "
             f"{machine['device']} ({machine['cpus']} CPUs{backend}). {result['note']}.", "",
             "| domain | " + " | ".join(settings) + " |", "|---" * (1 + len(settings)) + "|"]
    for name, values in domains.items():
        chosen = result["domains"][name].get("pipeline_setting")
        cells = []
        for setting in settings:
            value = values.get(setting)
            if value is None or "examples_per_second" not in (value or {}):
                cells.append("not measured" if value is None else "failed")
                continue
            cell = f"{value['examples_per_second']:,.0f}/s"
            if "xla=on" in setting and value.get("xla_used") is False:
                cell += " (Keras refused XLA)"
            cells.append(f"**{cell}**" if setting == chosen else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "In bold: the setting `edgeaudit run` uses for that domain on that device (pipeline/runtime.py "
                  "and the domain's mixed_precision_on_accelerator). feed=numpy hands the arrays to `fit` (no "
                  "augmentation); feed=tf.data is the pipeline's own input pipeline "
                  "(pipeline/stages/input_pipeline.py), with the domain's augmentation."]
    first = [f"{name} {values['first_epoch_seconds']:.1f} s" for name, per in domains.items()
             for setting, values in per.items() if setting == result["domains"][name].get("pipeline_setting")
             and "first_epoch_seconds" in values]
    if first:
        lines += ["", "First epoch, compile included, at the pipeline's setting: " + ", ".join(first) + "."]
    return lines + [""]


def _explainer_lines(comparison: dict) -> list[str]:
    """The "explainers side by side" paragraph of a case (any modality; older tabular records too)."""
    if comparison.get("not_compared"):
        return ["", f"Explainers side by side: not compared ({comparison['not_compared']})."]
    number = lambda value, digits: "n/a" if value is None else f"{value:.{digits}f}"  # noqa: E731
    agreement, chosen, kernel = comparison["agreement"], comparison["chosen"], comparison["kernel"]
    if "game" in comparison:  # images, windows, text: one game, the same players
        players = comparison["players"]
        players = f"{players} players per row" if isinstance(players, int) else players
        setting = (f"Explainers side by side on the same {comparison['rows']} rows and the same players, {players} "
                   f"({comparison['model']}); masking: {comparison['background']}. ")
    else:
        setting = (f"Explainers on the same {comparison['rows']} rows and {comparison['background_rows']} "
                   f"background rows ({comparison['model']}; KernelExplainer on the encoded inputs, summed per "
                   f"column): ")
    used = kernel.get("nsamples_used")
    samples = (f" (nsamples {used[0]}" + (f" to {used[-1]}" if len(used) > 1 else "") + ")") if used else ""
    if kernel.get("l1_reg") is False:
        samples = samples[:-1] + ", no feature selection)" if samples else " (no feature selection)"
    per_row = (f", mean per-row Pearson {number(agreement['pearson_per_row_mean'], 3)} and Spearman "
               f"{number(agreement['spearman_per_row_mean'], 3)}" if "pearson_per_row_mean" in agreement else "")
    over = f" over {agreement['global_importance_over']}" if agreement.get("global_importance_over") else ""
    return ["", setting + f"{chosen['explainer']} {chosen['seconds']:.2f} s vs {kernel['explainer']}{samples} "
            f"{kernel['seconds']:.2f} s ({comparison['speedup']}× faster); per-value Pearson "
            f"{number(agreement['pearson_per_value'], 3)}{per_row}, Spearman of global importance "
            f"{number(agreement['spearman_global_importance'], 3)}{over}, mean |difference| "
            f"{agreement['mean_abs_difference']:.4f} (mean |SHAP| {agreement['mean_abs_value']:.4f})."
            + (f" Note: {comparison['note']}." if comparison.get("note") else "")]


def _input_feed_lines(result: dict) -> list[str]:
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured {result['measured_utc']} "
             f"({result['machine']['cpus']} CPUs): {result['rows']:,} rows x {result['inputs']} inputs, batch "
             f"{result['batch_size']}, seconds per training epoch (median of two).", "",
             "| feed | s/epoch | ratio to numpy feed |", "|---|---|---|"]
    for name, value in result["seconds_per_epoch"].items():
        lines.append(f"| {name} | {value:.2f} | {result['ratio_to_numpy_feed'][name]:.2f} |")
    return lines + [""]


def _encoder_lines(result: dict) -> list[str]:
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured {result['measured_utc']} "
             f"({result['machine']['cpus']} CPUs). Float Keras accuracy on SST-2 dev ({result['data']['test (SST-2 dev)']} "
             f"sentences, standard error about {result['dev_standard_error']}), trained on {result['data']['train']:,} "
             f"SST-2 train phrases; bar for a word CNN: {result['bar']}. Best CNN: {result['best_cnn_dev_accuracy']:.4f}.",
             f" Thresholds: chosen on validation by the rule `{result.get('threshold_rule', 'f1')}`, and 0.5.",
             "", "| setting | dev accuracy | at 0.5 | best epoch | parameters | seconds |", "|---|---|---|---|---|---|"]
    for name, values in result["settings"].items():
        lines.append(f"| {name} | {values['dev_accuracy']:.4f} | {values['dev_accuracy_at_0.5']:.4f} | "
                     f"{values['best_epoch']} | {values['parameters']:,} | {values['seconds']:.0f} |")
    return lines + [""]


def _cnn_variant_lines(result: dict) -> list[str]:
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured "
             f"{result.get('first_measured_utc', result['measured_utc'])} to {result['measured_utc']} "
             f"({result['machine']['cpus']} CPUs). The earlier pipeline's word CNN on SST-2 with training choices changed "
             f"per row, seeds {', '.join(map(str, result['seeds']))}; float Keras accuracy on SST-2 dev at the "
             f"threshold chosen on validation by the rule `{result['threshold_rule']}`. Bar: {result['bar']}; "
             f"variants whose mean reaches it: {result['variants_reaching_bar_on_mean']}; single runs reaching it: "
             f"{result['runs_reaching_bar']} of {sum(len(v['runs']) for v in result['variants'].values())}. "
             "SST-2 dev is the test split here. The last two rows were built from choices that had helped on dev "
             "above; the pipeline's model was chosen between them on validation accuracy (the same split), not "
             "on dev.",
             "", "| variant | mean dev accuracy | min | max | mean at 0.5 | mean validation accuracy at 0.5 "
             "| training texts | vocabulary |", "|---|---|---|---|---|---|---|---|"]
    for name, values in result["variants"].items():
        first = values["runs"][0]
        validation = [run.get("validation_accuracy_at_0.5") for run in values["runs"]]
        shown = f"{sum(validation) / len(validation):.4f}" if None not in validation else "—"
        lines.append(f"| {name} | {values['mean_dev_accuracy']:.4f} | {values['min_dev_accuracy']:.4f} | "
                     f"{values['max_dev_accuracy']:.4f} | {values['mean_dev_accuracy_at_0.5']:.4f} | {shown} | "
                     f"{first['train_texts']:,} | {first['vocabulary']:,} |")
    for name, values in result["variants"].items():
        if "mean_int8_dev_accuracy" in values:
            each = ", ".join(f"{run['int8']['dev_accuracy']:.4f}" for run in values["runs"])
            lines += ["", f"{name}: its int8 `.tflite` (the pipeline's compression stage, run in LiteRT at its own "
                          f"threshold) has mean dev accuracy {values['mean_int8_dev_accuracy']:.4f} ({each}) in "
                          f"{values['int8_bytes']:,} bytes."]
    return lines + [""]


def _pruning_rate_lines(result: dict) -> list[str]:
    from pipeline.config import PRUNING_LEARNING_RATES

    rates = result["learning_rates"]
    candidates = [f"{rate:g}" for rate in PRUNING_LEARNING_RATES]
    times = sorted(case["measured_utc"] for case in result["cases"].values())
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured "
             + (f"{times[0]} to {times[-1]}" if times[0] != times[-1] else times[0])
             + f" ({result['machine']['cpus']} CPUs). pruned_int8 of each case, fine-tuned at each learning rate from "
             "the same trained float model. Each cell: validation PR-AUC of the kept epoch (what the choice is "
             "made by) / test headline metric of the .tflite in LiteRT. In bold: the better on validation of the "
             f"pipeline's candidates {' and '.join(candidates)}, the rule when this was measured; since 2026-11-28 a "
             "lead a paired bootstrap shows to be under 0.005 is a tie, broken toward the rate that ranks validation "
             "rows most like the float model (each case's section above says which rate its run kept and why).", "",
             "| case | float | " + " | ".join(f"learning rate {rate}" for rate in rates)
             + " | best on validation |", "|---" * (3 + len(rates)) + "|"]
    for name, case in result["cases"].items():
        headline = case["headline_metric"]
        kept = max(candidates, key=lambda rate: case["learning_rates"][rate]["validation_pr_auc_kept"])
        cells = []
        for rate in rates:
            values = case["learning_rates"][rate]
            cell = f"{values['validation_pr_auc_kept']:.4f} / {values[f'test_{headline}']:.4f}"
            cells.append(f"**{cell}**" if rate == kept else cell)
        lines.append(f"| {name} ({headline}) | {case['float'][headline]:.4f} | " + " | ".join(cells)
                     + f" | {case['best_on_validation']} |")
    return lines + [""]


def _coverage_lines(result: dict) -> list[str]:
    low, high = result["target"]
    statistics = list(result["scenarios"][0]["coverage"])
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured {result['measured_utc']}. Share of "
             f"the audit's 95 % intervals that contain the true value, over data sets simulated from a model "
             f"whose group rates are known (benchmarks/interval_coverage.py); target {low:.0%} to {high:.0%}. "
             "Mean width in brackets.", "",
             "| scenario | data sets | " + " | ".join(s.replace("_", " ") for s in statistics)
             + " | point inside its interval |", "|---" * (3 + len(statistics)) + "|"]
    for scenario in result["scenarios"]:
        cells = []
        for statistic in statistics:
            value = scenario["coverage"][statistic]
            cell = f"{value:.1%} ({scenario['mean_width'][statistic]:.3f})"
            cells.append(cell if low <= value <= high else f"**{cell}**")
        lines.append(f"| {scenario['scenario']} | {scenario['datasets']} | " + " | ".join(cells)
                     + f" | {scenario['point_inside_interval']:.1%} |")
    return lines + ["", "In bold: outside the target. Each coverage share of 300 data sets carries about ±1.3 "
                        "points of simulation error.", ""]


def _audit_scaling_lines(result: dict) -> list[str]:
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured {result['measured_utc']}: "
             f"`audit_variants` alone on test splits of the default fraud data's shape, {result['variants']} "
             f"variants, {result['bootstrap_samples']} bootstrap resamples. An exponent of 1 is linear growth.", "",
             "| data rows | test rows audited | seconds | memory above start (MB) | time exponent | memory exponent |",
             "|---|---|---|---|---|---|"]
    for size in result["sizes"]:
        lines.append(f"| {size['data_rows']:,} | {size['test_rows']:,} | {size['seconds']:.1f} | "
                     f"{size['memory_above_start_mb']:,.0f} | {size.get('time_exponent', '')} | "
                     f"{size.get('memory_exponent', '')} |")
    return lines + [""]


def _shapley_error_lines(result: dict) -> list[str]:
    """Per case: the method the pipeline uses, the error of sampled values and what exact values cost."""
    settings = result["settings"]
    lines = [f"## {result['case']}", "", f"`{result['command']}` — measured {result['measured_utc']} "
             f"({result['machine']['cpus']} CPUs, load average {result['machine']['load_average'][0]:.1f}). "
             f"How far SHAP values are from exact Shapley values. Each case: a model the pipeline trained (quick: at "
             f"most 4,000 rows, 3 epochs; fraud-default-training: the pipeline's default, all rows and early "
             f"stopping), its float32 and int8 `.tflite` in LiteRT, {settings['rows']} test rows "
             f"({settings['window_rows']} windows), {settings['background_rows']} training rows as background, the "
             f"pipeline's players. Where exact values are affordable the pipeline computes them and the error is "
             f"that of two antithetic permutations against them; elsewhere the pipeline's sampled values are "
             f"compared with a {settings['reference_permutations']}-permutation reference (its own error in "
             f"brackets); text: the pipeline's Owen values against exact Shapley values, texts of at most "
             f"{settings['text_max_tokens']} tokens. Errors in probability units, largest of the two models; "
             f"the error depends on the model (more interactions, larger error), so a fully trained model can "
             f"differ.", "",
             "| case | players | pipeline's values | compared with | max \\|error\\| | mean \\|error\\| | "
             "mean \\|SHAP\\| | s per row, pipeline's method | s per row, the other | "
             "error the pipeline records |", "|---" * 10 + "|"]
    for name, case in result["cases"].items():
        errors = case["error"].values()
        worst = lambda key: max(e[key] for e in errors)  # noqa: E731
        seconds = case["seconds_per_row"]
        exact = case["pipeline_method"] == "exact"
        own_key = "exact" if exact else ("owen_pipeline" if case["modality"] == "text" else "sampled")
        other_key = next(k for k in next(iter(seconds.values())) if k != own_key)
        own = " / ".join(f"{v[own_key]:.3f}" for v in seconds.values())
        other = " / ".join(f"{v[other_key]:.3f}" for v in seconds.values())
        if exact:
            method, against = f"exact (2^{case['players']} coalitions)", "2 antithetic permutations vs exact"
            other = f"sampled {other}"
        elif case["modality"] == "text":
            method, against = "Owen values (PartitionExplainer)", "exact Shapley values"
            other = f"exact {other}"
        else:
            method, against = "2 antithetic permutations", f"{settings['reference_permutations']}-permutation reference"
            other = f"reference {other}"
        error = f"{worst('max_abs_error'):.4f}"
        mean_error = f"{worst('mean_abs_error'):.5f}"
        if any("reference_mean_abs_error" in e for e in errors):
            error += f" ({worst('reference_max_abs_error'):.4f})"
            mean_error += f" ({worst('reference_mean_abs_error'):.5f})"
        recorded = case.get("pipeline_sampling_error")
        recorded = (f"max {recorded['max_abs_error_vs_exact']:.4f}, mean {recorded['mean_abs_error_vs_exact']:.5f} "
                    f"({recorded['rows']} rows)" if recorded else ("none: exact" if exact else "not measured"))
        lines.append(f"| {name} | {case['players']} | {method} | {against} | {error} | {mean_error} | "
                     f"{worst('mean_abs_value'):.4f} | {own} | {other} | {recorded} |")
    lines += ["", "Seconds per explained row and model: float32 / int8. \"Error the pipeline records\": what the "
                  "explanation's own measurement (5 rows, as with the pipeline's default 100 explained rows, against "
                  "a 16-permutation reference, or exact values) put in "
                  "`settings.sampling_error` on the same rows, the figure the model card states."]
    return lines + [""]


def _seed_spread_lines(result: dict) -> list[str]:
    from benchmarks.seed_spread import table_lines

    return table_lines(result)


def _tabular_model_lines(result: dict) -> list[str]:
    from benchmarks.tabular_models import table_lines

    return table_lines(result)


# Results files that are not pipeline runs, by case, and the function that renders each.
def _runtime_agreement_lines(result: dict) -> list[str]:
    from benchmarks.runtime_agreement import lines  # it imports this module

    return lines(result)


_OWN_TABLES = {
    "shapley-error": _shapley_error_lines,
    "seed-spread": _seed_spread_lines,
    "tabular-models": _tabular_model_lines,
    "fraud-scaling": _scaling_lines,
    "training-throughput": _throughput_lines,
    "training-throughput-gpu": _throughput_lines,
    "interval-coverage": _coverage_lines,
    "audit-scaling": _audit_scaling_lines,
    "input-feed": _input_feed_lines,
    "sentiment-encoders": _encoder_lines,
    "sentiment-cnn-variants": _cnn_variant_lines,
    "pruning-learning-rate": _pruning_rate_lines,
    "dashboard": _dashboard_lines,
    "runtime-agreement": _runtime_agreement_lines,
}


def _deployment_lines(deployment: dict, headline: str) -> list[str]:
    targets = list(next(iter(deployment["variants"].values()))["fits"])
    lines = ["", f"Deployment (`deployment.json`), named target {', '.join(deployment['named_targets']) or 'none'}: "
                 f"**{deployment['ship_variant']} ships** ({deployment['choice_verdict']}): {deployment['explanation']}.",
             "", f"| variant | flash bytes | tflite-micro arena bytes | same decisions as LiteRT | {headline} on "
                 f"tflite-micro | {' | '.join(targets)} | validation | why not chosen |",
             "|---|---|---|---|---|" + "---|" * len(targets) + "---|---|"]
    for name, v in deployment["variants"].items():
        runs = v["micro_supported"]
        micro_quality = v.get(f"micro_{headline}")
        arena = f"{v['arena_bytes']:,}" if runs else "does not run"
        agreement = f"{v['agreement_with_litert']:.4f}" if runs else "—"
        quality = f"{micro_quality:.4f}" if runs and micro_quality is not None else "—"
        fits = " | ".join("fits" if v["fits"][t] else "no" for t in targets)
        why = (v["why_not_chosen"] or "chosen")[:160]
        lines.append(f"| {name} | {v['flash_bytes']:,} | {arena} | {agreement} | {quality} | {fits} | "
                     f"{v['validation_verdict']} | {why} |")
    unsupported = {name: v["first_unsupported"] for name, v in deployment["variants"].items() if not v["micro_supported"]}
    if unsupported:
        lines += ["", "Rejected by tflite-micro: " + "; ".join(f"{n}: {why}" for n, why in unsupported.items()) + "."]
    return lines


def write_table() -> Path:
    lines = ["# Benchmarks", "",
             "Generated by `python -m benchmarks.run` from `benchmarks/results/*.json`; do not edit by hand.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        if result["case"] in _OWN_TABLES:
            lines += _OWN_TABLES[result["case"]](result)
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
            lines += _explainer_lines(result["explainers"])
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
        if result.get("deployment"):
            lines += _deployment_lines(result["deployment"], headline)
        if result.get("repair"):
            lines += _repair_lines(result["repair"])
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
