"""Fairness audit of every model variant, and of what compression did to each group.

Pure functions: no file I/O, no TensorFlow. The caller hands in labels, the sensitive
groups and each variant's `Predictions` on the test split; everything returned is JSON-able
(str keys, Python scalars, lists, dicts; NaN becomes None) or a matplotlib `Figure`.

Three things are computed per variant (`audit_variants`):

* ``by_group``: count, positives, selection rate, TPR, FPR, precision and ROC-AUC of every
  group of every sensitive column and of their intersection, each with a bootstrap 95 %
  interval;
* ``disparities``: demographic-parity difference and ratio, equalized-odds difference
  (Fairlearn's functions) and the TPR / FPR gaps between the best and worst group;
* ``compression``: the change of TPR, FPR and ROC-AUC of each variant against the reference
  (the float Keras model) in every group, with a *paired* bootstrap interval, flagged where
  the interval excludes zero; and the change of the TPR / FPR gaps.

Why our own bootstrap rather than ``MetricFrame(n_boot=..., ci_quantiles=...)``: Fairlearn
0.15 re-samples the whole table with ``DataFrame.sample`` and re-runs every metric through
pandas ``groupby`` and scikit-learn for each replicate. Measured here (2 CPU cores) on 4,000
rows and one 6-group column, 200 replicates took 19 s for five decision metrics and 5 s more
for ROC-AUC; the audit needs 8 variants x 3 columns of that (about 10 minutes). It also
(a) resamples the whole table, so group sizes vary and a small group can vanish from a
replicate; (b) draws independently per MetricFrame, so the variant/reference pairing the
compression table needs is only an accident of equal seeds; (c) crashes when a metric
raises on a one-class replicate (ROC-AUC).

So every per-group number comes from one vectorised code path, stratified by group: for
every group one matrix of resampling counts is drawn (seeded by seed, column and group
name) and reused for every variant, so all variants see the same resamples (paired); TPR,
FPR, precision and selection rate are matrix products of those counts and ROC-AUC a
weighted rank (Mann-Whitney) formula. The point estimate is the same code with unit
weights, so value and interval cannot disagree. Even without a bootstrap, MetricFrame is
not used for the point estimates: with 8 variants x 3 columns it made the audit 10.7 s instead of 2.6 s
(its metric wrapper ``np.stack``-s every column per group and per metric), and Fairlearn's
``true_positive_rate`` returns 0.0, not "undefined", for a group without positives. The
tests check these numbers against MetricFrame and scikit-learn. The disparities use
Fairlearn's own ``demographic_parity_difference``, ``demographic_parity_ratio`` and
``equalized_odds_difference`` (on the rows of the groups where they are meaningful: the
measurable groups, and for equalized odds those with both classes, since Fairlearn would
count an undefined TPR as 0).

Intervals, each built for its statistic and each holding its own point value (their
coverage on simulated data with known truths is measured by benchmarks/interval_coverage.py
and shown in BENCHMARKS.md):

* a group's rate (selection rate, TPR, FPR, precision): the bootstrap percentile interval,
  widened where needed to Wilson's score interval, which a small group's bootstrap cannot
  reach (at 9 of 9 every replicate is 1);
* a gap (max - min over groups: TPR and FPR gaps, equalized odds, demographic-parity
  difference; and the ratio): the percentile interval shifted by the bootstrap's estimate of
  its bias. The plain percentile interval of a max - min gap is biased upwards (the maximum
  of noisy group values exceeds the true maximum): the point value fell outside its own
  "95 %" interval in 20 of 120 cases of a fraud run. Simultaneous (max-t) group intervals
  were tried too: they always cover, but measured 100 % coverage at 1.8 times the width;
* a group's rate change under compression (paired): change ± 1.96 errors, the error being
  the paired bootstrap's or Agresti-Min's for paired proportions, whichever is larger (with
  a handful of flipped decisions the bootstrap alone has a few discrete values);
* ROC-AUC, its change, and changes of gaps: paired percentile intervals.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline.config import ALL_VARIANTS, FLOAT_MODEL
from pipeline.artifacts import safe_name
from pipeline.metrics import Predictions, choose_threshold, finite_or_none
from pipeline.stages.gate import MITIGATION_WORSE_MARGIN, mitigation_made_worse

# Quantiles of the bootstrap distribution reported as the 95 % interval.
CI_QUANTILES = (0.025, 0.975)
# Metrics reported per group (each with an interval).
GROUP_METRICS = ("positives", "selection_rate", "tpr", "fpr", "precision", "roc_auc")
# Metrics whose change under compression is tested per group.
COMPRESSION_METRICS = ("tpr", "fpr", "roc_auc")
# How the intersection of the sensitive columns is named.
INTERSECTION_JOIN = " × "
VALUE_JOIN = " | "
# Variant preferred as "the shipped one" in figures when the caller does not say.
DEFAULT_SHIP_VARIANT = "int8"

__all__ = [
    "audit_variants",
    "mitigate_with_threshold_optimizer",
    "audit_figures",
    "intersection_name",
    "CI_QUANTILES",
    "GROUP_METRICS",
    "COMPRESSION_METRICS",
]


# --------------------------------------------------------------------------------------
# Partitions of the rows: one per sensitive column, plus the intersection
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Partition:
    """The rows of the test split split by one sensitive column (or the intersection)."""

    name: str
    values: np.ndarray  # one group name (str) per row
    groups: tuple[str, ...]  # report order
    rows: dict[str, np.ndarray]  # group -> row indices
    unmeasurable: dict[str, str]  # group -> reason (too few rows)

    @property
    def measurable_groups(self) -> list[str]:
        return [g for g in self.groups if g not in self.unmeasurable]


def intersection_name(columns: list[str] | tuple[str, ...]) -> str:
    """Name of the intersection of several sensitive columns, e.g. "Sex × AgeBand"."""
    return INTERSECTION_JOIN.join(columns)


def _group_order(column: pd.Series) -> list[str]:
    """Groups of a column in report order: category order if categorical, else sorted."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.astype(str))
        return [str(c) for c in column.cat.categories if str(c) in present]
    return sorted(set(column.astype(str)))


