"""`audit_variants`: every variant by group, its disparities, and its changes against the reference.

The orchestration only: the inputs are checked, the rows split into partitions (partitions.py),
each partition's groups resampled (groups.py), and per variant the tables of groups.py,
disparities.py and compression.py filled in; then the summary and the settings are added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import ALL_VARIANTS, FLOAT_MODEL
from pipeline.metrics import Predictions
from pipeline.stages.audit.compression import _compression_table, _summary
from pipeline.stages.audit.disparities import _disparity_groups, _disparity_table, _partition_gaps
from pipeline.stages.audit.groups import _group_table, _resample_groups
from pipeline.stages.audit.intervals import CI_QUANTILES
from pipeline.stages.audit.json_values import _json_safe
from pipeline.stages.audit.partitions import _Partition, _partitions, intersection_name


def _variant_order(names) -> list[str]:
    """The float model, then the built-in variants in their usual order, then any others sorted."""
    known = [FLOAT_MODEL, *ALL_VARIANTS]
    return [n for n in known if n in names] + sorted(n for n in names if n not in known)


def _validate(labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
              reference: str, bootstrap_samples: int, min_group_size: int) -> np.ndarray:
    """The labels as int64 after checking every input agrees with them; raises ValueError saying what does not."""
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
        "settings" (see the package docstring and the tests for the exact layout).
    """
    labels = _validate(labels, groups, predictions, reference, bootstrap_samples, min_group_size)
    units = None
    if clusters is not None:
        clusters = np.asarray(clusters).astype(str)
        if clusters.shape != labels.shape:
            raise ValueError(f"clusters has {clusters.size} entries but labels has {labels.size}")
        units = int(np.unique(clusters).size)
    variants = _variant_order(predictions)
    scores = np.column_stack([np.asarray(predictions[v].scores, dtype=np.float64) for v in variants]) \
        if variants else np.empty((labels.size, 0))
    decisions = np.column_stack([predictions[v].decisions for v in variants])
    partitions = _partitions(groups, min_group_size)

    by_group: dict[str, dict] = {v: {} for v in variants}
    disparities: dict[str, dict] = {v: {} for v in variants}
    compression: dict[str, dict] = {v: {} for v in variants if v != reference}
    for partition in partitions:
        tables = _audit_partition(partition, labels, decisions, scores, variants=variants, reference=reference,
                                  clusters=clusters, bootstrap_samples=bootstrap_samples, seed=seed)
        for variant, (group_table, disparity_table, compression_table) in tables.items():
            by_group[variant][partition.name] = {"groups": group_table}
            disparities[variant][partition.name] = disparity_table
            if variant != reference:
                compression[variant][partition.name] = compression_table

    return _json_safe({
        "by_group": by_group,
        "disparities": disparities,
        "compression": compression,
        "summary": _summary(variants, reference, disparities, compression),
        "settings": _settings(groups, partitions, variants, reference=reference, units=units,
                              bootstrap_samples=bootstrap_samples, seed=seed, min_group_size=min_group_size),
    })


def _audit_partition(partition: _Partition, labels: np.ndarray, decisions: np.ndarray, scores: np.ndarray, *,
                     variants: list[str], reference: str, clusters: np.ndarray | None, bootstrap_samples: int,
                     seed: int) -> dict[str, tuple[dict, dict, dict | None]]:
    """Variant -> (group table, disparities, compression changes or None for the reference) of one partition."""
    reference_index = variants.index(reference)
    points, replicates = _resample_groups(partition, labels, decisions, scores, clusters=clusters,
                                          bootstrap_samples=bootstrap_samples, seed=seed)
    measurable, both_classes, excluded = _disparity_groups(partition, labels)
    gaps, selection = _partition_gaps(points, variants, replicates, measurable, both_classes)
    tables = {}
    for v_index, variant in enumerate(variants):
        group_table = _group_table(partition, points, replicates, v_index)
        disparity_table = _disparity_table(labels, decisions, partition, v_index, gaps=gaps, selection=selection,
                                           measurable=measurable, both_classes=both_classes, excluded=excluded)
        compression_table = None if variant == reference else _compression_table(
            partition, labels, decisions, points=points, replicates=replicates, gaps=gaps,
            reference_index=reference_index, v_index=v_index)
        tables[variant] = (group_table, disparity_table, compression_table)
    return tables


def _settings(groups: pd.DataFrame, partitions: list[_Partition], variants: list[str], *, reference: str,
              units: int | None, bootstrap_samples: int, seed: int, min_group_size: int) -> dict:
    """How the audit was made: its parameters, its columns and variants, and how the intervals were built."""
    return {
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
    }
