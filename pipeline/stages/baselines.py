"""Baselines beside the Keras model, for tables: would a fraud team ship the model being audited?

scikit-learn's HistGradientBoostingClassifier and a logistic regression are fitted on the very
same training rows and encoding as the Keras model (the encoded model inputs), each decision
threshold is chosen on the validation split by the run's rule, and the test split reports
every quality measure the Keras model gets. When the Keras float model is more than
BASELINE_GAP (relatively) behind the best baseline on the headline metric, the run says so in
plain words (metrics.json, the model card, the dashboard).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline.metrics import choose_threshold

BASELINE_GAP = 0.05
DESCRIPTIONS = {
    "hist_gradient_boosting": "scikit-learn HistGradientBoostingClassifier (defaults, random_state = the run's seed)",
    "logistic_regression": "scikit-learn LogisticRegression on standardised inputs (max_iter 3000)",
}


def _models(seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {"hist_gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
            "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))}


TEACHER_FOLDS = 5


def teacher_scores(train_x: np.ndarray, train_labels: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold HistGradientBoosting scores of the train rows: the teacher for distillation.

    Each row is scored by the model fitted on the other folds (stratified, TEACHER_FOLDS), so the
    student learns what the teacher has learned about rows it has not seen, not its memory of
    the row's own label. Only the train split is read.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(train_labels)
    folds = min(TEACHER_FOLDS, int(min(labels.sum(), len(labels) - labels.sum())))
    if folds < 2:
        raise ValueError("the train split needs at least two examples of each class for a teacher")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(_models(seed)["hist_gradient_boosting"], train_x, labels, cv=splitter,
                             method="predict_proba")[:, 1]


def fit_teacher(train_x: np.ndarray, train_labels: np.ndarray, seed: int):
    """HistGradientBoosting fitted on the whole train split: the teacher that labels synthetic rows."""
    return _models(seed)["hist_gradient_boosting"].fit(train_x, np.asarray(train_labels))


def fit_baselines(*, train_x: np.ndarray, train_labels: np.ndarray, validation_x: np.ndarray,
                  validation_labels: np.ndarray, test_x: np.ndarray, test_labels: np.ndarray,
                  quality: Callable[[np.ndarray, np.ndarray, float], dict], threshold_rule: str, seed: int,
                  headline_metric: str, keras_quality: dict) -> dict:
    """{"headline_metric", "models": {name: {"description", "threshold", "quality"}}, "best", "keras_float",
    "behind_by" (relative shortfall of the Keras float model against the best), "limit", "sentence"}."""
    results = {}
    for name, model in _models(seed).items():
        model.fit(train_x, train_labels)
        validation_scores = model.predict_proba(validation_x)[:, 1]
        threshold = float(choose_threshold(validation_labels, validation_scores, threshold_rule))
        test_scores = model.predict_proba(test_x)[:, 1]
        results[name] = {"description": DESCRIPTIONS[name], "threshold": threshold,
                         "quality": quality(test_labels, test_scores, threshold)}
    best = max(results, key=lambda name: results[name]["quality"].get(headline_metric) or -np.inf)
    best_value = results[best]["quality"].get(headline_metric)
    keras_value = keras_quality.get(headline_metric)
    behind = (None if not best_value or keras_value is None
              else max(0.0, (best_value - keras_value) / best_value))
    return {"headline_metric": headline_metric, "models": results, "best": best, "keras_float": keras_value,
            "behind_by": behind, "limit": BASELINE_GAP,
            "sentence": baseline_sentence(headline_metric, keras_value, best, best_value, behind)}


def baseline_sentence(metric: str, keras_value: float | None, best: str, best_value: float | None,
                      behind: float | None) -> str:
    """What a reader needs to hear about the baselines, in one sentence."""
    if keras_value is None or best_value is None or behind is None:
        return f"The baselines could not be compared on {metric}."
    if behind > BASELINE_GAP:
        return (f"The Keras model is {behind:.0%} behind {best.replace('_', ' ')} on {metric} ({keras_value:.4f} "
                f"against {best_value:.4f}, same split and encoding): a team would not ship it as it is; the "
                f"audit describes the model that was trained, not the best one could train on these data.")
    return (f"The Keras model holds its own: {metric} {keras_value:.4f} against {best_value:.4f} for "
            f"{best.replace('_', ' ')} on the same split and encoding (within {BASELINE_GAP:.0%}).")
