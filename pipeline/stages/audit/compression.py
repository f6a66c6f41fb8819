"""What compression did to each group: every variant's change against the reference, paired.

The reference (the float Keras model) and every variant are evaluated on the same bootstrap
resamples of each group, so a change's interval comes from the paired replicate differences; a
group's rate change also gets Agresti-Min's error for paired proportions (see intervals.py). A
cell is flagged where its interval excludes zero. The summary counts flagged cells and the
widening of the TPR / FPR gaps per variant.
"""

from __future__ import annotations

import numpy as np

from pipeline.stages.audit.intervals import _change, _paired_rate_change
from pipeline.stages.audit.partitions import _Partition

# Metrics whose change under compression is tested per group.
COMPRESSION_METRICS = ("tpr", "fpr", "roc_auc")


def _compression_table(partition: _Partition, labels: np.ndarray, decisions: np.ndarray, *, points: dict,
                       replicates: dict, gaps: dict, reference_index: int, v_index: int) -> dict:
    """One variant's changes against the reference over one partition: per group, and of the gaps."""
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
    return {
        "groups": cells,
        **{f"{metric}_gap_change": _change(
            gaps[metric]["point"][reference_index], gaps[metric]["point"][v_index],
            gaps[metric]["replicates"][:, v_index] - gaps[metric]["replicates"][:, reference_index])
           for metric in ("tpr", "fpr")},
    }


def _summary(variants: list[str], reference: str, disparities: dict, compression: dict) -> dict:
    """Per variant: equalized odds by column, the widening of the gaps, and how many cells are flagged."""
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
    return summary


def _flips(labels: np.ndarray, reference: np.ndarray, variant: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """(gained, lost, trials) decisions between two variants, among positives (TPR) and negatives (FPR)."""
    result = {}
    for metric, wanted in (("tpr", 1), ("fpr", 0)):
        mask = labels == wanted
        gained = int(np.sum(mask & (variant == 1) & (reference == 0)))
        lost = int(np.sum(mask & (variant == 0) & (reference == 1)))
        result[metric] = (gained, lost, int(mask.sum()))
    return result
