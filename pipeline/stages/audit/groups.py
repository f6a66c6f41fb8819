"""Metrics by group: every group's point values and bootstrap replicates, and its table of estimates.

For each measurable group of a partition, the group's rows are resampled once (stratified by
group, seeded by seed, column and group) and every variant's metrics are computed on the same
resamples, so that the compression changes can be paired.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.stages.audit.bootstrap import _bootstrap_weights, _replicate_metrics
from pipeline.stages.audit.intervals import _estimate, _rate_estimate
from pipeline.stages.audit.partitions import _Partition

# Metrics reported per group (each with an interval).
GROUP_METRICS = ("positives", "selection_rate", "tpr", "fpr", "precision", "roc_auc")


def _resample_groups(partition: _Partition, labels: np.ndarray, decisions: np.ndarray, scores: np.ndarray, *,
                     clusters: np.ndarray | None, bootstrap_samples: int,
                     seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Per measurable group, metric -> (1, variants) on the group's rows (unit weights: the point
    estimate) and metric -> (replicates, variants) on its bootstrap resamples."""
    points: dict[str, dict[str, np.ndarray]] = {}
    replicates: dict[str, dict[str, np.ndarray]] = {}
    for group in partition.measurable_groups:
        rows = partition.rows[group]
        weights = _bootstrap_weights(rows.size, bootstrap_samples, seed=seed, column=partition.name,
                                     group=group, clusters=None if clusters is None else clusters[rows])
        points[group] = _replicate_metrics(np.ones((1, rows.size)), labels[rows], decisions[rows], scores[rows])
        replicates[group] = _replicate_metrics(weights, labels[rows], decisions[rows], scores[rows])
    return points, replicates


def _group_table(partition: _Partition, points: dict, replicates: dict, v_index: int) -> dict[str, dict]:
    """Group -> {count, measurable, reason, metrics} of one variant: each metric with its interval."""
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
    return table


def _trials(point: dict[str, np.ndarray], rows: int, v_index: int) -> dict[str, float]:
    """The rows behind each of a group's rates for one variant (its denominators)."""
    positives = float(point["positives"][0, v_index])
    selected = float(np.nan_to_num(point["selection_rate"][0, v_index])) * rows
    return {"selection_rate": float(rows), "tpr": positives, "fpr": rows - positives,
            "precision": round(selected)}