def _partitions(groups: pd.DataFrame, min_group_size: int) -> list[_Partition]:
    groups = groups.rename(columns=str)
    columns = list(groups.columns)
    as_text = {c: groups[c].astype(str).to_numpy(dtype=object) for c in columns}
    parts: list[tuple[str, np.ndarray, list[str]]] = [
        (c, as_text[c], _group_order(groups[c])) for c in columns
    ]
    if len(columns) >= 2:
        values = as_text[columns[0]].copy()
        for c in columns[1:]:
            values = values + VALUE_JOIN + as_text[c]
        orders = [_group_order(groups[c]) for c in columns]
        # Nested order of the single columns (Sex first, then AgeBand within it ...).
        present = set(values)
        order: list[str] = [""]
        for level in orders:
            order = [f"{prefix}{VALUE_JOIN}{v}" if prefix else v for prefix in order for v in level]
        parts.append((intersection_name(columns), values, [v for v in order if v in present]))

    result = []
    for name, values, order in parts:
        rows = {g: np.flatnonzero(values == g) for g in order}
        unmeasurable = {
            g: f"{len(r)} rows, fewer than min_group_size={min_group_size}"
            for g, r in rows.items() if len(r) < min_group_size
        }
        result.append(_Partition(name, np.asarray(values, dtype=object), tuple(order), rows, unmeasurable))
    return result


# --------------------------------------------------------------------------------------
# Vectorised bootstrap
# --------------------------------------------------------------------------------------


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


def _interval(replicates: np.ndarray) -> list[float] | None:
    """[2.5 %, 97.5 %] quantiles over the replicates where the value is defined."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None
    low, high = np.quantile(finite, CI_QUANTILES)
    return [float(low), float(high)]


def _gap(values: np.ndarray) -> np.ndarray:
    """max - min over groups (axis 0), ignoring undefined groups; NaN if < 2 defined."""
    defined = np.isfinite(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gap = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
    return np.where(defined.sum(axis=0) >= 2, gap, np.nan)


def _bias_corrected(value, replicates: np.ndarray | None) -> dict:
    """A gap's estimate with the bootstrap percentile interval shifted by the bootstrap's bias.

    The bias is mean(replicates) - value (Efron & Tibshirani, ch. 10): for max - min gaps it is
    positive, and the plain percentile interval can miss its own point value. The shifted
    interval is clipped at 0 (a gap is never negative) and stretched, if needed, to hold the
    point value, which a mean inside the central 95 % of the replicates already ensures.
    """
    finite = np.asarray([]) if replicates is None else replicates[np.isfinite(replicates)]
    value = finite_or_none(value)
    if value is None or finite.size == 0:
        return {"value": value, "interval": None}
    bias = float(finite.mean()) - value
    low, high = (float(q) - bias for q in np.quantile(finite, CI_QUANTILES))
    return {"value": value, "interval": [max(0.0, min(low, value)), max(high, value)]}


def _estimate(value, replicates: np.ndarray | None) -> dict:
    return {"value": finite_or_none(value),
            "interval": None if replicates is None else _interval(replicates)}


def _wilson(successes: float, trials: float) -> list[float] | None:
    """Wilson's score 95 % interval of a proportion (None without trials)."""
    if not trials > 0:
        return None
    z = 1.959964
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def _rate_estimate(value, replicates: np.ndarray, trials: float) -> dict:
    """A group's rate: the bootstrap percentile interval, widened to hold Wilson's score interval.

    The bootstrap sees correlated rows (whole units are resampled) but cannot see beyond a
    small group's own outcomes: at 9 of 9 every replicate is 1. Wilson's interval is right
    for independent rows at any size. The union keeps each one's strength (coverage measured
    in benchmarks/interval_coverage.py).
    """
    estimate = _estimate(value, replicates)
    wilson = _wilson(float(value) * trials, trials) if estimate["value"] is not None else None
    if estimate["interval"] is not None and wilson is not None:
        estimate["interval"] = [min(estimate["interval"][0], wilson[0]), max(estimate["interval"][1], wilson[1])]
    return estimate


