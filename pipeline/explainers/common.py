"""Plumbing every explainer shares: predict-call counting, shap's import, JSON numbers, comparisons.

Each explainer (tabular, image, window through `grouped_permutation`; text) reports, per model,
how well its values add up to the model's output (``additivity_summary``) and, per model other
than the reference, how its explanation agrees with the reference model's
(``agreement_with_reference``): both are computed here, the same way for every modality.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

PredictFunction = Callable[[np.ndarray], np.ndarray]

MODEL_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def finite_or_none(value: Any) -> float | None:
    """A python float, or None for NaN/inf (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def import_shap():
    """shap, imported lazily (1.5-2 s) and without its import-time matplotlib deprecation noise."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


class CountingPredict:
    """Wraps a predict function: float32 input, float64 1-D output, call/row counters."""

    def __init__(self, name: str, function: PredictFunction):
        self.name = name
        self.function = function
        self.calls = 0
        self.rows = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.asarray(self.function(x), dtype=np.float64)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (len(x),):
            raise ValueError(
                f"predict function {self.name!r} returned shape {out.shape} for {len(x)} rows; "
                f"expected one probability per row, shape ({len(x)},)"
            )
        if not np.all(np.isfinite(out)):
            raise ValueError(f"predict function {self.name!r} returned non-finite scores")
        self.calls += 1
        self.rows += len(x)
        return out


def model_names_and_reference(predict_functions: dict, reference: str | None) -> tuple[list[str], str]:
    """The models' names, and the reference they are compared with (default: the first)."""
    if not predict_functions:
        raise ValueError("predict_functions is empty")
    names = [str(n) for n in predict_functions]
    reference = names[0] if reference is None else str(reference)
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the models {names}")
    return names, reference


def local_row_positions(row_ids: Sequence[int], local_row_ids: Sequence[int]) -> tuple[dict[int, int], list[int]]:
    """Row id -> its position among the explained rows, and the local rows as ints (each must be explained)."""
    position_of = {int(r): i for i, r in enumerate(row_ids)}
    local_row_ids = [int(r) for r in local_row_ids]
    unknown = [r for r in local_row_ids if r not in position_of]
    if unknown:
        raise ValueError(f"local_row_ids {unknown} are not in row_ids")
    return position_of, local_row_ids


def only_models(explanation: dict, keep: list[str]) -> dict:
    """The explanation of the models in `keep` alone: every per-model mapping (top level and in "_arrays")
    trimmed to them. A per-model mapping is a dict whose keys are all explained models' names."""
    every = set(explanation.get("models") or {})

    def trim(value):
        if isinstance(value, dict) and value and set(value) <= every:
            return {name: item for name, item in value.items() if name in keep}
        return value

    trimmed = {key: trim(value) for key, value in explanation.items()}
    if isinstance(explanation.get("_arrays"), dict):
        trimmed["_arrays"] = {key: trim(value) for key, value in explanation["_arrays"].items()}
    return trimmed


def without_arrays(explanation: dict) -> dict:
    """The explanation without its numpy part: ready for json.dumps(allow_nan=False)."""
    return {k: v for k, v in explanation.items() if k != "_arrays"}


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two vectors (average ranks for ties); None when undefined."""
    from scipy.stats import rankdata

    if a.size < 2:
        return None
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denominator == 0.0:
        return None
    return finite_or_none(float(ra @ rb) / denominator)


def top_names(names: list[str], importance: np.ndarray, k: int) -> list[str]:
    """The k names of largest importance; stable: ties keep the names' order."""
    order = np.argsort(-importance, kind="stable")
    return [names[j] for j in order[:k]]


def additivity_summary(errors: np.ndarray) -> dict:
    """models[name]["additivity"]: the largest and mean |sum of the values - (f(x) - base value)| per row."""
    return {"max_abs_error": finite_or_none(errors.max()), "mean_abs_error": finite_or_none(errors.mean())}


def agreement_with_reference(names: list[str], importance: np.ndarray, reference_importance: np.ndarray,
                             mean_abs_difference: float | None) -> dict:
    """agreement[model]: how a model's explanation agrees with the reference model's.

    names: the players (or tokens) the two global-importance vectors are over, in their order;
    mean_abs_difference: the mean |phi_model - phi_reference| over explained rows and players.
    """
    overlap = set(top_names(names, importance, 5)) & set(top_names(names, reference_importance, 5))
    return {
        "spearman_rank_correlation_of_global_importance": spearman(importance, reference_importance),
        "top5_overlap": len(overlap),
        "mean_abs_difference": mean_abs_difference,
    }


def model_colour(k: int) -> str:
    """The colour of the k-th model in every explanation figure."""
    return MODEL_COLOURS[k % len(MODEL_COLOURS)]
