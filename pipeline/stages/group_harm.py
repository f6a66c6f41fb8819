"""How much a compressed model moves each group's TPR and FPR against the float model, on the validation split.

Both repairs of int8 in the compression child judge a candidate model this way: the calibration-set
audit (which rows int8 is calibrated on) and selective int8 (which layers stay in float). Each
candidate gets its own threshold, chosen on the validation split by the run's rule, as a shipped
variant does; its decisions are compared with the float Keras model's, group by group, for every
sensitive column. The worst group is the one with the largest |change| of TPR or FPR, among the groups with
enough positives (for TPR) or negatives (for FPR) to be judged: the gate's --min-positives-per-group.

Pure functions and a dataclass: no TensorFlow, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.metrics import Predictions, choose_threshold


# The worst change where no group is measurable.
NO_GROUP = {"column": None, "group": None, "metric": None, "change": 0.0, "rows": 0}


@dataclass(frozen=True)
class HarmTarget:
    """What the compression child judges candidates against: the validation split's groups, the float model's
    decisions there, and the gate's limit on a group's change."""

    groups: dict[str, np.ndarray]        # sensitive column -> group name of every validation row
    reference_decisions: np.ndarray      # the float Keras model's validation decisions (0/1)
    max_change: float                    # the gate's limit (GateThresholds.max_gap_widening)
    threshold_rule: str = "f1"
    min_group_size: int = 20
    # Fewer positives than this in a group and its TPR change is not judged (negatives: its FPR change): the
    # gate's --min-positives-per-group, under which one example moves a rate by more than the limit.
    min_positives: int = 20


def group_changes(labels: np.ndarray, groups: dict[str, np.ndarray], reference: np.ndarray, decisions: np.ndarray,
                  min_group_size: int, min_positives: int = 1) -> list[dict]:
    """Every measurable group's TPR and FPR change (variant - reference), largest |change| first.

    A group is measurable with at least `min_group_size` rows; its TPR needs `min_positives` positives, its
    FPR as many negatives."""
    labels = np.asarray(labels).astype(np.int64)
    changes = []
    for column, values in groups.items():
        values = np.asarray(values).astype(str)
        for group in sorted(set(values)):
            rows = values == group
            if rows.sum() < min_group_size:
                continue
            for metric, wanted in (("tpr", 1), ("fpr", 0)):
                mask = rows & (labels == wanted)
                if mask.sum() < max(min_positives, 1):
                    continue
                change = float(decisions[mask].mean() - reference[mask].mean())
                changes.append({"column": str(column), "group": str(group), "metric": metric, "change": change,
                                "rows": int(mask.sum())})
    changes.sort(key=lambda item: -abs(item["change"]))
    return changes


def judge(scores: np.ndarray, labels: np.ndarray, target: HarmTarget) -> dict:
    """A candidate's validation scores judged: its threshold, every group's change and the worst one."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    threshold = choose_threshold(labels, scores, target.threshold_rule)
    decisions = Predictions(scores, threshold).decisions
    changes = group_changes(labels, target.groups, target.reference_decisions, decisions, target.min_group_size,
                            target.min_positives)
    return {"worst": changes[0] if changes else NO_GROUP, "threshold": threshold, "changes": changes}


def describe(worst: dict) -> str:
    """"TPR -0.120 in Sex = F", or a zero change where no group is measurable."""
    if worst.get("column") is None:
        return "0 (no measurable group)"
    return f"{worst['metric'].upper()} {worst['change']:+.3f} in {worst['column']} = {worst['group']}"