def _paired_rate_change(reference, variant, replicate_differences: np.ndarray, gained: int, lost: int,
                        trials: int) -> dict:
    """A rate's change between two variants on the same rows, e.g. a group's TPR under compression.

    Only the rows whose decision flipped move it: `gained` (0 -> 1) and `lost` (1 -> 0) among
    `trials` rows. With few flips a percentile interval of the bootstrap is too narrow (a
    handful of discrete values), so the interval is change ± 1.96 standard errors, the error
    being the bootstrap's (which sees correlated units) or Agresti-Min's for paired
    proportions (half a flip added to each cell), whichever is larger.
    """
    result = _change(reference, variant, replicate_differences)
    if result["change"] is None or trials <= 0:
        return result
    n = trials + 2.0
    b, c = gained + 0.5, lost + 0.5
    agresti_min = np.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    finite = replicate_differences[np.isfinite(replicate_differences)]
    error = max(float(np.std(finite)) if finite.size > 1 else 0.0, float(agresti_min))
    low, high = max(-1.0, result["change"] - 1.959964 * error), min(1.0, result["change"] + 1.959964 * error)
    result["interval"] = [low, high]
    result["flagged"] = bool(low > 0 or high < 0)
    return result


def _change(reference, variant, replicate_differences: np.ndarray) -> dict:
    """Variant - reference with a paired interval; flagged where the interval excludes 0."""
    reference, variant = finite_or_none(reference), finite_or_none(variant)
    change = None if reference is None or variant is None else variant - reference
    interval = _interval(replicate_differences) if change is not None else None
    flagged = interval is not None and (interval[0] > 0 or interval[1] < 0)
    return {"reference": reference, "variant": variant, "change": change,
            "interval": interval, "flagged": bool(flagged)}


# --------------------------------------------------------------------------------------
# Disparities through Fairlearn
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# audit_variants
# --------------------------------------------------------------------------------------


def _variant_order(names) -> list[str]:
    known = [FLOAT_MODEL, *ALL_VARIANTS]
    return [n for n in known if n in names] + sorted(n for n in names if n not in known)


