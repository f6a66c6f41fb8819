"""The tabular preprocessing spec (format "edgeaudit.tabular.v1"): fitted on train, applied anywhere.

Numeric: median imputation, a missing-indicator input when more than 1 % of train values
are missing, then standardisation with the train mean / std (std 0 -> 1). Categorical:
one-hot over the train vocabulary (the 50 most frequent values), with "(missing)" as a
value and an "(other)" slot for anything unseen. The spec is JSON-able and ships beside
every .tflite; `encode_tabular` applies only the spec, so raw user rows can be encoded
anywhere (see HOW_TO_USE).

A numeric column may instead carry a piecewise-linear encoding (Gorishniy, Rubachev and
Babenko, "On Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022):
`with_piecewise_linear` replaces its one standardised input by one input per bin between
train quantiles, each `clip((value - lower) / (upper - lower), 0, 1)`. A multi-layer
perceptron then draws a threshold (AI4I's "torque x wear above 11,000") with one unit
instead of many, and every input lies in [0, 1], which int8 quantizes with one scale
without losing the small features to the large ones. The model search
(`pipeline.stages.model_search`) chooses it, or not, on the validation split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.splitting import quote_list
from pipeline.data.tabular_columns import MISSING, category_series, to_numeric
from pipeline.errors import InputError

FORMAT = "edgeaudit.tabular.v1"
OTHER = "(other)"
MISSING_INDICATOR_SHARE = 0.01   # above this share missing (in train), a numeric column gets an indicator
MAX_CATEGORIES = 50              # one-hot vocabulary cap per categorical column

HOW_TO_USE = (
    "Turn one raw row into one float32 vector of length n_features, in the order of "
    "feature_names, then feed it as the model's only input (shape [1, n_features], dtype "
    "float32); the output is the probability of the positive class. Go through 'columns' "
    "in order. kind 'numeric': parse the value as a number (decimal separator given by "
    "'decimal'); if it is missing or not a finite number use 'median' instead; write "
    "(value - mean) / std at indices[0]; when 'missing_indicator' is true, write 1.0 at "
    "indices[1] if the value was missing (else 0.0). kind 'categorical': take the value as "
    "text with surrounding spaces removed (a whole number written as a float, 3.0, reads "
    "'3'; missing or empty reads '(missing)'); write 1.0 at the index whose position in "
    "'categories' matches it, or at the last index (the '(other)' slot) when it is not in "
    "'categories'; every other index of the column stays 0.0. Columns not listed are "
    "ignored (the sensitive columns and the label are not model inputs unless listed). A "
    "numeric column with 'edges' (piecewise-linear encoding) has one index per bin instead of "
    "the standardised value: for bin k, write min(1, max(0, (value - edges[k]) / (edges[k+1] - "
    "edges[k]))) at indices[k], with the median-filled value; its missing indicator, if any, "
    "follows at the last index."
)
PIECEWISE_LINEAR_BINS = 16   # quantile bins per numeric column (Gorishniy et al. use 8 to 128; 16 measured here)


def fit_preprocessing(train: pd.DataFrame, kinds: Mapping[str, str], *, decimals: Mapping[str, str] | None = None,
                      max_categories: int = MAX_CATEGORIES, extra: Mapping[str, Any] | None = None) -> dict:
    """Fit the JSON-able spec on the train rows only. `kinds`: column -> 'numeric' | 'categorical'."""
    decimals = dict(decimals or {})
    columns: list[dict] = []
    feature_names: list[str] = []
    for name, kind in kinds.items():
        series = train[name]
        start = len(feature_names)
        if kind == "numeric":
            decimal = decimals.get(name, ".")
            values = to_numeric(series, decimal)
            missing_share = float(values.isna().mean()) if len(values) else 0.0
            median = float(values.median()) if values.notna().any() else 0.0
            filled = values.fillna(median).to_numpy(dtype=np.float64)
            mean = float(filled.mean()) if filled.size else 0.0
            std = float(filled.std()) if filled.size else 1.0
            if not std > 1e-12 or not math.isfinite(std):
                std = 1.0
            indicator = missing_share > MISSING_INDICATOR_SHARE
            feature_names.append(name)
            if indicator:
                feature_names.append(f"{name} (missing)")
            columns.append({
                "name": name, "kind": "numeric", "decimal": decimal,
                "median": median, "mean": mean, "std": std,
                "missing_indicator": bool(indicator),
                "train_missing_share": round(missing_share, 6),
                "indices": list(range(start, len(feature_names))),
            })
        elif kind == "categorical":
            counts = category_series(series).value_counts()
            ranked = sorted(counts.index.tolist(), key=lambda v: (-counts[v], v))
            kept = sorted(ranked[:max_categories])
            feature_names.extend(f"{name}={value}" for value in kept)
            feature_names.append(f"{name}={OTHER}")
            columns.append({
                "name": name, "kind": "categorical", "categories": kept,
                "missing_value": MISSING, "other_value": OTHER,
                "categories_in_train": len(ranked),
                "indices": list(range(start, len(feature_names))),
            })
        else:
            raise ValueError(f"unknown column kind {kind!r} for column {name!r}")
    spec = {
        "format": FORMAT,
        "input_dtype": "float32",
        "n_features": len(feature_names),
        "feature_names": feature_names,
        "columns": columns,
        "how_to_use": HOW_TO_USE,
    }
    if extra:
        spec.update(extra)
    return spec


def with_piecewise_linear(spec: dict, train_features: np.ndarray, bins: int = PIECEWISE_LINEAR_BINS) -> dict:
    """The spec with every numeric column of at least 3 distinct train values piecewise-linear encoded.

    `train_features`: the train split encoded with `spec` (standardised), from which each column's
    quantile edges are read and written back in the column's own units (value = z * std + mean),
    so a device encodes raw values. Columns with fewer distinct values keep their standardised input.
    Returns a new spec; `spec` is not changed.
    """
    columns, feature_names = [], []
    for column in spec["columns"]:
        old = column["indices"]
        start = len(feature_names)
        column = dict(column)
        if column["kind"] == "numeric":
            standardised = np.asarray(train_features[:, old[0]], dtype=np.float64)
            edges = np.unique(np.quantile(standardised, np.linspace(0.0, 1.0, int(bins) + 1)))
            if len(edges) >= 3:
                raw_edges = edges * column["std"] + column["mean"]
                column["edges"] = [float(edge) for edge in raw_edges]
                feature_names.extend(f"{column['name']} (bin {k + 1} of {len(edges) - 1})" for k in range(len(edges) - 1))
            else:
                feature_names.append(column["name"])
            if column["missing_indicator"]:
                feature_names.append(f"{column['name']} (missing)")
        else:
            feature_names.extend(spec["feature_names"][i] for i in old)
        column["indices"] = list(range(start, len(feature_names)))
        columns.append(column)
    return {**spec, "columns": columns, "feature_names": feature_names, "n_features": len(feature_names),
            "numeric_encoding": {"kind": "piecewise_linear", "bins": int(bins),
                                 "reference": "Gorishniy, Rubachev and Babenko, NeurIPS 2022"}}


def feature_groups_of(spec: dict) -> dict[str, list[int]]:
    """Original column -> the indices of the encoded inputs it produced."""
    return {column["name"]: list(column["indices"]) for column in spec["columns"]}


def with_spec(data: Any, spec: dict) -> Any:
    """`data` (a DomainData) under another tabular spec of the same columns: the one the model search
    chose, or the one a run shipped. Its feature names and per-column groups follow the spec."""
    import dataclasses

    return dataclasses.replace(data, preprocessing=spec, feature_names=tuple(spec["feature_names"]),
                               feature_groups=feature_groups_of(spec))


def piecewise_linear(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """(rows,) values -> (rows, len(edges) - 1): bin k is clip((value - edges[k]) / (edges[k+1] - edges[k]), 0, 1)."""
    edges = np.asarray(edges, dtype=np.float64)
    lower, width = edges[:-1], np.diff(edges)
    return np.clip((np.asarray(values, dtype=np.float64)[:, None] - lower) / width, 0.0, 1.0)


def _rows_frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, Mapping):
        return pd.DataFrame([dict(rows)])
    if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
        return pd.DataFrame(list(rows))
    raise TypeError(f"expected a DataFrame, a mapping or a list of mappings, got {type(rows).__name__}")


def encode_tabular(preprocessing: dict, frame: Any) -> np.ndarray:
    """Raw rows (DataFrame, one mapping or a list of mappings) -> float32 (rows, n_features).

    Uses nothing but the spec: unseen categories go to the "(other)" slot, missing or
    unparseable numbers to the train median (and the missing indicator)."""
    if not isinstance(preprocessing, Mapping) or preprocessing.get("format") != FORMAT:
        found = preprocessing.get("format") if isinstance(preprocessing, Mapping) else type(preprocessing).__name__
        raise InputError(f"the preprocessing spec has format {found!r}, expected {FORMAT!r}",
                         fix="use the preprocessing.json written beside the model by the same EdgeAudit run")
    rows = _rows_frame(frame)
    wanted = [c["name"] for c in preprocessing["columns"]]
    absent = [c for c in wanted if c not in rows.columns]
    if absent:
        raise InputError(f"the rows to encode lack column(s) {quote_list(absent)}",
                         fix=f"supply every column the model was trained on: {quote_list(wanted, 40)}")
    out = np.zeros((len(rows), int(preprocessing["n_features"])), dtype=np.float32)
    for column in preprocessing["columns"]:
        series = rows[column["name"]]
        idx = column["indices"]
        if column["kind"] == "numeric":
            values = to_numeric(series, column.get("decimal", "."))
            missing = values.isna().to_numpy()
            filled = values.fillna(column["median"]).to_numpy(dtype=np.float64)
            if column.get("edges"):
                bins = len(column["edges"]) - 1
                out[:, idx[:bins]] = piecewise_linear(filled, column["edges"]).astype(np.float32)
            else:
                out[:, idx[0]] = ((filled - column["mean"]) / column["std"]).astype(np.float32)
            if column["missing_indicator"]:
                out[:, idx[-1]] = missing.astype(np.float32)
        else:
            position = {value: i for i, value in enumerate(column["categories"])}
            other = len(idx) - 1
            slots = category_series(series).map(position).fillna(other).to_numpy(dtype=np.int64)
            out[np.arange(len(rows)), np.asarray(idx, dtype=np.int64)[slots]] = 1.0
    return out
