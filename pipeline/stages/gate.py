"""Gate: does the variant chosen to ship respect the run's quality and fairness limits?

A failed gate still writes the whole report; the CLI then exits with EXIT_GATE_FAILED,
distinct from a crash (1) and from bad input (2).
"""

from __future__ import annotations

from pipeline.config import FLOAT_MODEL, GateThresholds
from pipeline.metrics import HIGHER_IS_BETTER


def apply_gate(
    *,
    thresholds: GateThresholds,
    ship_variant: str,
    headline_metric: str,
    qualities: dict[str, dict],
    audit_summary: dict[str, dict],
) -> dict:
    """Check the shipped variant; returns {"passed", "ship_variant", "checks": [...]}.

    qualities:     variant -> binary_quality dict on the test split (FLOAT_MODEL included).
    audit_summary: variant -> {"equalized_odds_difference": {column: value},
                               "max_gap_widening": float, ...} from the audit stage.
    """
    checks: list[dict] = []
    if ship_variant not in qualities:
        checks.append({"name": "shipped variant built", "passed": False, "value": None, "limit": None,
                       "explanation": f"the variant to ship, {ship_variant}, was not built (see compression.json)"})
        return {"passed": False, "ship_variant": ship_variant, "checks": checks}

    reference = qualities[FLOAT_MODEL].get(headline_metric)
    shipped = qualities[ship_variant].get(headline_metric)
    if reference is None or shipped is None:
        checks.append({"name": f"{headline_metric} drop", "passed": False, "value": None,
                       "limit": thresholds.max_quality_drop,
                       "explanation": f"{headline_metric} is undefined on the test split (one class only?)"})
    else:
        drop = (reference - shipped) if HIGHER_IS_BETTER.get(headline_metric, True) else (shipped - reference)
        checks.append({
            "name": f"{headline_metric} drop", "value": drop, "limit": thresholds.max_quality_drop,
            "passed": drop <= thresholds.max_quality_drop,
            "explanation": f"{ship_variant} {headline_metric} {shipped:.4f} vs float {reference:.4f}: "
                           f"drop {drop:+.4f} (limit {thresholds.max_quality_drop})",
        })

    summary = audit_summary.get(ship_variant, {})
    for column, value in summary.get("equalized_odds_difference", {}).items():
        passed = value is not None and value <= thresholds.max_equalized_odds_difference
        shown = "undefined" if value is None else f"{value:.4f}"
        checks.append({
            "name": f"equalized odds difference by {column}", "value": value,
            "limit": thresholds.max_equalized_odds_difference, "passed": passed,
            "explanation": f"{ship_variant}: equalized odds difference by {column} is {shown} "
                           f"(limit {thresholds.max_equalized_odds_difference})",
        })
    widening = summary.get("max_gap_widening")
    checks.append({
        "name": "group gap widening by compression", "value": widening,
        "limit": thresholds.max_gap_widening,
        "passed": widening is not None and widening <= thresholds.max_gap_widening,
        "explanation": ("compression's effect on group gaps could not be measured" if widening is None else
                        f"{ship_variant} widens the largest TPR/FPR gap between groups by {widening:+.4f} "
                        f"vs float (limit {thresholds.max_gap_widening})"),
    })
    return {"passed": all(check["passed"] for check in checks), "ship_variant": ship_variant, "checks": checks}
