"""Gate: does the variant chosen to ship respect the run's quality and fairness limits?

Three kinds of check, each on the shipped variant:
  * quality: the headline metric may drop at most `max_quality_drop` below the float model;
  * fairness: the equalized-odds difference per sensitive column stays under a limit. Judged
    on its 95 % interval, not its point value alone: "pass" when the whole interval lies at
    or under the limit, "fail" when it lies above, and "inconclusive" when it straddles the
    limit or a group has fewer than `min_positives_per_group` positives (or negatives). An
    inconclusive check says how many more examples would settle it, and counts as the user
    chose (`inconclusive`: "fail" by default, or "pass");
  * compression: no between-group TPR/FPR gap widens by more than `max_gap_widening`
    against the float model, where "widens" means the paired-bootstrap interval of the
    change lies above zero. A point estimate alone can move by a whole group's worth of
    decisions when a group has few positives; requiring the interval keeps noise from
    failing runs while a real widening still does.

Fairness checks use the sensitive columns the user named. Their intersection is reported
in the audit but not gated: its cells are small, and their differences are mostly noise.
A failed gate still writes the whole report; the CLI exits with EXIT_GATE_FAILED.

Every check and the gate carry a `verdict` ("pass", "fail" or "inconclusive") and `passed`
(the verdict as it counts: an inconclusive one per the policy).
"""

from __future__ import annotations

import math

from pipeline.config import FLOAT_MODEL, GateThresholds

VERDICTS = ("pass", "fail", "inconclusive")


def apply_gate(*, thresholds: GateThresholds, ship_variant: str, headline_metric: str,
               qualities: dict[str, dict], audit: dict, extra_checks: list[dict] = (), split: str = "test",
               runtime: str | None = None) -> dict:
    """Check the shipped variant; returns {"verdict", "passed", "ship_variant", "checks": [...], policy}.

    qualities:    variant -> binary_quality dict on `split` (FLOAT_MODEL included).
    audit:        the audit stage's result (summary, compression table, settings).
    extra_checks: checks made elsewhere, each with name, verdict and explanation (the device fit and
                  the choice on validation, pipeline.stages.deploy.choice_checks).
    split:        the split the values come from ("test"; "validation" when choosing the variant to ship).
    runtime:      the runtime whose outputs the shipped variant's values come from, when not LiteRT
                  ("tflite-micro" for a named microcontroller target), named in the explanations.
    The same function judges every candidate on the validation split, given that split's values.
    """
    policy = {"inconclusive_counts_as": thresholds.inconclusive,
              "min_positives_per_group": thresholds.min_positives_per_group}
    if ship_variant not in qualities:
        check = {"name": "shipped variant built", "verdict": "fail", "passed": False, "value": None, "limit": None,
                 "explanation": f"the variant to ship, {ship_variant}, was not built (see compression.json)"}
        extra = [{**c, "passed": counts_as_passed(c.get("verdict", "fail"), thresholds.inconclusive)}
                 for c in extra_checks]
        return {"verdict": "fail", "passed": False, "ship_variant": ship_variant, "checks": [check, *extra], **policy}
    columns = audit["settings"]["sensitive_columns"]
    checks = [_quality_check(thresholds, ship_variant, headline_metric, qualities, split, runtime)]
    checks += _equalized_odds_checks(thresholds, ship_variant, columns, audit, split)
    checks.append(_widening_check(thresholds, ship_variant, columns, audit))
    checks += [dict(check) for check in extra_checks]
    for check in checks:
        if "verdict" not in check:
            check["verdict"] = "pass" if check["passed"] else "fail"
        check["passed"] = counts_as_passed(check["verdict"], thresholds.inconclusive)
    verdicts = {check["verdict"] for check in checks}
    verdict = "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    return {"verdict": verdict, "passed": counts_as_passed(verdict, thresholds.inconclusive),
            "ship_variant": ship_variant, "checks": checks, **policy}


def counts_as_passed(verdict: str, inconclusive: str) -> bool:
    return verdict == "pass" or (verdict == "inconclusive" and inconclusive == "pass")


def verdict_of(record: dict) -> str:
    """A gate's or a check's verdict; records written before verdicts existed: from `passed`."""
    verdict = record.get("verdict")
    passed = record.get("passed") is True  # a string such as "false" is not a pass
    if verdict == "pass":
        return "pass" if passed else "fail"  # the two disagree: a tampered or broken record
    if verdict in VERDICTS:
        return verdict
    return "pass" if passed else "fail"


def verdict_label(record: dict, *, gate: bool = False) -> str:
    """How a verdict is shown: pass / FAIL / INCONCLUSIVE (counted as ...); for a gate PASSED / FAILED / ..."""
    verdict = verdict_of(record)
    if verdict == "inconclusive":
        counted = "passed" if record.get("passed") is True else "failed"
        return f"INCONCLUSIVE (counted as {counted})"
    if gate:
        return "PASSED" if verdict == "pass" else "FAILED"
    return "pass" if verdict == "pass" else "FAIL"


def _quality_check(thresholds, ship_variant, headline_metric, qualities, split: str = "test",
                   runtime: str | None = None) -> dict:
    from pipeline.metrics import HIGHER_IS_BETTER  # scikit-learn: not for readers of verdicts (the dashboard)

    reference = qualities[FLOAT_MODEL].get(headline_metric)
    shipped = qualities[ship_variant].get(headline_metric)
    name = f"{headline_metric} drop"
    if reference is None or shipped is None:
        return {"name": name, "passed": False, "value": None, "limit": thresholds.max_quality_drop,
                "explanation": f"{headline_metric} is undefined on the {split} split (one class only?)"}
    drop = (reference - shipped) if HIGHER_IS_BETTER.get(headline_metric, True) else (shipped - reference)
    return {"name": name, "value": drop, "limit": thresholds.max_quality_drop,
            "passed": drop <= thresholds.max_quality_drop,
            "explanation": f"{ship_variant} {headline_metric} {shipped:.4f}{f' (in {runtime})' if runtime else ''} "
                           f"vs float {reference:.4f}: "
                           f"drop {drop:+.4f} (limit {thresholds.max_quality_drop})"}


