"""Gate: does the variant chosen to ship respect the run's quality and fairness limits?

Three kinds of check, each on the shipped variant:
  * quality: the headline metric may drop at most `max_quality_drop` below the float model;
  * fairness: the equalized-odds difference per sensitive column stays under a limit;
  * compression: no between-group TPR/FPR gap widens by more than `max_gap_widening`
    against the float model, where "widens" means the paired-bootstrap interval of the
    change lies above zero. A point estimate alone can move by a whole group's worth of
    decisions when a group has few positives; requiring the interval keeps noise from
    failing runs while a real widening still does.

Fairness checks use the sensitive columns the user named. Their intersection is reported
in the audit but not gated: its cells are small, and their differences are mostly noise.
A failed gate still writes the whole report; the CLI exits with EXIT_GATE_FAILED.
"""

from __future__ import annotations

from pipeline.config import FLOAT_MODEL, GateThresholds
from pipeline.metrics import HIGHER_IS_BETTER


def apply_gate(*, thresholds: GateThresholds, ship_variant: str, headline_metric: str,
               qualities: dict[str, dict], audit: dict) -> dict:
    """Check the shipped variant; returns {"passed", "ship_variant", "checks": [...]}.

    qualities: variant -> binary_quality dict on the test split (FLOAT_MODEL included).
    audit:     the audit stage's result (summary, compression table, settings).
    """
    if ship_variant not in qualities:
        check = {"name": "shipped variant built", "passed": False, "value": None, "limit": None,
                 "explanation": f"the variant to ship, {ship_variant}, was not built (see compression.json)"}
        return {"passed": False, "ship_variant": ship_variant, "checks": [check]}
    columns = audit["settings"]["sensitive_columns"]
    checks = [_quality_check(thresholds, ship_variant, headline_metric, qualities)]
    checks += _equalized_odds_checks(thresholds, ship_variant, columns, audit)
    checks.append(_widening_check(thresholds, ship_variant, columns, audit))
    return {"passed": all(check["passed"] for check in checks), "ship_variant": ship_variant, "checks": checks}


def _quality_check(thresholds, ship_variant, headline_metric, qualities) -> dict:
    reference = qualities[FLOAT_MODEL].get(headline_metric)
    shipped = qualities[ship_variant].get(headline_metric)
    name = f"{headline_metric} drop"
    if reference is None or shipped is None:
        return {"name": name, "passed": False, "value": None, "limit": thresholds.max_quality_drop,
                "explanation": f"{headline_metric} is undefined on the test split (one class only?)"}
    drop = (reference - shipped) if HIGHER_IS_BETTER.get(headline_metric, True) else (shipped - reference)
    return {"name": name, "value": drop, "limit": thresholds.max_quality_drop,
            "passed": drop <= thresholds.max_quality_drop,
            "explanation": f"{ship_variant} {headline_metric} {shipped:.4f} vs float {reference:.4f}: "
                           f"drop {drop:+.4f} (limit {thresholds.max_quality_drop})"}


def _equalized_odds_checks(thresholds, ship_variant, columns, audit) -> list[dict]:
    differences = audit["summary"].get(ship_variant, {}).get("equalized_odds_difference", {})
    checks = []
    for column in columns:
        value = differences.get(column)
        shown = "undefined" if value is None else f"{value:.4f}"
        checks.append({
            "name": f"equalized odds difference by {column}", "value": value,
            "limit": thresholds.max_equalized_odds_difference,
            "passed": value is not None and value <= thresholds.max_equalized_odds_difference,
            "explanation": f"{ship_variant}: equalized odds difference by {column} is {shown} "
                           f"(limit {thresholds.max_equalized_odds_difference})"})
    return checks


def _widening_check(thresholds, ship_variant, columns, audit) -> dict:
    name = "group gap widening by compression"
    changes = []
    for column in columns:
        table = audit.get("compression", {}).get(ship_variant, {}).get(column, {})
        for metric in ("tpr", "fpr"):
            change = table.get(f"{metric}_gap_change") or {}
            if change.get("change") is not None:
                changes.append((change["change"], change.get("interval"), column, metric.upper()))
    if ship_variant == FLOAT_MODEL:
        changes = [(0.0, [0.0, 0.0], column, "TPR") for column in columns]
    if not changes:
        return {"name": name, "value": None, "limit": thresholds.max_gap_widening, "passed": False,
                "explanation": "compression's effect on group gaps could not be measured"}
    failing = [c for c in changes if c[0] > thresholds.max_gap_widening and c[1] and c[1][0] is not None
               and c[1][0] > 0]
    value, interval, column, metric = max(failing or changes, key=lambda c: c[0])
    shown = f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval and interval[0] is not None else ""
    verdict = ("beyond the limit, and the interval excludes zero" if failing else
               "within the limit" if value <= thresholds.max_gap_widening else
               "beyond the limit, but the interval includes zero: not distinguishable from noise")
    return {"name": name, "value": value, "limit": thresholds.max_gap_widening, "passed": not failing,
            "explanation": f"{ship_variant} changes the {metric} gap by {column} by {value:+.4f}{shown} vs float: "
                           f"{verdict} (limit {thresholds.max_gap_widening})"}
