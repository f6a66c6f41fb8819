"""Mitigation of the float model with Fairlearn's ThresholdOptimizer, reported before and after.

ThresholdOptimizer is fitted on the validation split (prefit: the model is not retrained; its
scores are wrapped in a tiny sklearn estimator) and applied to the test split; both sets of
decisions are then reported the same way: overall quality, per-column disparities (Fairlearn's
functions) and per-group TPR / FPR over every sensitive column and the intersection.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline.metrics import choose_threshold, finite_or_none
from pipeline.stages.audit.json_values import _json_safe
from pipeline.stages.audit.partitions import _sensitive_values, intersection_name
from pipeline.stages.gate import MITIGATION_WORSE_MARGIN, mitigation_made_worse


class _ScoreAsProbability(ClassifierMixin, BaseEstimator):
    """A "fitted" classifier whose input X is one column holding the model's score.

    Lets ThresholdOptimizer(prefit=True) post-process precomputed scores without the
    Keras model: predict_proba(X) = [[1 - x, x]].
    """

    def fit(self, X, y=None):  # noqa: N803 (sklearn's spelling)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X):  # noqa: N803
        x = np.asarray(X, dtype=np.float64).reshape(-1)
        return np.column_stack([1.0 - x, x])

    def predict(self, X):  # noqa: N803
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def _decision_rates(y: np.ndarray, d: np.ndarray) -> dict:
    """Count, positives, TPR, FPR (None where undefined) and selection rate of 0/1 decisions `d` on labels `y`."""
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    tp, fp = int((d & y).sum()), int((d & (1 - y)).sum())
    tpr = tp / positives if positives else None
    fpr = fp / negatives if negatives else None
    return {"count": int(y.size), "positives": positives, "tpr": tpr, "fpr": fpr,
            "selection_rate": float(d.mean()) if y.size else None}


def _decision_report(labels: np.ndarray, decisions: np.ndarray, groups: pd.DataFrame) -> dict:
    """Overall quality, per-column disparities and per-group TPR / FPR of some decisions."""
    labels = labels.astype(np.int64)
    decisions = decisions.astype(np.int64)
    overall = _decision_rates(labels, decisions)
    tn = int(((1 - decisions) & (1 - labels)).sum())
    tp = int((decisions & labels).sum())
    overall = {
        "accuracy": (tp + tn) / labels.size if labels.size else None,
        "balanced_accuracy": ((overall["tpr"] + 1 - overall["fpr"]) / 2
                              if overall["tpr"] is not None and overall["fpr"] is not None else None),
        "selection_rate": overall["selection_rate"],
        "tpr": overall["tpr"],
        "fpr": overall["fpr"],
    }
    columns = [str(c) for c in groups.columns]
    keys = columns + ([intersection_name(columns)] if len(columns) >= 2 else [])
    by_column, by_group = {}, {}
    for key in keys:
        by_column[key], by_group[key] = _column_report(labels, decisions, _sensitive_values(groups, key))
    return {**overall, "disparities": by_column, "by_group": by_group}


def _column_report(labels: np.ndarray, decisions: np.ndarray, values: np.ndarray) -> tuple[dict, dict]:
    """Disparities of one sensitive column (group name per row in `values`), and its groups' TPR / FPR."""
    names = sorted(set(values))
    per_group = {g: _decision_rates(labels[values == g], decisions[values == g]) for g in names}
    by_group = {g: {"count": r["count"], "tpr": r["tpr"], "fpr": r["fpr"]} for g, r in per_group.items()}
    eo_groups = [g for g in names if 0 < per_group[g]["positives"] < per_group[g]["count"]]
    dp = demographic_parity_difference(labels, decisions, sensitive_features=values) if len(names) >= 2 else None
    eo_rows = np.isin(values, eo_groups)
    eod = (equalized_odds_difference(labels[eo_rows], decisions[eo_rows], sensitive_features=values[eo_rows])
           if len(eo_groups) >= 2 else None)
    disparities = {"demographic_parity_difference": finite_or_none(dp),
                   "equalized_odds_difference": finite_or_none(eod),
                   "groups_left_out_of_equalized_odds": [g for g in names if g not in eo_groups]}
    return disparities, by_group


