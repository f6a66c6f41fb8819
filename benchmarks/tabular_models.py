"""Do the Keras tabular models hold their own against gradient boosting? (issue 19)

    python -m benchmarks.tabular_models                      # every tabular case, seeds 0, 1, 2
    python -m benchmarks.tabular_models --case fraud-default --seeds 0
    python -m benchmarks.tabular_models --jobs 2 --reuse     # two runs at a time; resume after a stop

For each tabular case (the default fraud data, and where ../shared/datasets holds them the
vehicle-insurance claims and AI4I 2020) and each seed, runs of `edgeaudit run` in a
subprocess, on the same split:
- the defaults as shipped ("searched"): the recipe chosen on validation by the model search (the
  default `--search-trials`), and the deep ensemble of it where the default trains one;
- where that default trained an ensemble, the same with one network (`--ensemble-members 1`),
  to show what the ensemble buys;
- the fixed recipe of earlier versions (`--search-trials 0 --ensemble-members 1`): what "today"
  meant before the search.
Each records the Keras float and int8 headline metric on the test split, and the baselines the
run fits on the same split and encoding (scikit-learn HistGradientBoosting and logistic
regression). Only the float and int8 variants are built, and the explanation and audit samples
are small: neither changes these figures. Results go to `benchmarks/results/tabular-models.json`.

Targets (issue 19): the searched float model at >= 0.95x HistGradientBoosting's PR-AUC on the
vehicle-insurance claims and on AI4I (mean over seeds), int8 within 0.01 of float, and no
default-data case worse than the fixed recipe (mean over seeds).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs" / "tabular-models"
CASES = ("fraud-default", "fraud-vehicle-claims", "maintenance-ai4i")
# searched: the defaults (trials, ensemble); "one network" runs only where that default trained an ensemble
RECIPES = {"searched": [], "one network": ["--ensemble-members", "1"],
           "fixed": ["--search-trials", "0", "--ensemble-members", "1"]}
SMALL_SAMPLES = ["--variants", "float32", "int8", "--explain-rows", "10", "--background-rows", "20",
                 "--local-examples", "1", "--bootstrap-samples", "50"]
RATIO_TARGET = 0.95
INT8_LIMIT = 0.01


def run_one(case: str, seed: int, recipe: str, reuse: bool = False) -> dict:
    """One run: the float and int8 headline metric, the baselines', and the recipe in force."""
    from benchmarks.run import CASES as RUN_CASES
    from benchmarks.run import _run_edgeaudit

    spec = RUN_CASES[case]
    out = RUNS / f"{case}-seed{seed}-{recipe.replace(' ', '-')}"
    finished = sorted(out.glob(f"{spec['domain']}/*/manifest.json")) if reuse else []
    if finished:   # resume: a finished run of this case, seed and recipe is read, not run again
        run_dir = finished[-1].parent
        wall = json.loads((run_dir / "manifest.json").read_text())["wall_seconds"]
    else:
        wall, _, run_dir = _run_edgeaudit(f"{case} seed {seed} {recipe}", spec["domain"],
                                          spec["arguments"] + ["--seed", str(seed)] + RECIPES[recipe] + SMALL_SAMPLES,
                                          out)
    read = lambda file: json.loads((run_dir / file).read_text())  # noqa: E731
    metrics, training = read("metrics.json"), read("training.json")
    headline = metrics["headline_metric"]
    baselines = metrics["baselines"]["models"]
    search = training.get("search") or {}
    return {"seed": seed, "recipe": recipe, "wall_seconds": round(wall, 1), "headline_metric": headline,
            "float": metrics["keras_float"]["quality"][headline],
            "int8": metrics["variants"]["int8"]["quality"][headline],
            "hist_gradient_boosting": baselines["hist_gradient_boosting"]["quality"][headline],
            "logistic_regression": baselines["logistic_regression"]["quality"][headline],
            "chosen": search.get("chosen"), "search_seconds": search.get("seconds"),
            "trials": [trial["val_pr_auc"] for trial in search.get("trials", [])],
            "ensemble": training.get("ensemble"),
            "int8_bytes": metrics["variants"]["int8"]["size"]["bytes"]}


def available_cases() -> list[str]:
    from benchmarks.run import CASES as RUN_CASES

    return [case for case in CASES if RUN_CASES[case]["data"] is None or Path(RUN_CASES[case]["data"]).exists()]


