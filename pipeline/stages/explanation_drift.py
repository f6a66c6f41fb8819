"""Explanation drift by group: does the compressed model decide for the same reasons as the float model, in every group?

Aggregate agreement (explanations.json "agreement") can hide a group whose explanation changed: the
explained rows are pooled. Here the explained rows' SHAP values are split by each sensitive column's
groups, and per group, float against every other explained model:

* Spearman rank correlation of global importance (mean |SHAP| per player over the group's rows);
* top-5 overlap (how many of the float model's five most important players stay in the top five);
* sign flips: players whose mean SHAP value has the other sign (the model now pushes the group's
  decisions the other way on that feature), among players with a non-negligible mean in both.

A group (or the whole explained set) whose rank correlation is under `--min-explanation-agreement`
(default 0.8) is flagged. Groups with fewer explained rows than `min_rows` are listed as not measured:
SHAP importance over a handful of rows is noise.

Pure functions: no file I/O, no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.explainers.common import finite_or_none, spearman, top_names

DEFAULT_MIN_AGREEMENT = 0.8
# A player's mean SHAP value counts for a sign flip only above this share of the largest |mean| of the model.
SIGN_FLOOR = 0.05


def compare(names: list[str], values: np.ndarray, reference_values: np.ndarray) -> dict:
    """One model's SHAP values [rows, players] against the reference's on the same rows."""
    importance, reference_importance = np.abs(values).mean(axis=0), np.abs(reference_values).mean(axis=0)
    mean, reference_mean = values.mean(axis=0), reference_values.mean(axis=0)
    floor = SIGN_FLOOR * max(float(np.abs(mean).max(initial=0.0)), float(np.abs(reference_mean).max(initial=0.0)))
    flips = [names[j] for j in range(len(names))
             if abs(mean[j]) > floor and abs(reference_mean[j]) > floor and np.sign(mean[j]) != np.sign(reference_mean[j])]
    return {"rows": int(values.shape[0]),
            "spearman": spearman(importance, reference_importance),
            "top5_overlap": len(set(top_names(names, importance, 5)) & set(top_names(names, reference_importance, 5))),
            "sign_flips": flips,
            "mean_abs_difference": finite_or_none(float(np.abs(values - reference_values).mean()))}


def drift_by_group(*, names: list[str], shap_values: dict[str, np.ndarray], groups: pd.DataFrame, reference: str,
                   min_agreement: float = DEFAULT_MIN_AGREEMENT, min_rows: int = 10) -> dict:
    """Per explained model other than the reference: overall and per group of every sensitive column.

    groups: the explained rows' groups, one row per row of the SHAP arrays, one column per sensitive column.
    Returns {"min_agreement", "min_rows", "models": {model: {"overall", "by_group": {column: {group: ...}},
    "flagged": [{"column", "group", "spearman"}], "lowest_group": {"column", "group", "spearman"} or None}}};
    a group under min_rows is {"rows", "measured": False}.
    """
    if len(groups) != next(iter(shap_values.values())).shape[0]:
        raise ValueError(f"groups has {len(groups)} rows but the SHAP values {next(iter(shap_values.values())).shape[0]}")
    reference_values = np.asarray(shap_values[reference], dtype=np.float64)
    models = {}
    for model, values in shap_values.items():
        if model == reference:
            continue
        values = np.asarray(values, dtype=np.float64)
        overall = compare(names, values, reference_values)
        flagged = [{"column": None, "group": "all explained rows", "spearman": overall["spearman"]}] \
            if overall["spearman"] is not None and overall["spearman"] < min_agreement else []
        by_group: dict[str, dict] = {}
        for column in groups.columns:
            labels = groups[column].astype(str).to_numpy()
            cells = {}
            for group in sorted(set(labels)):
                rows = labels == group
                if rows.sum() < min_rows:
                    cells[group] = {"rows": int(rows.sum()), "measured": False}
                    continue
                cells[group] = {**compare(names, values[rows], reference_values[rows]), "measured": True}
                if cells[group]["spearman"] is not None and cells[group]["spearman"] < min_agreement:
                    flagged.append({"column": str(column), "group": group, "spearman": cells[group]["spearman"]})
            by_group[str(column)] = cells
        measured = [{"column": column, "group": group, "spearman": cell["spearman"]}
                    for column, cells in by_group.items() for group, cell in cells.items()
                    if cell["measured"] and cell["spearman"] is not None]
        models[model] = {"overall": overall, "by_group": by_group, "flagged": flagged,
                         "lowest_group": min(measured, key=lambda cell: cell["spearman"]) if measured else None}
    return {"min_agreement": float(min_agreement), "min_rows": int(min_rows), "models": models}


def explanation_drift(explanation: dict, test_groups: pd.DataFrame, *, min_agreement: float = DEFAULT_MIN_AGREEMENT,
                      min_rows: int = 10) -> dict:
    """`drift_by_group` of an explainer's result (with its "_arrays"): the explained rows' groups from the test
    split's. An explanation whose players differ from row to row (a text's tokens) is "not_measured"."""
    arrays = explanation.get("_arrays") or {}
    players = list(explanation.get("feature_columns") or [])
    values = arrays.get("shap_values") if isinstance(arrays.get("shap_values"), dict) else {}
    if not (players and values and "row_ids" in arrays and all(
            isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == len(players) for v in values.values())):
        return {"not_measured": "the explanation has no players shared by every row (a text's tokens differ "
                                "from review to review)"}
    rows = np.asarray(arrays["row_ids"], dtype=np.int64)
    return drift_by_group(names=players, shap_values=values, groups=test_groups.iloc[rows].reset_index(drop=True),
                          reference=explanation["reference"], min_agreement=min_agreement, min_rows=min_rows)
