"""Binary-classification quality metrics, shared by evaluation, audit and gate.

All functions take labels (0/1) and scores (probability of class 1); metrics that need
decisions take the threshold too. A metric that is undefined on the given rows (AUC with
one class present) is None, never NaN, so results stay valid JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as sk_metrics

from pipeline.config import THRESHOLD_RULES


@dataclass(frozen=True)
class Predictions:
    """A model's scores on some rows plus the decision threshold chosen for it."""

    scores: np.ndarray
    threshold: float

    @property
    def decisions(self) -> np.ndarray:
        return (np.asarray(self.scores) >= self.threshold).astype(np.int64)


def _both_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and 0 < int(labels.sum()) < labels.size


def choose_threshold(labels: np.ndarray, scores: np.ndarray, rule: str = "f1") -> float:
    """The threshold that maximises the rule's criterion (see THRESHOLD_RULES) on these rows.

    Candidates are the scores themselves (a row is positive when its score reaches the
    threshold). Ties go to the highest threshold (fewer alarms). Falls back to 0.5 when the
    rows hold one class only.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule {rule!r} is unknown, expected one of {', '.join(THRESHOLD_RULES)}")
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if not _both_classes(labels):
        return 0.5
    if rule == "f1":
        precision, recall, thresholds = sk_metrics.precision_recall_curve(labels, scores)
        criterion = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    else:
        false_positive_rate, true_positive_rate, thresholds = sk_metrics.roc_curve(
            labels, scores, drop_intermediate=False)
        # The first point is "nothing is positive" (threshold inf): not a usable threshold.
        false_positive_rate, true_positive_rate, thresholds = (
            false_positive_rate[1:], true_positive_rate[1:], thresholds[1:])
        if rule == "youden":
            criterion = true_positive_rate - false_positive_rate
        else:
            positives = int(labels.sum())
            negatives = labels.size - positives
            criterion = true_positive_rate * positives + (1.0 - false_positive_rate) * negatives
    best = np.flatnonzero(criterion == criterion.max())
    return float(thresholds[best].max())


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if not _both_classes(labels):
        return None
    return float(sk_metrics.roc_auc_score(labels, scores))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve, as average precision."""
    if not _both_classes(labels):
        return None
    return float(sk_metrics.average_precision_score(labels, scores))


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_false_positive_rate: float = 0.01) -> float | None:
    """Largest recall reachable while the false-positive rate stays ≤ the given rate."""
    if not _both_classes(labels):
        return None
    fpr, tpr, _ = sk_metrics.roc_curve(labels, scores)
    allowed = fpr <= max_false_positive_rate
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float | None:
    """Weighted mean |accuracy - confidence| over equal-width score bins (of P(class 1))."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.size == 0:
        return None
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(labels[in_bin].mean() - scores[in_bin].mean())
    return float(error)


def _ratio(numerator: int, denominator: int) -> float | None:
    return float(numerator / denominator) if denominator else None


def binary_quality(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Every quality metric the pipeline reports, as a JSON-able dict."""
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    decisions = (scores >= threshold).astype(np.int64)
    true_positive = int(((decisions == 1) & (labels == 1)).sum())
    false_positive = int(((decisions == 1) & (labels == 0)).sum())
    true_negative = int(((decisions == 0) & (labels == 0)).sum())
    false_negative = int(((decisions == 0) & (labels == 1)).sum())
    sensitivity = _ratio(true_positive, true_positive + false_negative)
    specificity = _ratio(true_negative, true_negative + false_positive)
    precision = _ratio(true_positive, true_positive + false_positive)
    f1 = (2 * precision * sensitivity / (precision + sensitivity)
          if precision and sensitivity else 0.0 if precision is not None and sensitivity is not None else None)
    balanced = (sensitivity + specificity) / 2 if sensitivity is not None and specificity is not None else None
    return {
        "rows": int(labels.size),
        "positives": int(labels.sum()),
        "threshold": float(threshold),
        "roc_auc": roc_auc(labels, scores),
        "pr_auc": pr_auc(labels, scores),
        "recall_at_1pct_fpr": recall_at_fpr(labels, scores, 0.01),
        "brier": float(np.mean((scores - labels) ** 2)) if labels.size else None,
        "expected_calibration_error": expected_calibration_error(labels, scores),
        "accuracy": _ratio(true_positive + true_negative, labels.size),
        "balanced_accuracy": balanced,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": f1,
        "selection_rate": _ratio(int(decisions.sum()), labels.size),
        "confusion": {"tp": true_positive, "fp": false_positive, "tn": true_negative, "fn": false_negative},
    }


# Metrics where larger is better; the gate and reports use this to orient "drops".
HIGHER_IS_BETTER = {
    "roc_auc": True, "pr_auc": True, "recall_at_1pct_fpr": True, "accuracy": True,
    "balanced_accuracy": True, "sensitivity": True, "specificity": True, "precision": True,
    "f1": True, "brier": False, "expected_calibration_error": False,
}


def finite_or_none(value) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
