"""The audit's vectorised bootstrap: resampling counts, and every group metric of every replicate at once.

One matrix of resampling counts is drawn per group (seeded by seed, column and group name) and
reused for every variant, so all variants see the same resamples (paired). TPR, FPR, precision
and selection rate are matrix products of those counts and ROC-AUC a weighted rank
(Mann-Whitney) formula. The point estimate is the same code with unit weights, so a value and
its interval cannot disagree (see the package docstring for why not Fairlearn's MetricFrame).
"""

from __future__ import annotations

import zlib

import numpy as np


def _bootstrap_weights(n_rows: int, samples: int, *, seed: int, column: str, group: str,
                       clusters: np.ndarray | None = None) -> np.ndarray:
    """Resampling counts, shape (samples, n_rows): how often each row is drawn per replicate.

    Seeded by (seed, column, group) only, so a group's resamples do not depend on which
    other groups or variants exist, and every variant is evaluated on the same resamples.
    With `clusters` (the unit of each of the group's rows), whole units are drawn with
    replacement and every row weighs as often as its unit was drawn (the cluster bootstrap).
    """
    rng = np.random.default_rng([seed, zlib.crc32(column.encode()), zlib.crc32(group.encode())])
    return bootstrap_counts(n_rows, samples, rng=rng, clusters=clusters)


def bootstrap_counts(n_rows: int, samples: int, *, rng: np.random.Generator,
                     clusters: np.ndarray | None = None) -> np.ndarray:
    """(samples, n_rows) resampling counts of rows, or of whole clusters when `clusters` is given."""
    if clusters is None:
        units, row_unit = n_rows, None
    else:
        clusters = np.asarray(clusters)
        if clusters.shape != (n_rows,):
            raise ValueError(f"clusters must hold one unit per row: {clusters.shape} for {n_rows} rows")
        _, row_unit = np.unique(clusters, return_inverse=True)
        units = int(row_unit.max()) + 1 if n_rows else 0
    drawn = rng.integers(0, units, size=(samples, units))
    offsets = (np.arange(samples) * units)[:, None]
    counts = np.bincount((drawn + offsets).ravel(), minlength=samples * units).reshape(samples, units)
    if row_unit is not None:
        counts = counts[:, row_unit]
    return counts.astype(np.float64)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _weighted_auc(weights: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of every replicate at once (Mann-Whitney with row weights, ties count 1/2).

    weights: (replicates, rows) counts; labels, scores: (rows,). NaN where a replicate
    holds one class only. Equals sklearn's roc_auc_score for unit weights.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order].astype(np.float64)
    tie_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    positive_weight = np.add.reduceat(w * sorted_labels, tie_starts, axis=1)
    negative_weight = np.add.reduceat(w * (1.0 - sorted_labels), tie_starts, axis=1)
    negatives_below = np.cumsum(negative_weight, axis=1) - negative_weight
    wins = (positive_weight * (negatives_below + 0.5 * negative_weight)).sum(axis=1)
    return _divide(wins, positive_weight.sum(axis=1) * negative_weight.sum(axis=1))


def _replicate_metrics(weights: np.ndarray, labels: np.ndarray, decisions: np.ndarray,
                       scores: np.ndarray) -> dict[str, np.ndarray]:
    """Every group metric for every replicate and variant.

    weights: (replicates, rows); labels: (rows,); decisions, scores: (rows, variants).
    Returns metric -> array (replicates, variants), NaN where undefined.
    """
    y = labels.astype(np.float64)
    d = decisions.astype(np.float64)
    rows = weights.sum(axis=1, keepdims=True)
    positives = (weights @ y)[:, None]
    negatives = rows - positives
    selected = weights @ d
    true_positive = weights @ (d * y[:, None])
    false_positive = selected - true_positive
    auc = np.column_stack([_weighted_auc(weights, labels, scores[:, v]) for v in range(scores.shape[1])])
    variants = d.shape[1]
    return {
        "positives": np.repeat(positives, variants, axis=1),
        "selection_rate": _divide(selected, rows),
        "tpr": _divide(true_positive, positives),
        "fpr": _divide(false_positive, negatives),
        "precision": _divide(true_positive, selected),
        "roc_auc": auc,
    }
