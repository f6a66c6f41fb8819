"""Do the audit's 95 % intervals cover? Simulated data sets from a model whose group rates are known.

    python -m benchmarks.interval_coverage                  # 400 data sets per scenario (a few minutes)
    python -m benchmarks.interval_coverage --datasets 100   # quicker, coarser

Each data set is drawn from a latent-score model with three groups: a row's score is
mu_label + group shift + unit effect + noise, the reference model decides score > 0, and a
"compressed" variant adds a group-dependent shift and its own small noise to the same score
(so its decisions are paired with the reference's, as a quantized model's are). Every true
rate is a normal probability, so the truths are exact: each group's TPR, the equalized-odds
gap (the larger of the TPR and FPR max - min gaps), each group's paired TPR change, the
change of the TPR gap, and each group's flip rate (the share of rows whose decision the variant
changed: a bivariate-normal probability, checked on the flip ledger's `flip_rates`). `audit_variants` (the pipeline's own audit) is run on every data set
and each reported 95 % interval is checked against the truth.

Scenarios: independent rows; rows in units of 30 that share a unit effect (a machine's
windows, a customer's transactions), audited by whole units as the pipeline does when the
data has units; and the same clustered data audited row by row (what the pipeline did
before issue 15), to show the failure the unit bootstrap removes.

Writes benchmarks/results/interval-coverage.json; BENCHMARKS.md renders it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import multivariate_normal, norm

from pipeline.config import FLOAT_MODEL
from pipeline.metrics import Predictions
from pipeline.stages.audit import audit_variants
from pipeline.stages.audit.flips import flip_rates

RESULTS = Path(__file__).resolve().parent / "results"
VARIANT = "int8"
TARGET = (0.93, 0.97)


@dataclass(frozen=True)
class Scenario:
    name: str
    rows_per_group: int
    prevalence: float
    unit_rows: int          # rows per unit (1: independent rows)
    unit_sd: float          # standard deviation of the unit effect
    resample_units: bool    # whether the audit is told the units
    group_shift: tuple[float, ...] = (-0.25, 0.0, 0.3)
    variant_shift: tuple[float, ...] = (0.0, -0.15, 0.05)
    variant_noise: float = 0.3
    mu_positive: float = 0.5
    mu_negative: float = -2.0
    noise_sd: float = 1.0


SCENARIOS = (
    Scenario("independent rows", rows_per_group=1500, prevalence=0.05, unit_rows=1, unit_sd=0.0,
             resample_units=False),
    Scenario("independent rows, few positives (about 15 a group)", rows_per_group=500, prevalence=0.03,
             unit_rows=1, unit_sd=0.0, resample_units=False),
    Scenario("clustered, resampled by unit", rows_per_group=900, prevalence=0.2, unit_rows=30, unit_sd=1.0,
             resample_units=True),
    Scenario("clustered, resampled by row (wrong)", rows_per_group=900, prevalence=0.2, unit_rows=30,
             unit_sd=1.0, resample_units=False),
)


def truths(scenario: Scenario) -> dict[str, np.ndarray | float]:
    """Exact population values of every statistic checked."""
    shift = np.asarray(scenario.group_shift)
    delta = np.asarray(scenario.variant_shift)
    total = np.hypot(scenario.noise_sd, scenario.unit_sd)
    total_variant = np.sqrt(total ** 2 + scenario.variant_noise ** 2)
    tpr = norm.cdf((scenario.mu_positive + shift) / total)
    fpr = norm.cdf((scenario.mu_negative + shift) / total)
    tpr_variant = norm.cdf((scenario.mu_positive + shift + delta) / total_variant)
    gap = lambda values: float(values.max() - values.min())  # noqa: E731
    return {"tpr": tpr, "equalized_odds": max(gap(tpr), gap(fpr)), "tpr_change": tpr_variant - tpr,
            "tpr_gap_change": gap(tpr_variant) - gap(tpr), "flip_rate": _flip_rates(scenario, total, total_variant)}


def _flip_rates(scenario: Scenario, total: float, total_variant: float) -> np.ndarray:
    """Each group's probability that the two decisions differ: P(s > 0) + P(t > 0) - 2 P(s > 0, t > 0) with
    s the reference's score and t = s + shift + noise the variant's (jointly normal, covariance total²)."""
    rates = []
    for shift, delta in zip(scenario.group_shift, scenario.variant_shift):
        rate = 0.0
        for mean, share in ((scenario.mu_positive, scenario.prevalence), (scenario.mu_negative, 1 - scenario.prevalence)):
            m_s, m_t = mean + shift, mean + shift + delta
            both_below = multivariate_normal(mean=[m_s, m_t], cov=[[total ** 2, total ** 2],
                                                                    [total ** 2, total_variant ** 2]]).cdf([0.0, 0.0])
            below_s, below_t = norm.cdf(-m_s / total), norm.cdf(-m_t / total_variant)
            rate += share * (below_s + below_t - 2 * both_below)
        rates.append(rate)
    return np.asarray(rates)


def draw(scenario: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame, dict, np.ndarray]:
    """One data set: labels, groups, the two variants' predictions, and each row's unit."""
    labels, groups, scores, variant_scores, units = [], [], [], [], []
    for index, shift in enumerate(scenario.group_shift):
        n_units = scenario.rows_per_group // scenario.unit_rows
        unit = np.repeat(np.arange(n_units), scenario.unit_rows) + index * 100_000
        effect = np.repeat(rng.normal(0.0, scenario.unit_sd, n_units), scenario.unit_rows)
        label = (rng.random(unit.size) < scenario.prevalence).astype(np.int64)
        score = (np.where(label == 1, scenario.mu_positive, scenario.mu_negative) + shift + effect
                 + rng.normal(0.0, scenario.noise_sd, unit.size))
        labels.append(label)
        groups.append(np.full(unit.size, f"g{index}"))
        scores.append(score)
        variant_scores.append(score + scenario.variant_shift[index] + rng.normal(0.0, scenario.variant_noise, unit.size))
        units.append(unit)
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    predictions = {FLOAT_MODEL: Predictions(sigmoid(np.concatenate(scores)), 0.5),
                   VARIANT: Predictions(sigmoid(np.concatenate(variant_scores)), 0.5)}
    return (np.concatenate(labels), pd.DataFrame({"group": np.concatenate(groups)}), predictions,
            np.concatenate(units).astype(str))


def _inside(interval, truth: float) -> bool | None:
    if interval is None:
        return None
    return bool(interval[0] - 1e-12 <= truth <= interval[1] + 1e-12)


def coverage(scenario: Scenario, datasets: int, *, seed: int = 0, bootstrap_samples: int = 200) -> dict:
    """Share of 95 % intervals that contain the truth, per statistic, over `datasets` draws."""
    truth = truths(scenario)
    rng = np.random.default_rng(seed)
    hits: dict[str, list[bool]] = {"group_tpr": [], "equalized_odds": [], "paired_tpr_change": [],
                                   "tpr_gap_change": [], "group_flip_rate": []}
    widths: dict[str, list[float]] = {key: [] for key in hits}
    contains_point: list[bool] = []
    started = time.perf_counter()
    for index in range(datasets):
        labels, groups, predictions, units = draw(scenario, rng)
        audit = audit_variants(labels=labels, groups=groups, predictions=predictions, seed=index,
                               bootstrap_samples=bootstrap_samples, min_group_size=20,
                               clusters=units if scenario.resample_units else None)
        flips = flip_rates(labels=labels, groups=groups, predictions=predictions, seed=index,
                           bootstrap_samples=bootstrap_samples, min_group_size=20,
                           clusters=units if scenario.resample_units else None)["variants"][VARIANT]
        checked = []
        for group_index in range(len(scenario.group_shift)):
            cell = audit["by_group"][FLOAT_MODEL]["group"]["groups"][f"g{group_index}"]["metrics"]["tpr"]
            checked.append(("group_tpr", cell, truth["tpr"][group_index]))
            change = audit["compression"][VARIANT]["group"]["groups"][f"g{group_index}"]["changes"]["tpr"]
            checked.append(("paired_tpr_change", {"value": change["change"], "interval": change["interval"]},
                            truth["tpr_change"][group_index]))
            checked.append(("group_flip_rate", flips["by_group"]["group"][f"g{group_index}"]["rate"],
                            truth["flip_rate"][group_index]))
        eo = audit["disparities"][FLOAT_MODEL]["group"]["equalized_odds_difference"]
        checked.append(("equalized_odds", eo, truth["equalized_odds"]))
        gap_change = audit["compression"][VARIANT]["group"]["tpr_gap_change"]
        checked.append(("tpr_gap_change", {"value": gap_change["change"], "interval": gap_change["interval"]},
                        truth["tpr_gap_change"]))
        for name, cell, true_value in checked:
            inside = _inside(cell["interval"], float(true_value))
            if inside is None:
                continue
            hits[name].append(inside)
            widths[name].append(cell["interval"][1] - cell["interval"][0])
            contains_point.append(bool(_inside(cell["interval"], cell["value"])))
    return {
        "scenario": scenario.name,
        "settings": {key: value for key, value in scenario.__dict__.items() if key != "name"},
        "datasets": datasets,
        "bootstrap_samples": bootstrap_samples,
        "truth": {key: (np.round(value, 4).tolist() if isinstance(value, np.ndarray) else round(value, 4))
                  for key, value in truth.items()},
        "coverage": {key: round(float(np.mean(value)), 4) for key, value in hits.items()},
        "intervals": {key: len(value) for key, value in hits.items()},
        "mean_width": {key: round(float(np.mean(value)), 4) for key, value in widths.items()},
        "point_inside_interval": round(float(np.mean(contains_point)), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=400, help="simulated data sets per scenario")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    results = []
    for scenario in SCENARIOS:
        result = coverage(scenario, arguments.datasets, seed=arguments.seed)
        results.append(result)
        shown = ", ".join(f"{key} {value:.1%}" for key, value in result["coverage"].items())
        print(f"{scenario.name:40s} {shown}  (point inside its interval: {result['point_inside_interval']:.1%}; "
              f"{result['seconds']:.0f} s)", flush=True)
    output = {"case": "interval-coverage",
              "command": f"python -m benchmarks.interval_coverage --datasets {arguments.datasets} --seed {arguments.seed}",
              "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "target": list(TARGET), "scenarios": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "interval-coverage.json"
    path.write_text(json.dumps(output, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
