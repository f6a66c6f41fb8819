"""Likely label leaks: an input column that alone separates the label on the training split.

A column such as `is_recid` beside a recidivism label, or a settlement amount beside a fraud
flag, is known only after the outcome; a model that reads it scores well and is useless.
Each input column is scored alone on the training split by ROC-AUC: a numeric column by its
values (missing values at the median), a categorical one by its categories' positive rate
(target encoding).
A column at or beyond LEAK_AUC either way is named; `--drop COLUMN` removes it. The categories'
rates are fitted out of fold (five folds), so that a column of many rare values is not named for
memorising the label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

LEAK_AUC = 0.95


def column_auc(values: pd.Series, labels: np.ndarray, kind: str) -> float | None:
    """ROC-AUC of one column alone against 0/1 labels, folded to >= 0.5; None when it cannot be scored."""
    if labels.min() == labels.max():
        return None
    if kind == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        if numbers.notna().sum() == 0:
            return None
        scores = numbers.fillna(numbers.median()).to_numpy()
    else:
        text = values.astype(object).where(values.notna(), "<missing>").astype(str)
        if text.nunique() < 2:
            return None
        scores = _out_of_fold_rates(text, labels)
    if np.unique(scores).size < 2:
        return None
    auc = float(roc_auc_score(labels, scores))
    return max(auc, 1.0 - auc)


def _out_of_fold_rates(text: pd.Series, labels: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each row's category scored by its positive rate in the OTHER folds (unseen: their overall rate), so that
    a column of many rare categories (an id, a free-text field) does not separate the label by memorising it."""
    scores = np.empty(len(text), dtype=float)
    positions = np.arange(len(text))
    for fold in range(folds):
        held = positions % folds == fold
        rates = pd.Series(labels[~held]).groupby(text[~held].to_numpy()).mean()
        scores[held] = text[held].map(rates).fillna(float(labels[~held].mean())).to_numpy(dtype=float)
    return scores


def likely_leaks(frame: pd.DataFrame, labels: np.ndarray, kinds: dict[str, str], rows: np.ndarray,
                 *, threshold: float = LEAK_AUC) -> list[tuple[str, float]]:
    """(column, ROC-AUC) of every input column that alone reaches `threshold` on `rows` (the training
    split's positions), highest first."""
    found = []
    labels = np.asarray(labels)[rows]
    for column, kind in kinds.items():
        auc = column_auc(frame[column].iloc[rows].reset_index(drop=True), labels, kind)
        if auc is not None and auc >= threshold:
            found.append((column, auc))
    return sorted(found, key=lambda item: -item[1])


def leak_warning(column: str, auc: float) -> str:
    """The sentence the console and the model card show."""
    return (f"likely label leak: input column {column!r} alone separates the label on the training split "
            f"(ROC-AUC {auc:.3f}, the limit is {LEAK_AUC}); if it is known only after the outcome, drop it with "
            f"--drop {column!r}")
