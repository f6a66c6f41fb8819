"""The tabular preprocessing spec (format "edgeaudit.tabular.v1"): fitted on train, applied anywhere.

Numeric: median imputation, a missing-indicator input when more than 1 % of train values
are missing, then standardisation with the train mean / std (std 0 -> 1). Categorical:
one-hot over the train vocabulary (the 50 most frequent values), with "(missing)" as a
value and an "(other)" slot for anything unseen. The spec is JSON-able and ships beside
every .tflite; `encode_tabular` applies only the spec, so raw user rows can be encoded
anywhere (see HOW_TO_USE).
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
    "ignored (the sensitive columns and the label are not model inputs unless listed)."
)


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
            out[:, idx[0]] = ((filled - column["mean"]) / column["std"]).astype(np.float32)
            if column["missing_indicator"]:
                out[:, idx[1]] = missing.astype(np.float32)
        else:
            position = {value: i for i, value in enumerate(column["categories"])}
            other = len(idx) - 1
            slots = category_series(series).map(position).fillna(other).to_numpy(dtype=np.int64)
            out[np.arange(len(rows)), np.asarray(idx, dtype=np.int64)[slots]] = 1.0
    return out