def mitigate_with_threshold_optimizer(
    *,
    validation_labels: np.ndarray,
    validation_scores: np.ndarray,
    validation_groups: pd.DataFrame,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    test_groups: pd.DataFrame,
    sensitive_column: str | None = None,
    constraint: str = "equalized_odds",
    seed: int = 0,
    objective: str = "balanced_accuracy_score",
    threshold: float | None = None,
) -> dict:
    """Post-process the float model with Fairlearn's ThresholdOptimizer; report before/after.

    Fitted on the validation split (prefit: the model is not retrained; its scores are
    wrapped in a tiny sklearn estimator), evaluated on the test split with
    ``predict(..., random_state=seed)``.

    Args:
        sensitive_column: the column whose groups get their own thresholds. None means
            the FIRST sensitive column, not the intersection: ThresholdOptimizer needs
            both classes in every group of the validation split, which small intersection
            cells of imbalanced data (fraud: ~2 % positives) rarely have. The intersection
            can be asked for by its name (e.g. "Sex × AgeBand").
        constraint: a Fairlearn constraint ("equalized_odds", "demographic_parity", ...).
        seed: random_state of the randomised predictions.
        objective: what ThresholdOptimizer maximises under the constraint. Default
            balanced accuracy: with plain accuracy on rare positives, the optimum under
            equalized odds is often the trivial "always 0" classifier.
        threshold: the float model's own decision threshold for "before" (the pipeline
            passes it); None chooses it on the validation split by the F1 rule.

    Returns:
        {"status": "ok", "constraint", "objective", "sensitive_column", "threshold_before",
        "seed", "validation_rows", "test_rows", "before": report, "after": report, "notes"}
        where report is {"accuracy", "balanced_accuracy", "selection_rate", "tpr", "fpr",
        "disparities": {column: {"demographic_parity_difference", "equalized_odds_difference",
        "groups_left_out_of_equalized_odds"}}, "by_group": {column: {group: {"count", "tpr",
        "fpr"}}}} over every sensitive column and the intersection;
        or {"status": "failed", "reason": str, "constraint", "sensitive_column"} when
        ThresholdOptimizer cannot be fitted or applied.
    """
    validation_labels = np.asarray(validation_labels).astype(np.int64)
    validation_labels = np.asarray(validation_labels).astype(np.int64)
    test_labels = np.asarray(test_labels).astype(np.int64)
    validation_scores = np.asarray(validation_scores, dtype=np.float64).reshape(-1)
    test_scores = np.asarray(test_scores, dtype=np.float64).reshape(-1)
    _check_rows(validation_labels, validation_scores, validation_groups, test_labels, test_scores, test_groups)
    column = sensitive_column if sensitive_column is not None else str(validation_groups.columns[0])
    validation_features = _sensitive_values(validation_groups, column)
    test_features = _sensitive_values(test_groups, column)
    if threshold is None:
        threshold = choose_threshold(validation_labels, validation_scores)

    after, reason = None, _reason_it_cannot_fit(validation_labels, validation_features, test_features, column)
    if reason is None:
        after, reason = _fit_and_predict(validation_labels, validation_scores, validation_features, test_scores,
                                         test_features, column=column, constraint=constraint, objective=objective,
                                         seed=seed)
    if reason is not None:
        return {"status": "failed", "reason": reason, "constraint": constraint, "sensitive_column": column}

    before = (test_scores >= threshold).astype(np.int64)
    test_groups = test_groups.reset_index(drop=True)
    return _json_safe({
        "status": "ok",
        "constraint": constraint,
        "objective": objective,
        "sensitive_column": column,
        "threshold_before": float(threshold),
        "seed": int(seed),
        "validation_rows": int(validation_labels.size),
        "test_rows": int(test_labels.size),
        **_before_and_after(test_labels, before, after, test_groups),
        "notes": [
            "the mitigated classifier uses a different, randomised threshold per group, so it needs "
            "the sensitive attribute at inference time; it is reported, not shipped",
        ],
    })


def _check_rows(validation_labels: np.ndarray, validation_scores: np.ndarray, validation_groups: pd.DataFrame,
                test_labels: np.ndarray, test_scores: np.ndarray, test_groups: pd.DataFrame) -> None:
    """Raise ValueError unless each split has as many labels, scores and group rows, and a sensitive column."""
    for name, labels, scores, frame in (("validation", validation_labels, validation_scores, validation_groups),
                                        ("test", test_labels, test_scores, test_groups)):
        if not (labels.size == scores.size == len(frame)):
            raise ValueError(f"{name}: {labels.size} labels, {scores.size} scores, {len(frame)} group rows")
    if validation_groups.shape[1] == 0:
        raise ValueError("mitigation needs at least one sensitive column")


def _reason_it_cannot_fit(validation_labels: np.ndarray, validation_features: np.ndarray,
                          test_features: np.ndarray, column: str) -> str | None:
    """Why ThresholdOptimizer cannot be fitted or applied, or None.

    Checked up front for a clear reason (Fairlearn would say "Degenerate labels ...").
    """
    for group in sorted(set(validation_features)):
        in_group = validation_labels[validation_features == group]
        if in_group.min() == in_group.max():
            return (f"group {group!r} of {column!r} has only label {int(in_group[0])} in the "
                    f"validation split ({in_group.size} rows); ThresholdOptimizer needs both classes "
                    "in every group")
    unseen = sorted(set(test_features) - set(validation_features))
    if unseen:
        return (f"group(s) {', '.join(map(repr, unseen))} of {column!r} appear in the test split "
                "but not in the validation split")
    return None


def _fit_and_predict(validation_labels: np.ndarray, validation_scores: np.ndarray, validation_features: np.ndarray,
                     test_scores: np.ndarray, test_features: np.ndarray, *, column: str, constraint: str,
                     objective: str, seed: int) -> tuple[np.ndarray | None, str | None]:
    """(the mitigated test decisions, None), or (None, why Fairlearn failed): a failure is reported, not raised."""
    from fairlearn.postprocessing import ThresholdOptimizer

    optimizer = ThresholdOptimizer(estimator=_ScoreAsProbability(), constraints=constraint,
                                   objective=objective, prefit=True, predict_method="predict_proba")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer.fit(validation_scores.reshape(-1, 1), validation_labels,
                          sensitive_features=pd.Series(validation_features, name=column))
            after = np.asarray(optimizer.predict(test_scores.reshape(-1, 1),
                                                 sensitive_features=pd.Series(test_features, name=column),
                                                 random_state=seed)).astype(np.int64)
    except Exception as error:  # noqa: BLE001 (any Fairlearn failure is reported, not raised)
        return None, f"ThresholdOptimizer failed: {type(error).__name__}: {error}"
    return after, None


def _before_and_after(test_labels: np.ndarray, before: np.ndarray, after: np.ndarray,
                      test_groups: pd.DataFrame) -> dict:
    """The reports of the decisions before and after mitigation, and the columns where it made things worse."""
    before_report = _decision_report(test_labels, before, test_groups)
    after_report = _decision_report(test_labels, after, test_groups)
    return {
        "before": before_report,
        "after": after_report,
        "made_worse": mitigation_made_worse({"before": before_report, "after": after_report}),
        "made_worse_margin": MITIGATION_WORSE_MARGIN,
    }