def _validate(labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
              reference: str, bootstrap_samples: int, min_group_size: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must hold only 0 and 1")
    if len(groups) != labels.size:
        raise ValueError(f"groups has {len(groups)} rows but labels has {labels.size}")
    if not isinstance(groups.index, pd.RangeIndex) or groups.index.start != 0 or groups.index.step != 1:
        raise ValueError("groups must have a RangeIndex starting at 0, aligned with labels")
    if groups.isna().any().any():
        raise ValueError("groups holds missing values; band or fill them when loading")
    if reference not in predictions:
        raise ValueError(f"reference variant {reference!r} is not among the predictions "
                         f"({', '.join(predictions)})")
    for name, prediction in predictions.items():
        scores = np.asarray(prediction.scores)
        if scores.shape != labels.shape:
            raise ValueError(f"variant {name!r}: {scores.shape[0] if scores.ndim else 0} scores "
                             f"for {labels.size} labels")
        if not np.isfinite(scores.astype(np.float64)).all():
            raise ValueError(f"variant {name!r}: scores hold NaN or infinite values")
    if bootstrap_samples < 1:
        raise ValueError(f"bootstrap_samples must be at least 1, got {bootstrap_samples}")
    if min_group_size < 1:
        raise ValueError(f"min_group_size must be at least 1, got {min_group_size}")
    return labels.astype(np.int64)


def prediction_table(*, labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
                     clusters: np.ndarray | None = None) -> pd.DataFrame:
    """One row per test example: its position, label, unit, groups, and every model's score and decision.

    What `predictions.csv` holds, so that every per-group figure can be recomputed from the run
    folder alone, and a threshold moved without re-running anything. Column names: `row`,
    `label`, `unit` (where rows come in units), the sensitive columns, then `score:<model>` and
    `decision:<model>` per model, in the audit's order (audit.json's `settings.decisions_from` says
    which runtime's outputs each model's are).
    """
    table = pd.DataFrame({"row": np.arange(len(labels)), "label": np.asarray(labels, dtype=np.int64)})
    if clusters is not None:
        table["unit"] = np.asarray(clusters).astype(str)
    for column in groups.columns:
        table[column] = groups[column].astype(str).to_numpy()
    for model in _variant_order(predictions):
        table[f"score:{model}"] = np.asarray(predictions[model].scores, dtype=np.float64)
        table[f"decision:{model}"] = predictions[model].decisions
    return table


def audit_variants(*, labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
                   reference: str = FLOAT_MODEL, bootstrap_samples: int = 200, seed: int = 0,
                   min_group_size: int = 20, clusters: np.ndarray | None = None) -> dict:
    """Audit every variant by group, its disparities, and its changes against the reference.

    Args:
        labels: 0/1 labels of the test split, one per row.
        groups: one string column per sensitive attribute, RangeIndex aligned with labels.
        predictions: variant name -> its scores on the test split and its threshold.
        reference: the variant the others are compared with (the float Keras model).
        bootstrap_samples: replicates of the stratified-by-group bootstrap.
        seed: makes the result deterministic.
        min_group_size: groups with fewer rows are reported as not measurable.
        clusters: the independent unit of each row (Split.clusters), or None: the bootstrap
            then resamples whole units within each group instead of rows.

    Returns:
        A JSON-able dict with keys "by_group", "disparities", "compression", "summary",
        "settings" (see the module docstring and the tests for the exact layout).
    """
    labels = _validate(labels, groups, predictions, reference, bootstrap_samples, min_group_size)
    units = None
    if clusters is not None:
        clusters = np.asarray(clusters).astype(str)
        if clusters.shape != labels.shape:
            raise ValueError(f"clusters has {clusters.size} entries but labels has {labels.size}")
        units = int(np.unique(clusters).size)
    variants = _variant_order(predictions)
    reference_index = variants.index(reference)
    scores = np.column_stack([np.asarray(predictions[v].scores, dtype=np.float64) for v in variants]) \
        if variants else np.empty((labels.size, 0))
    decisions = np.column_stack([predictions[v].decisions for v in variants])
    partitions = _partitions(groups, min_group_size)

    by_group: dict[str, dict] = {v: {} for v in variants}
    disparities: dict[str, dict] = {v: {} for v in variants}
    compression: dict[str, dict] = {v: {} for v in variants if v != reference}

    for partition in partitions:
        measurable = partition.measurable_groups
        # Per group, metric -> (1, variants) on the group's rows (unit weights: the point
        # estimate) and metric -> (replicates, variants) on its bootstrap resamples.
        points: dict[str, dict[str, np.ndarray]] = {}
        replicates: dict[str, dict[str, np.ndarray]] = {}
        for group in measurable:
            rows = partition.rows[group]
            weights = _bootstrap_weights(rows.size, bootstrap_samples, seed=seed, column=partition.name,
                                         group=group, clusters=None if clusters is None else clusters[rows])
            points[group] = _replicate_metrics(np.ones((1, rows.size)), labels[rows], decisions[rows], scores[rows])
            replicates[group] = _replicate_metrics(weights, labels[rows], decisions[rows], scores[rows])

        # Groups that take part in each disparity.
        both_classes = [g for g in measurable
                        if 0 < labels[partition.rows[g]].sum() < partition.rows[g].size]
        excluded = dict(partition.unmeasurable)
        for g in measurable:
            if g not in both_classes:
                excluded[g] = ("one class only: left out of equalized odds"
                               " (and of the TPR or FPR gap it is undefined for)")

        # Gaps (max - min over groups): point (variants,) and replicates (B, variants); the
        # replicates serve the paired changes, the intervals come from simultaneous bounds.
        gaps = {metric: _stack_gap(points, variants, replicates, measurable, metric) for metric in ("tpr", "fpr")}
        eo_parts = [_stack_gap(points, variants, replicates, both_classes, m) for m in ("tpr", "fpr")]
        gaps["eo"] = {key: np.fmax(eo_parts[0][key], eo_parts[1][key]) for key in ("point", "replicates")}
        selection = _stack_metric(points, variants, replicates, measurable, "selection_rate")

        for v_index, variant in enumerate(variants):
            table = {}
            for group in partition.groups:
                entry: dict[str, Any] = {"count": int(partition.rows[group].size)}
                if group in partition.unmeasurable:
                    entry.update(measurable=False, reason=partition.unmeasurable[group], metrics=None)
                else:
                    trials = _trials(points[group], partition.rows[group].size, v_index)
                    entry.update(measurable=True, reason=None, metrics={
                        metric: (_rate_estimate(points[group][metric][0, v_index], replicates[group][metric][:, v_index],
                                                trials[metric]) if metric in trials else
                                 _estimate(points[group][metric][0, v_index], replicates[group][metric][:, v_index]))
                        for metric in GROUP_METRICS
                    })
                    entry["metrics"]["positives"]["value"] = int(points[group]["positives"][0, v_index])
                table[group] = entry
            by_group[variant][partition.name] = {"groups": table}

            fair = _fairlearn_disparities(labels, decisions[:, v_index], partition, measurable, both_classes)
            sel_reps = selection["replicates"][:, :, v_index]
            disparities[variant][partition.name] = {
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

            if variant == reference:
                continue
            cells = {}
            for group in partition.groups:
                if group in partition.unmeasurable:
                    cells[group] = {"measurable": False, "reason": partition.unmeasurable[group], "changes": None}
                    continue
                reps = replicates[group]
                rows = partition.rows[group]
                flips = _flips(labels[rows], decisions[rows, reference_index], decisions[rows, v_index])
                cells[group] = {"measurable": True, "reason": None, "changes": {
                    metric: (_paired_rate_change(points[group][metric][0, reference_index],
                                                 points[group][metric][0, v_index],
                                                 reps[metric][:, v_index] - reps[metric][:, reference_index],
                                                 *flips[metric]) if metric in flips else
                             _change(points[group][metric][0, reference_index], points[group][metric][0, v_index],
                                     reps[metric][:, v_index] - reps[metric][:, reference_index]))
                    for metric in COMPRESSION_METRICS
                }}
            compression[variant][partition.name] = {
                "groups": cells,
                **{f"{metric}_gap_change": _change(
                    gaps[metric]["point"][reference_index], gaps[metric]["point"][v_index],
                    gaps[metric]["replicates"][:, v_index] - gaps[metric]["replicates"][:, reference_index])
                   for metric in ("tpr", "fpr")},
            }

    summary = {}
    for variant in variants:
        eod = {column: table["equalized_odds_difference"]["value"]
               for column, table in disparities[variant].items()}
        if variant == reference:
            widening = {column: 0.0 for column in disparities[variant]}
            flagged = 0
        else:
            widening = {}
            flagged = 0
            for column, table in compression[variant].items():
                changes = [table[f"{m}_gap_change"]["change"] for m in ("tpr", "fpr")]
                changes = [c for c in changes if c is not None]
                widening[column] = max(changes) if changes else None
                flagged += sum(cell["changes"][m]["flagged"] for cell in table["groups"].values()
                               if cell["measurable"] for m in COMPRESSION_METRICS)
        defined = [w for w in widening.values() if w is not None]
        summary[variant] = {
            "equalized_odds_difference": eod,
            "gap_widening": widening,
            "max_gap_widening": max(defined) if defined else None,
            "flagged_cells": int(flagged),
        }

    result = {
        "by_group": by_group,
        "disparities": disparities,
        "compression": compression,
        "summary": summary,
        "settings": {
            "bootstrap_samples": int(bootstrap_samples),
            "seed": int(seed),
            "min_group_size": int(min_group_size),
            "reference": reference,
            "columns": [p.name for p in partitions],
            "sensitive_columns": [str(c) for c in groups.columns],
            "intersection": intersection_name([str(c) for c in groups.columns]) if groups.shape[1] >= 2 else None,
            "variants": variants,
            "ci_quantiles": list(CI_QUANTILES),
            "bootstrap": "stratified by group; the same resamples for every variant (paired)",
            "intervals": ("group rates: bootstrap percentile widened to Wilson's score interval; gaps and "
                          "equalized odds: percentile shifted by the bootstrap's bias; changes of a group's rate: "
                          "paired bootstrap error or Agresti-Min's, the larger; every interval holds its point value"),
            "resampling": ("rows (each row independent)" if units is None else
                           f"whole units: {units:,} units, a unit's rows drawn together "
                           "(the rows of one unit are correlated)"),
            "units": units,
        },
    }
    return _json_safe(result)


def _trials(point: dict[str, np.ndarray], rows: int, v_index: int) -> dict[str, float]:
    """The rows behind each of a group's rates for one variant (its denominators)."""
    positives = float(point["positives"][0, v_index])
    selected = float(np.nan_to_num(point["selection_rate"][0, v_index])) * rows
    return {"selection_rate": float(rows), "tpr": positives, "fpr": rows - positives,
            "precision": round(selected)}


def _flips(labels: np.ndarray, reference: np.ndarray, variant: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """(gained, lost, trials) decisions between two variants, among positives (TPR) and negatives (FPR)."""
    result = {}
    for metric, wanted in (("tpr", 1), ("fpr", 0)):
        mask = labels == wanted
        gained = int(np.sum(mask & (variant == 1) & (reference == 0)))
        lost = int(np.sum(mask & (variant == 0) & (reference == 1)))
        result[metric] = (gained, lost, int(mask.sum()))
    return result


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


def _ratio_of_extremes(values: np.ndarray) -> np.ndarray:
    """min / max over groups (axis 0), as Fairlearn's demographic-parity ratio."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _divide(np.nanmin(values, axis=0), np.nanmax(values, axis=0))


def _ratio_estimate(value, replicates: np.ndarray | None) -> dict:
    """The demographic-parity ratio (min / max, biased downwards): the bias-corrected interval, within [0, 1]."""
    estimate = _bias_corrected(None if value is None else 1.0 - value,
                               None if replicates is None else 1.0 - replicates)
    if estimate["value"] is None or estimate["interval"] is None:
        return {"value": finite_or_none(value), "interval": None}
    low, high = estimate["interval"]
    return {"value": finite_or_none(value), "interval": [max(0.0, 1.0 - high), min(1.0, 1.0 - low)]}


def _json_safe(value):
    """Recursively turn numpy scalars into Python ones and NaN / infinities into None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    return value


# --------------------------------------------------------------------------------------
# Mitigation with Fairlearn's ThresholdOptimizer
# --------------------------------------------------------------------------------------


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


def _sensitive_values(groups: pd.DataFrame, column: str) -> np.ndarray:
    groups = groups.rename(columns=str)
    columns = list(groups.columns)
    if column in columns:
        return groups[column].astype(str).to_numpy(dtype=object)
    if len(columns) >= 2 and column == intersection_name(columns):
        values = groups[columns[0]].astype(str).to_numpy(dtype=object)
        for c in columns[1:]:
            values = values + VALUE_JOIN + groups[c].astype(str).to_numpy(dtype=object)
        return values
    raise ValueError(f"unknown sensitive column {column!r}; known: {', '.join(columns)}"
                     + (f", {intersection_name(columns)}" if len(columns) >= 2 else ""))


def _decision_report(labels: np.ndarray, decisions: np.ndarray, groups: pd.DataFrame) -> dict:
    """Overall quality, per-column disparities and per-group TPR / FPR of some decisions."""
    labels = labels.astype(np.int64)
    decisions = decisions.astype(np.int64)

    def rates(y: np.ndarray, d: np.ndarray) -> dict:
        positives, negatives = int(y.sum()), int(y.size - y.sum())
        tp, fp = int((d & y).sum()), int((d & (1 - y)).sum())
        tpr = tp / positives if positives else None
        fpr = fp / negatives if negatives else None
        return {"count": int(y.size), "positives": positives, "tpr": tpr, "fpr": fpr,
                "selection_rate": float(d.mean()) if y.size else None}

    overall = rates(labels, decisions)
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
        values = _sensitive_values(groups, key)
        names = sorted(set(values))
        per_group = {g: rates(labels[values == g], decisions[values == g]) for g in names}
        by_group[key] = {g: {"count": r["count"], "tpr": r["tpr"], "fpr": r["fpr"]} for g, r in per_group.items()}
        eo_groups = [g for g in names if 0 < per_group[g]["positives"] < per_group[g]["count"]]
        dp = demographic_parity_difference(labels, decisions, sensitive_features=values) if len(names) >= 2 else None
        eo_rows = np.isin(values, eo_groups)
        eod = (equalized_odds_difference(labels[eo_rows], decisions[eo_rows], sensitive_features=values[eo_rows])
               if len(eo_groups) >= 2 else None)
        by_column[key] = {"demographic_parity_difference": finite_or_none(dp),
                          "equalized_odds_difference": finite_or_none(eod),
                          "groups_left_out_of_equalized_odds": [g for g in names if g not in eo_groups]}
    return {**overall, "disparities": by_column, "by_group": by_group}


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
    from fairlearn.postprocessing import ThresholdOptimizer

    validation_labels = np.asarray(validation_labels).astype(np.int64)
    test_labels = np.asarray(test_labels).astype(np.int64)
    validation_scores = np.asarray(validation_scores, dtype=np.float64).reshape(-1)
    test_scores = np.asarray(test_scores, dtype=np.float64).reshape(-1)
    for name, labels, scores, frame in (("validation", validation_labels, validation_scores, validation_groups),
                                        ("test", test_labels, test_scores, test_groups)):
        if not (labels.size == scores.size == len(frame)):
            raise ValueError(f"{name}: {labels.size} labels, {scores.size} scores, {len(frame)} group rows")
    if validation_groups.shape[1] == 0:
        raise ValueError("mitigation needs at least one sensitive column")
    column = sensitive_column if sensitive_column is not None else str(validation_groups.columns[0])
    validation_features = _sensitive_values(validation_groups, column)
    test_features = _sensitive_values(test_groups, column)
    if threshold is None:
        threshold = choose_threshold(validation_labels, validation_scores)

    def failed(reason: str) -> dict:
        return {"status": "failed", "reason": reason, "constraint": constraint, "sensitive_column": column}

    # Checked up front for a clear reason (Fairlearn would say "Degenerate labels ...").
    for group in sorted(set(validation_features)):
        in_group = validation_labels[validation_features == group]
        if in_group.min() == in_group.max():
            return failed(f"group {group!r} of {column!r} has only label {int(in_group[0])} in the "
                          f"validation split ({in_group.size} rows); ThresholdOptimizer needs both classes "
                          "in every group")
    unseen = sorted(set(test_features) - set(validation_features))
    if unseen:
        return failed(f"group(s) {', '.join(map(repr, unseen))} of {column!r} appear in the test split "
                      "but not in the validation split")

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
        return failed(f"ThresholdOptimizer failed: {type(error).__name__}: {error}")

    before = (test_scores >= threshold).astype(np.int64)
    test_groups = test_groups.reset_index(drop=True)
    before_report = _decision_report(test_labels, before, test_groups)
    after_report = _decision_report(test_labels, after, test_groups)
    return _json_safe({
        "status": "ok",
        "constraint": constraint,
        "objective": objective,
        "sensitive_column": column,
        "threshold_before": float(threshold),
        "seed": int(seed),
        "validation_rows": int(validation_labels.size),
        "test_rows": int(test_labels.size),
        "before": before_report,
        "after": after_report,
        "made_worse": mitigation_made_worse({"before": before_report, "after": after_report}),
        "made_worse_margin": MITIGATION_WORSE_MARGIN,
        "notes": [
            "the mitigated classifier uses a different, randomised threshold per group, so it needs "
            "the sensitive attribute at inference time; it is reported, not shipped",
        ],
    })


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------





def _pick_ship_variant(audit: dict, ship_variant: str | None) -> str | None:
    reference = audit["settings"]["reference"]
    others = [v for v in audit["settings"]["variants"] if v != reference]
    if ship_variant is not None:
        if ship_variant not in audit["by_group"]:
            raise ValueError(f"variant {ship_variant!r} is not in the audit ({', '.join(audit['by_group'])})")
        return ship_variant
    if DEFAULT_SHIP_VARIANT in others:
        return DEFAULT_SHIP_VARIANT
    return others[0] if others else None


def _values_and_errors(table: dict, groups: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    values, errors = [], []
    for g in groups:
        entry = table[g]
        estimate = entry["metrics"][metric] if entry["measurable"] else None
        value = estimate["value"] if estimate else None
        interval = estimate["interval"] if estimate else None
        values.append(np.nan if value is None else value)
        if value is None or interval is None:
            errors.append((0.0, 0.0))
        else:
            errors.append((max(value - interval[0], 0.0), max(interval[1] - value, 0.0)))
    return np.array(values, dtype=float), np.array(errors, dtype=float).T.reshape(2, len(groups))


def _tpr_fpr_figure(audit: dict, column: str, variants: list[str]) -> Figure:
    groups = list(audit["by_group"][variants[0]][column]["groups"])
    width = max(6.0, 0.55 * len(groups) * len(variants) + 2.5)
    figure = Figure(figsize=(min(width, 22.0), 7.5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(groups))
    bar = 0.8 / len(variants)
    for ax, metric, label in zip(axes, ("tpr", "fpr"), ("True-positive rate", "False-positive rate")):
        top = 0.0
        for i, variant in enumerate(variants):
            values, errors = _values_and_errors(audit["by_group"][variant][column]["groups"], groups, metric)
            upper = np.nan_to_num(values) + errors[1]
            top = max(top, float(upper.max()) if upper.size else 0.0)
            ax.bar(x + (i - (len(variants) - 1) / 2) * bar, np.nan_to_num(values), bar, yerr=errors,
                   capsize=3, label=variant, color=f"C{i}", alpha=0.85)
            for xi, value in zip(x, values):
                if not np.isfinite(value):
                    ax.text(xi + (i - (len(variants) - 1) / 2) * bar, 0.01, "n/a", rotation=90,
                            ha="center", va="bottom", fontsize=7, color="0.4")
        ax.set_ylabel(label)
        ax.set_ylim(0, min(1.05, max(top * 1.15, 0.05)))  # rare-event FPRs stay readable
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="variant", fontsize=8)
    axes[0].set_title(f"{column}: TPR and FPR by group (bars: 95 % bootstrap interval; n/a: undefined "
                      "or group too small)", fontsize=10)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                            fontsize=8)
    return figure


def _compression_heatmap(audit: dict, metric: str) -> Figure | None:
    variants = list(audit["compression"])
    if not variants:
        return None
    columns = audit["settings"]["columns"]
    cells = [(c, g) for c in columns for g in audit["compression"][variants[0]].get(c, {}).get("groups", {})]
    if not cells:
        return None
    values = np.full((len(variants), len(cells)), np.nan)
    flagged = np.zeros_like(values, dtype=bool)
    for i, variant in enumerate(variants):
        for j, (column, group) in enumerate(cells):
            cell = audit["compression"][variant][column]["groups"][group]
            if cell["measurable"] and cell["changes"][metric]["change"] is not None:
                values[i, j] = cell["changes"][metric]["change"]
                flagged[i, j] = cell["changes"][metric]["flagged"]
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    limit = max(limit, 0.01)
    figure = Figure(figsize=(min(max(7.0, 0.65 * len(cells) + 3), 24.0), 1.0 + 0.55 * len(variants) + 2.2),
                    layout="constrained")
    ax = figure.add_subplot()
    cmap = colormaps["RdBu"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto",
                      norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit))
    for i in range(len(variants)):
        for j in range(len(cells)):
            if np.isfinite(values[i, j]):
                text = f"{values[i, j]:+.2f}" + ("*" if flagged[i, j] else "")
                dark = abs(values[i, j]) > 0.6 * limit
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black", fontweight="bold" if flagged[i, j] else "normal")
                if flagged[i, j]:
                    ax.add_patch(_hatch(j, i))
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="0.4")
    for j in range(1, len(cells)):
        if cells[j][0] != cells[j - 1][0]:  # a line between sensitive columns
            ax.axvline(j - 0.5, color="black", linewidth=1.2)
    ax.set_yticks(range(len(variants)))
    ax.set_yticklabels(variants, fontsize=8)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([f"{c}: {g}" if INTERSECTION_JOIN not in c else g for c, g in cells],
                       rotation=45, ha="right", fontsize=7)
    label = {"tpr": "TPR", "fpr": "FPR", "roc_auc": "ROC-AUC"}[metric]
    ax.set_title(f"Change in {label} by group, variant − {audit['settings']['reference']} "
                 "(* hatched: 95 % paired bootstrap interval excludes 0; grey: not measurable)", fontsize=9)
    figure.colorbar(image, ax=ax, label=f"Δ {label}", shrink=0.9)
    return figure


def _hatch(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.2", linewidth=0.0)


def _mitigation_figure(mitigation: dict) -> Figure:
    before, after = mitigation["before"], mitigation["after"]
    labels, before_values, after_values = [], [], []
    for metric in ("accuracy", "balanced_accuracy", "selection_rate", "tpr", "fpr"):
        labels.append(metric.replace("_", " "))
        before_values.append(before[metric])
        after_values.append(after[metric])
    for column in before["disparities"]:
        for metric, short in (("demographic_parity_difference", "DP diff"), ("equalized_odds_difference", "EO diff")):
            labels.append(f"{short}\n{column}")
            before_values.append(before["disparities"][column][metric])
            after_values.append(after["disparities"][column][metric])
    b = np.array([np.nan if v is None else v for v in before_values], dtype=float)
    a = np.array([np.nan if v is None else v for v in after_values], dtype=float)
    figure = Figure(figsize=(max(7.0, 0.9 * len(labels) + 2), 4.8), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x - 0.2, np.nan_to_num(b), 0.4, label="before", color="C0")
    ax.bar(x + 0.2, np.nan_to_num(a), 0.4, label="after ThresholdOptimizer", color="C2")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Mitigation on the test split: ThresholdOptimizer ({mitigation['constraint']}) "
                 f"on {mitigation['sensitive_column']!r}", fontsize=10)
    return figure


def audit_figures(audit: dict, mitigation: dict | None = None, *,
                  ship_variant: str | None = None) -> dict[str, Figure]:
    """Figures of an audit (and of a mitigation), as matplotlib Figures the caller saves.

    Keys: "fairness_tpr_fpr_<column>" (column names made filename-safe, e.g.
    "fairness_tpr_fpr_Sex_AgeBand" for the intersection), "compression_heatmap_tpr",
    "compression_heatmap_fpr", "compression_heatmap_roc_auc", and "mitigation" when a
    successful mitigation is given. ship_variant: the variant drawn beside the reference
    (default "int8" when present, else the first other variant). No pyplot state is used.
    """
    figures: dict[str, Figure] = {}
    reference = audit["settings"]["reference"]
    shipped = _pick_ship_variant(audit, ship_variant)
    variants = [reference] + ([shipped] if shipped and shipped != reference else [])
    for column in audit["settings"]["columns"]:
        figures[f"fairness_tpr_fpr_{safe_name(column)}"] = _tpr_fpr_figure(audit, column, variants)
    for metric in COMPRESSION_METRICS:
        heatmap = _compression_heatmap(audit, metric)
        if heatmap is not None:
            figures[f"compression_heatmap_{metric}"] = heatmap
    if mitigation is not None and mitigation.get("status") == "ok":
        figures["mitigation"] = _mitigation_figure(mitigation)
    return figures
