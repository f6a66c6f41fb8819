"""Disparities between the groups of a partition: Fairlearn's differences and ratio, and the TPR / FPR gaps.

The point values of demographic parity and equalized odds are Fairlearn's own functions, on the
rows of the groups where they are meaningful (the measurable groups; for equalized odds those
with both classes, since Fairlearn would count an undefined TPR as 0). Their intervals and the
gaps' come from the groups' bootstrap replicates (bias-corrected, see intervals.py).
"""

from __future__ import annotations

import numpy as np
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)

from pipeline.metrics import finite_or_none
from pipeline.stages.audit.intervals import _bias_corrected, _gap, _ratio_estimate, _ratio_of_extremes
from pipeline.stages.audit.partitions import _Partition


def _disparity_groups(partition: _Partition, labels: np.ndarray) -> tuple[list[str], list[str], dict[str, str]]:
    """The groups that take part in each disparity: (measurable, with both classes, excluded -> why)."""
    measurable = partition.measurable_groups
    both_classes = [g for g in measurable
                    if 0 < labels[partition.rows[g]].sum() < partition.rows[g].size]
    excluded = dict(partition.unmeasurable)
    for g in measurable:
        if g not in both_classes:
            excluded[g] = ("one class only: left out of equalized odds"
                           " (and of the TPR or FPR gap it is undefined for)")
    return measurable, both_classes, excluded


def _partition_gaps(points, variants, replicates, measurable: list[str],
                    both_classes: list[str]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The gaps of a partition ("tpr", "fpr", and "eo", the larger of the two over the groups with both
    classes), each {"point": (variants,), "replicates": (B, variants)}, and the stacked selection rates.

    The replicates serve the paired changes and the bias-corrected intervals.
    """
    gaps = {metric: _stack_gap(points, variants, replicates, measurable, metric) for metric in ("tpr", "fpr")}
    eo_parts = [_stack_gap(points, variants, replicates, both_classes, m) for m in ("tpr", "fpr")]
    gaps["eo"] = {key: np.fmax(eo_parts[0][key], eo_parts[1][key]) for key in ("point", "replicates")}
    selection = _stack_metric(points, variants, replicates, measurable, "selection_rate")
    return gaps, selection


def _disparity_table(labels: np.ndarray, decisions: np.ndarray, partition: _Partition, v_index: int, *,
                     gaps: dict, selection: dict, measurable: list[str], both_classes: list[str],
                     excluded: dict[str, str]) -> dict:
    """One variant's disparities over one partition, each with its interval, and the groups used."""
    fair = _fairlearn_disparities(labels, decisions[:, v_index], partition, measurable, both_classes)
    sel_reps = selection["replicates"][:, :, v_index]
    return {
        "demographic_parity_difference": _bias_corrected(
            fair["demographic_parity_difference"], _gap(sel_reps) if len(measurable) >= 2 else None),
        "demographic_parity_ratio": _ratio_estimate(
            fair["demographic_parity_ratio"], _ratio_of_extremes(sel_reps) if len(measurable) >= 2 else None),
        "equalized_odds_difference": _bias_corrected(
            fair["equalized_odds_difference"],
            gaps["eo"]["replicates"][:, v_index] if len(both_classes) >= 2 else None),
        "tpr_gap": _bias_corrected(gaps["tpr"]["point"][v_index], gaps["tpr"]["replicates"][:, v_index]),
        "fpr_gap": _bias_corrected(gaps["fpr"]["point"][v_index], gaps["fpr"]["replicates"][:, v_index]),
        "groups_used": measurable,
        "groups_excluded": excluded,
    }


def _fairlearn_disparities(labels: np.ndarray, decisions: np.ndarray, partition: _Partition,
                           dp_groups: list[str], eo_groups: list[str]) -> dict[str, float | None]:
    """Fairlearn's disparity metrics on the rows of the groups they are meaningful for.

    Fairlearn is handed one row per distinct (group, label, decision) with its count as the
    sample weight: the same rates, so the same values, at a cost that no longer grows with
    the rows (on 76,800 rows its per-row work took three quarters of the audit's time).
    """
    result: dict[str, float | None] = {
        "demographic_parity_difference": None, "demographic_parity_ratio": None,
        "equalized_odds_difference": None,
    }
    if len(dp_groups) >= 2:
        features, y, d, weight = _compact(labels, decisions, partition, dp_groups)
        result["demographic_parity_difference"] = finite_or_none(demographic_parity_difference(
            y, d, sensitive_features=features, sample_weight=weight))
        with np.errstate(divide="ignore", invalid="ignore"):
            result["demographic_parity_ratio"] = finite_or_none(demographic_parity_ratio(
                y, d, sensitive_features=features, sample_weight=weight))
    if len(eo_groups) >= 2:
        features, y, d, weight = _compact(labels, decisions, partition, eo_groups)
        result["equalized_odds_difference"] = finite_or_none(equalized_odds_difference(
            y, d, sensitive_features=features, sample_weight=weight))
    return result


def _compact(labels: np.ndarray, decisions: np.ndarray, partition: _Partition, groups: list[str]):
    """(group, label, decision) combinations of the groups' rows and how many rows each has."""
    features, y, d, weight = [], [], [], []
    for group in groups:
        rows = partition.rows[group]
        counts = np.bincount(labels[rows] * 2 + decisions[rows], minlength=4)
        for code in np.flatnonzero(counts):
            features.append(group)
            y.append(code // 2)
            d.append(code % 2)
            weight.append(counts[code])
    return (np.asarray(features, dtype=object), np.asarray(y, dtype=np.int64), np.asarray(d, dtype=np.int64),
            np.asarray(weight, dtype=np.float64))


def _stack_metric(points, variants, replicates, groups, metric) -> dict[str, np.ndarray]:
    """Point values (groups, variants) and replicates (groups, B, variants) of one metric."""
    if not groups:
        empty = np.full((0, len(variants)), np.nan)
        return {"point": empty, "replicates": np.full((0, 1, len(variants)), np.nan)}
    point = np.concatenate([points[g][metric] for g in groups])
    reps = np.stack([replicates[g][metric] for g in groups])
    return {"point": point, "replicates": reps}


def _stack_gap(points, variants, replicates, groups, metric) -> dict[str, np.ndarray]:
    """Gap (max - min over groups) of one metric: point (variants,), replicates (B, variants)."""
    stacked = _stack_metric(points, variants, replicates, groups, metric)
    if not groups:
        return {"point": np.full(len(variants), np.nan), "replicates": np.full((1, len(variants)), np.nan)}
    return {"point": _gap(stacked["point"]), "replicates": _gap(stacked["replicates"])}