def _equalized_odds_checks(thresholds, ship_variant, columns, audit, split: str = "test") -> list[dict]:
    limit = thresholds.max_equalized_odds_difference
    checks = []
    for column in columns:
        estimate = audit.get("disparities", {}).get(ship_variant, {}).get(column, {}).get(
            "equalized_odds_difference") or {}
        value = estimate.get("value")
        interval = estimate.get("interval")
        name = f"equalized odds difference by {column}"
        check = {"name": name, "value": value, "interval": interval, "limit": limit}
        if value is None:
            checks.append({**check, "verdict": "fail", "passed": False,
                           "explanation": f"{ship_variant}: equalized odds difference by {column} is undefined "
                                          f"(fewer than two groups with both classes; limit {limit})"})
            continue
        shown = f"{value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")
        lead = f"{ship_variant}: equalized odds difference by {column} is {shown} (limit {limit})"
        scarce = _scarce_groups(audit, ship_variant, column, thresholds.min_positives_per_group)
        if scarce:
            shortfall = "; ".join(f"{group}: {count} {kind if count != 1 else kind[:-1]}, "
                                  f"{thresholds.min_positives_per_group - count} more needed"
                                  for group, kind, count in scarce)
            checks.append({**check, "verdict": "inconclusive", "more_examples": {
                group: {kind: thresholds.min_positives_per_group - count} for group, kind, count in scarce},
                "explanation": f"{lead}: inconclusive, too few examples to judge "
                               f"(at least {thresholds.min_positives_per_group} per group): {shortfall}"})
        elif interval is None or interval[0] <= limit < interval[1]:
            factor = _growth_to_settle(value, interval, limit)
            rows = _rows_judged(audit, ship_variant, column)
            more = ("no interval could be computed" if interval is None else
                    "no amount of data settles a value this close to the limit" if factor is None else
                    f"about {math.ceil(rows * (factor - 1)):,} more {split} rows like these "
                    f"({factor:.1f} times the {rows:,} here) would settle it, if the value held")
            checks.append({**check, "verdict": "inconclusive",
                           "more_examples": None if factor is None else {"rows": math.ceil(rows * (factor - 1))},
                           "explanation": f"{lead}: inconclusive, the interval straddles the limit; {more}"})
        else:
            verdict = "pass" if interval[1] <= limit else "fail"
            checks.append({**check, "verdict": verdict,
                           "explanation": f"{lead}: {'the whole interval is within' if verdict == 'pass' else 'the whole interval is beyond'} the limit"})
    return checks


def _scarce_groups(audit, ship_variant, column, minimum) -> list[tuple[str, str, int]]:
    """(group, "positives" or "negatives", count) of the equalized-odds groups below the minimum."""
    used = audit["disparities"][ship_variant][column].get("groups_used") or []
    excluded = audit["disparities"][ship_variant][column].get("groups_excluded") or {}
    groups = audit["by_group"][ship_variant][column]["groups"]
    scarce = []
    for group in used:
        if group in excluded or not groups.get(group, {}).get("measurable"):
            continue
        positives = int(groups[group]["metrics"]["positives"]["value"])
        negatives = int(groups[group]["count"]) - positives
        for kind, count in (("positives", positives), ("negatives", negatives)):
            if count < minimum:
                scarce.append((group, kind, count))
    return scarce


def _rows_judged(audit, ship_variant, column) -> int:
    used = audit["disparities"][ship_variant][column].get("groups_used") or []
    groups = audit["by_group"][ship_variant][column]["groups"]
    return int(sum(groups[group]["count"] for group in used if group in groups))


def _growth_to_settle(value: float, interval: list[float] | None, limit: float) -> float | None:
    """How many times the data would make the interval clear the limit (a width shrinks as 1/sqrt(n))."""
    if interval is None or value == limit:
        return None
    half = (value - interval[0]) if value > limit else (interval[1] - value)
    distance = abs(value - limit)
    return max((half / distance) ** 2, 1.0)


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


MITIGATION_WORSE_MARGIN = 0.01


def mitigation_made_worse(mitigation: dict) -> list[str]:
    """The columns whose equalized-odds difference on the test split is more than
    MITIGATION_WORSE_MARGIN higher after mitigation than before: thresholds fitted on the
    validation split that did not carry over. Read from the record when it has `made_worse`
    (written since mitigation.json carries it), computed from before/after otherwise."""
    if isinstance(mitigation.get("made_worse"), list):
        return [str(column) for column in mitigation["made_worse"]]

    def value(cell):
        return cell.get("value") if isinstance(cell, dict) else cell

    before = (mitigation.get("before") or {}).get("disparities") or {}
    after = (mitigation.get("after") or {}).get("disparities") or {}
    worse = []
    for column, values in before.items():
        was = value((values or {}).get("equalized_odds_difference"))
        now = value((after.get(column) or {}).get("equalized_odds_difference"))
        if isinstance(was, (int, float)) and isinstance(now, (int, float)) and now > was + MITIGATION_WORSE_MARGIN:
            worse.append(str(column))
    return worse