def measure(cases: list[str], seeds: list[int], jobs: int = 1, reuse: bool = False) -> dict:
    """Every case x seed x recipe, `jobs` runs at a time (each run is its own process)."""
    from concurrent.futures import ThreadPoolExecutor

    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    plan = [(case, seed, recipe) for case in cases for seed in seeds for recipe in ("searched", "fixed")]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(lambda item: run_one(*item, reuse=reuse), plan))
        # What the ensemble buys: the same defaults with one network, where the default trained more.
        ensembled = [(case, run["seed"], "one network") for (case, _, _), run in zip(plan, done)
                     if run["recipe"] == "searched" and (run["ensemble"] or {}).get("members", 1) > 1]
        plan += ensembled
        done += list(pool.map(lambda item: run_one(*item, reuse=reuse), ensembled))
    runs = {case: [run for (run_case, _, _), run in zip(plan, done) if run_case == case] for case in cases}
    result = {"case": "tabular-models", "measured_utc": started, "jobs": jobs,
              "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "seeds": seeds, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tabular-models.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _spread(values: list[float]) -> str:
    return f"{_mean(values):.4f} [{min(values):.4f}, {max(values):.4f}]"


def _ensemble_text(runs: list[dict]) -> str:
    ensembles = [run.get("ensemble") for run in runs if run.get("ensemble")]
    if not ensembles:
        return "none (one network)"
    members = sorted({ensemble["members"] for ensemble in ensembles})
    kept = sum(1 for ensemble in ensembles if ensemble["kept"])
    return f"{'/'.join(map(str, members))} members, kept in {kept} of {len(runs)} seeds"


def targets(result: dict) -> list[tuple[str, float, bool]]:
    """(target, measured, met) for every target the issue sets, over the cases measured."""
    checks = []
    for case, runs in result["runs"].items():
        searched = [run for run in runs if run["recipe"] == "searched"]
        fixed = [run for run in runs if run["recipe"] == "fixed"]
        if case != "fraud-default":
            ratio = _mean([run["float"] for run in searched]) / _mean([run["hist_gradient_boosting"] for run in searched])
            checks.append((f"{case}: searched float ≥ {RATIO_TARGET}× HistGradientBoosting", ratio,
                           ratio >= RATIO_TARGET))
        worst_drop = max(run["float"] - run["int8"] for run in searched)
        checks.append((f"{case}: int8 within {INT8_LIMIT} of float (worst seed)", worst_drop,
                       worst_drop <= INT8_LIMIT))
        if case == "fraud-default":
            change = _mean([run["float"] for run in searched]) - _mean([run["float"] for run in fixed])
            checks.append((f"{case}: searched float no worse than the fixed recipe (mean change)", change,
                           change >= 0.0))
    return checks


def table_lines(result: dict) -> list[str]:
    """The BENCHMARKS.md section (benchmarks/run.py renders it)."""
    seeds = ", ".join(str(seed) for seed in result["seeds"])
    lines = ["## tabular-models", "",
             f"`python -m benchmarks.tabular_models` — measured {result['measured_utc']} to {result['finished_utc']} "
             f"on {result['machine']['cpus']} CPUs, {result.get('jobs', 1)} run(s) at a time (search seconds are "
             f"wall seconds under that load). Seeds {seeds}; each cell is the mean [lowest, highest] over the "
             "seeds, of the headline metric on the test split. *Searched*: the defaults, the recipe chosen on "
             "validation by the model search (the default `--search-trials`) and the deep ensemble of it where the "
             "default trains one (`--ensemble-members`; members and how many seeds kept it in the last column); "
             "*one network*: the same with `--ensemble-members 1`, run where the default trained an ensemble; "
             "*fixed*: the recipe of earlier versions (`--search-trials 0 --ensemble-members 1`). The baselines are "
             "fitted by the searched runs, on the same split and encoding.",
             "", "| case | metric | Keras float, searched | Keras int8, searched | Keras float, one network | "
                 "Keras float, fixed | Keras int8, fixed | HistGradientBoosting | logistic regression | "
                 "searched float ÷ HistGBM | search seconds | ensemble |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case, runs in result["runs"].items():
        searched = [run for run in runs if run["recipe"] == "searched"]
        fixed = [run for run in runs if run["recipe"] == "fixed"]
        single = [run for run in runs if run["recipe"] == "one network"]
        ratio = _mean([r["float"] for r in searched]) / _mean([r["hist_gradient_boosting"] for r in searched])
        lines.append(
            f"| {case} | {runs[0]['headline_metric']} | {_spread([r['float'] for r in searched])} | "
            f"{_spread([r['int8'] for r in searched])} | "
            f"{_spread([r['float'] for r in single]) if single else 'same as searched'} | "
            f"{_spread([r['float'] for r in fixed])} | "
            f"{_spread([r['int8'] for r in fixed])} | {_spread([r['hist_gradient_boosting'] for r in searched])} | "
            f"{_spread([r['logistic_regression'] for r in searched])} | {ratio:.3f} | "
            f"{_mean([r['search_seconds'] or 0.0 for r in searched]):.0f} | {_ensemble_text(searched)} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value:.4f} | {'yes' if met else 'no'} |" for name, value, met in targets(result)]
    lines += ["", "Recipes chosen on validation, per seed:", ""]
    for case, runs in result["runs"].items():
        lines.append(f"- {case}: " + "; ".join(
            f"seed {run['seed']}: " + ", ".join(f"{k} {v}" for k, v in (run["chosen"] or {}).items())
            for run in runs if run["recipe"] == "searched"))
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=CASES, action="append", help="only these cases (default: every one present)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each is a process)")
    parser.add_argument("--reuse", action="store_true",
                        help="resume: read the finished runs already in benchmarks/runs/tabular-models")
    arguments = parser.parse_args()
    result = measure(arguments.case or available_cases(), arguments.seeds, arguments.jobs, arguments.reuse)
    for line in table_lines(result):
        print(line)


if __name__ == "__main__":
    main()
