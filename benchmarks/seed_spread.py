"""How far a default-data run's figures move from one seed to the next (issue 15).

    python -m benchmarks.seed_spread                        # every domain, seeds 0, 1, 2
    python -m benchmarks.seed_spread --domain imaging --seeds 0 1 2 3 4

A seeded CPU run reproduces to the last digit on the same kind of CPU (README,
"Reproducible runs"), but a different kind of CPU (AVX2 only against AVX-512), a different
thread count or another seed trains another model. This runs `edgeaudit run DOMAIN --seed S`
in a subprocess for each seed, on the default data, and records what the gate reads: the
float and int8 headline metric, int8's quality drop, its equalized-odds difference per
sensitive column and the gate's verdict. BENCHMARKS.md shows each as mean [lowest, highest].
Results go to `benchmarks/results/seed-spread.json`.
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
RUNS = ROOT / "benchmarks" / "runs" / "seed-spread"
DOMAINS = ("fraud", "sentiment", "maintenance", "imaging")


def run_seed(domain: str, seed: int) -> dict:
    """One default-data run: the figures the gate reads, and what is needed to reproduce it."""
    from benchmarks.run import _run_edgeaudit  # the benchmark's one way to run edgeaudit in a subprocess

    wall, _, run_dir = _run_edgeaudit(f"{domain} seed {seed}", domain, ["--seed", str(seed)],
                                      RUNS / f"{domain}-seed{seed}")
    read = lambda file: json.loads((run_dir / file).read_text())  # noqa: E731
    manifest, metrics, gate = read("manifest.json"), read("metrics.json"), read("gate.json")
    headline = metrics["headline_metric"]
    ship = manifest["ship_variant"]
    float_value = metrics["keras_float"]["quality"][headline]
    ship_value = metrics["variants"][ship]["quality"][headline]
    prefix = "equalized odds difference by "
    fairness = {check["name"][len(prefix):]: check["value"] for check in gate["checks"]
                if check["name"].startswith(prefix) and check["value"] is not None}
    return {
        "seed": seed,
        "wall_seconds": round(wall, 1),
        "headline_metric": headline,
        "ship_variant": ship,
        "float": float_value,
        "shipped": ship_value,
        "drop": float_value - ship_value,
        "equalized_odds_difference": fairness,
        "gate_passed": gate["passed"],
        "failed_checks": [check["name"] for check in gate["checks"] if not check["passed"]],
        "runtime": manifest["runtime"],
        "packages": {name: manifest["packages"].get(name) for name in ("tensorflow", "keras", "tf-keras")},
    }


def measure(domains: list[str], seeds: list[int]) -> dict:
    result = {
        "case": "seed-spread",
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "seeds": seeds,
        "domains": {domain: [run_seed(domain, seed) for seed in seeds] for domain in domains},
    }
    result["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "seed-spread.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _spread(values: list[float]) -> str:
    return f"{sum(values) / len(values):.4f} [{min(values):.4f}, {max(values):.4f}]"


def table_lines(result: dict) -> list[str]:
    """The BENCHMARKS.md section (benchmarks/run.py renders it)."""
    runs = [run for domain_runs in result["domains"].values() for run in domain_runs]
    runtime = runs[0]["runtime"] if runs else {}
    cpu = runtime.get("cpu") or {}
    lines = ["## seed-spread", "",
             f"`python -m benchmarks.seed_spread` — measured {result['measured_utc']} to {result['finished_utc']} on "
             f"{result['machine']['cpus']} CPUs ({cpu.get('model', 'CPU')}; {', '.join(cpu.get('features', []))}), "
             f"TensorFlow {runtime.get('intra_op_threads')} intra-op / {runtime.get('inter_op_threads')} inter-op "
             f"threads, op determinism {'on' if runtime.get('deterministic_ops') else 'off'}. Every default-data "
             f"run at seeds {', '.join(str(s) for s in result['seeds'])}; each cell is the mean [lowest, highest] "
             "over the seeds. A seed's run reproduces to the last digit on this kind of CPU; the spread is how "
             "far one seed's figure, as printed in the sections above, can sit from another's.", "",
             "| domain | metric | float | shipped | drop | equalized-odds difference of the shipped variant "
             "(gate limit 0.30) | gate passed |", "|---|---|---|---|---|---|---|"]
    for domain, domain_runs in result["domains"].items():
        columns = sorted({name for run in domain_runs for name in run["equalized_odds_difference"]})
        fairness = "; ".join(
            f"{name} {_spread([run['equalized_odds_difference'][name] for run in domain_runs])}"
            for name in columns if all(name in run["equalized_odds_difference"] for run in domain_runs))
        passed = sum(run["gate_passed"] for run in domain_runs)
        lines.append(f"| {domain} | {domain_runs[0]['headline_metric']} | {_spread([r['float'] for r in domain_runs])} "
                     f"| {domain_runs[0]['ship_variant']} {_spread([r['shipped'] for r in domain_runs])} | "
                     f"{_spread([r['drop'] for r in domain_runs])} | {fairness} | {passed} of {len(domain_runs)} |")
    lines += ["", "Per seed (float / shipped headline metric; the gate's failed checks):", ""]
    for domain, domain_runs in result["domains"].items():
        lines.append(f"- {domain}: " + "; ".join(
            f"seed {run['seed']} {run['float']:.4f} / {run['shipped']:.4f}, "
            + ("passed" if run["gate_passed"] else "failed " + ", ".join(run["failed_checks"]))
            for run in domain_runs))
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=DOMAINS, action="append", help="only these domains (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    arguments = parser.parse_args()
    result = measure(arguments.domain or list(DOMAINS), arguments.seeds)
    for line in table_lines(result):
        print(line)


if __name__ == "__main__":
    main()
