"""Calibration-set audit: which training rows full-integer int8 is calibrated on, and what that does to each group.

Post-training int8 fixes every activation's range from the rows it is calibrated on (the
"representative dataset"). By default those are training rows with up to half positives
(run.representative_row_ids). A group whose inputs sit elsewhere in the input space can end up
outside the calibrated ranges and saturate. The audit converts int8 once per calibration set:

* the default representative set;
* rows drawn only from one group of the first sensitive column, for each of its groups with
  enough training rows (the same stratified draw, within the group).

Each candidate is run in LiteRT on the validation split with its own threshold, and every
group's TPR and FPR change against the float model is measured (group_harm.py). The set with the
smallest worst-group change is used for the run's post-training full-integer variants (int8,
selective_int8, pruned_int8); a tie keeps the representative set. The choice is made on validation
only; the test split reports what it gave.

`audit` is handed a converter and a predictor (it imports no TensorFlow); it runs in the compression
child.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline.stages.group_harm import HarmTarget, describe, judge

# The default calibration set's name.
REPRESENTATIVE = "representative"


def group_set_name(column: str, group: str) -> str:
    """A calibration set drawn from one group: "Sex = F"."""
    return f"{column} = {group}"


def audit(*, convert: Callable[[str], bytes], predict: Callable[[bytes], np.ndarray], sets: dict[str, int],
          labels: np.ndarray, target: HarmTarget, column: str | None) -> dict:
    """int8 calibrated on each set (name -> rows), judged on validation. Returns the JSON-able audit.

    {"column", "sets": [{"name", "rows", "bytes", "threshold", "worst", "changes": {group: {"tpr", "fpr"}}}],
     "chosen", "why"}: `changes` are the calibration column's groups; `worst` is over every sensitive column.
    """
    rows = []
    for name, size in sets.items():
        content = convert(name)
        result = judge(predict(content), labels, target)
        by_group: dict[str, dict] = {}
        for change in result["changes"]:
            if change["column"] == column:
                by_group.setdefault(change["group"], {})[change["metric"]] = change["change"]
        rows.append({"name": name, "rows": int(size), "bytes": len(content), "threshold": result["threshold"],
                     "worst": result["worst"], "changes": by_group})
    chosen = min(rows, key=lambda row: (round(abs(row["worst"]["change"]), 12), row["name"] != REPRESENTATIVE))
    default = next(row for row in rows if row["name"] == REPRESENTATIVE)
    why = (f"the representative set: no group's calibration lowered the worst group change on validation "
           f"({describe(default['worst'])})" if chosen["name"] == REPRESENTATIVE else
           f"rows of {chosen['name']} only: worst group change on validation {describe(chosen['worst'])}, against "
           f"{describe(default['worst'])} with the representative set")
    return {"column": column, "sets": rows, "chosen": chosen["name"], "why": why}


def group_row_ids(labels: np.ndarray, groups: np.ndarray, *, rows: int, seed: int, min_rows: int,
                  draw: Callable[[np.ndarray, int, int], np.ndarray]) -> dict[str, np.ndarray]:
    """group -> training-row positions of its calibration set (`draw(labels, rows, seed)` within the group), for
    every group with at least `min_rows` training rows."""
    groups = np.asarray(groups).astype(str)
    result = {}
    for group in sorted(set(groups)):
        members = np.flatnonzero(groups == group)
        if members.size >= min_rows:
            result[group] = members[draw(np.asarray(labels)[members], rows, seed)]
    return result
