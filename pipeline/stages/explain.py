"""SHAP explanations per ORIGINAL column for tabular binary classifiers (float vs int8 ...).

Pure functions: no file I/O, no TensorFlow/Keras import. Every model arrives as a plain
batched predict callable ``f(x: float32[n, d]) -> float[n]`` of probabilities (a Keras
model, the LiteRT int8 interpreter, ...), and every model is explained by the SAME
model-agnostic explainer with the SAME method, masker, background rows, seed and
permutations, so their explanations are comparable.

Method (what "one SHAP value per column" means here)
----------------------------------------------------
* The game: the players are the G ORIGINAL columns of ``feature_groups`` (not the d
  encoded inputs), an independent (interventional) masker over a background sample,
  identity link, so SHAP values are in probability units and
  ``sum(values) == f(x) - E_background[f]``.
* Masking is done at the level of ORIGINAL columns: each column (a numeric value, or its
  whole one-hot block) is kept from x or replaced from a background row as a unit. This
  is feasible in shap 0.51, but not with a stock masker: ``shap.maskers.Partition`` with
  a clustering that encodes the groups only constrains the permutation order (and its
  binary tree also imposes a hierarchy between groups, giving Owen-like rather than
  Shapley values) while still toggling one-hot inputs one at a time. So ``_GroupMasker``
  implements the (duck-typed) masker protocol that ``shap.utils.MaskedModel`` drives:
  ``shape = (N, G)``, ``invariants(x)`` (background rows that already equal x on a
  column, e.g. the same category, are not re-evaluated) and shap's "delta masking" call.
  Masked inputs never contain impossible one-hot patterns (two categories active), which
  explaining encoded inputs and summing SHAP values within a group would evaluate.
* Two ways to compute the values of that game, recorded as ``settings["method"]``:

  - ``"exact"``: ``shap.ExactExplainer`` with the same masker evaluates all 2^G
    coalitions (in Gray-code order, so each step toggles one column and re-runs only the
    background rows that differ from x on it) and weights them with the Shapley
    coefficients: the exact Shapley values, checked against a brute-force enumeration in
    the tests. It costs up to 2^G x N model rows per explained row (the fraud data: 2^12
    x 100 = 409,600, about 0.4-0.8 s per row and model on 2 CPU cores with LiteRT).
  - ``"permutation"``: ``shap.PermutationExplainer`` (antithetic permutation sampling),
    ``max_evals = permutations * (2G + 1)`` (default ``permutations=2``), at most
    ``permutations * (2G + 1) * N`` model rows per row. One antithetic (forward +
    reverse) permutation already gives exact Shapley values for any model with at most
    pairwise interactions between columns (linear, additive, pairwise); for other models
    the values are an ESTIMATE, whose error the explanation measures (below). Every model
    is explained with the same seed, hence the same permutations, so that noise is largely
    common to float and int8 and cancels in their comparison.

  ``method="auto"`` (the default) is exact when ``2^G * N <= exact_max_model_rows``
  (default ``DEFAULT_EXACT_MAX_MODEL_ROWS = 2^12 * 100``) and the masked inputs of one
  row (2^G * N * d float32, built at once by shap) fit ``EXACT_MAX_MASKED_BYTES``; the
  image regions (64) and window cells (70) are sampled. Additivity is exact either way:
  every permutation telescopes from E_B[f] to f(x), and the exact values sum to it.
* Measured sampling error: where values are sampled, ``error_rows`` of the explained
  rows (a seeded sample; default a tenth, at least 2, at most 5) are explained again per
  model, exactly when ``2^G * N`` is within 4x the exact budget, else with a reference of
  ``reference_permutations`` (default 16) antithetic permutations in two independent
  halves (seeds seed+1 and seed+2), whose half-difference estimates the reference's own
  error. ``models[name]["sampling_error"]`` holds that model's max and mean
  |sampled - reference| (``max_abs_error_vs_exact``, ``mean_abs_error_vs_exact``),
  ``settings["sampling_error"]`` the largest over the models and how they were measured.
* Rows are explained with ``explain_row`` one by one, not ``explainer(X)``: shap 0.51's
  ``Explainer.__call__`` rebinds its ``main_effects`` flag to a list, so from the second
  row on it also computes (and discards) main effects, ~1/3 more work.
  ``PermutationExplainer`` reseeds numpy's global RNG; its state is restored after.
  Sampled cost, two permutations: at most ``2 * (2*30 + 1) * 100 = 12,200`` model rows
  per explained row for 30 columns and 100 background rows (~12 ms at LiteRT's ~1 us per
  row); measured with a numpy MLP (d = 150, G = 30): ~2 s per model per 100 rows on 2
  cores, plus a one-off ~2.5 s numba compile of shap's output kernel per process.
* Background: at most ``max_background`` (default 100) rows, a uniform sample without
  replacement (seeded). Not ``shap.kmeans``: its weighted centroids are fractional
  one-hot rows that no real example has.
* Additivity is checked against f itself: per explained row
  ``|sum_g phi[i, g] - (f(x_i) - mean_k f(B_k))|``, both predictions made by calling f
  directly, not taken from shap.

Returned dict (JSON-able except for the ``"_arrays"`` key, see ``without_arrays``)
----------------------------------------------------------------------------------
::

    {"explainer": "shap.ExactExplainer" | "shap.PermutationExplainer",
     "settings": {...},          # method, method_description, permutations, max_evals,
                                 # sampling_error (None when exact), ...
     "setup_seconds": s,     # shap import + one-off numba compile in this call (~0 once warm)
     "feature_columns": [column, ...],           # order of feature_groups
     "reference": model_name,
     "models": {name: {
         "base_value": E_B[f],  "seconds": s, "seconds_per_100_rows": s * 100 / n,
         "predict_calls": int, "predict_rows": int,   # cost of the explanation
         "global_importance": {column: mean |phi|}    # sorted descending
         "additivity": {"max_abs_error": e, "mean_abs_error": e},
         "sampling_error": {...},                     # sampled values only (see Method)
         "local": [{"row_id": int, "score": f(x), "base_value": E_B[f],
                    "contributions": {column: phi},    # sorted by |phi| descending
                    "values": {column: shown value}}]}},
     "agreement": {name: {"spearman_rank_correlation_of_global_importance": r | None,
                          "top5_overlap": int, "mean_abs_difference": m}},  # non-reference models
     "_arrays": {"row_ids": int[n], "shap_values": {name: float64[n, G]},
                 "scores": {name: float64[n]}, "column_values": float64[n, G]}}

A local entry may also hold ``"raw_values"`` {column: the value as the data file holds it}
(pipeline.domain.Domain.explain adds them for tables): reports show those, in the user's units.

``"values"``: for a one-hot column (every encoded name of the group is
``"<column>=<category>"``) the active category, ``"(other)"`` when none is active; for
a numeric column the ENCODED (scaled) value as a float. ``column_values`` in
``_arrays`` holds the encoded value of numeric columns and NaN for one-hot columns
(used to colour the beeswarm plot).

``mean_abs_difference`` is the mean over explained rows and columns of
``|phi_model - phi_reference|`` (probability units); the Spearman correlation and the
top-5 overlap compare the global importance vectors. Non-finite numbers become None.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np

PredictFunction = Callable[[np.ndarray], np.ndarray]

DEFAULT_PERMUTATIONS = 2
DEFAULT_MAX_BACKGROUND = 100

# The method: "exact" (every coalition, shap.ExactExplainer) or "permutation" (antithetic
# permutation sampling, shap.PermutationExplainer); "auto" picks exact where it is affordable.
EXACT, PERMUTATION = "exact", "permutation"
METHODS = ("auto", EXACT, PERMUTATION)
# Exact values cost 2^G coalitions x N background rows of model evaluations per explained row
# (fewer where background rows equal the row on a column). "auto" computes them when that is
# at most this many: 2^12 x 100, the fraud data's 12 columns with the default 100 background
# rows. Measured (2 shared CPU cores, LiteRT, fraud MLP, benchmarks/shapley_error.py): about
# 0.4-0.8 s per explained row and model, against 2-8 ms for two antithetic permutations.
DEFAULT_EXACT_MAX_MODEL_ROWS = 2 ** 12 * 100
# shap builds every masked input of a row at once (2^G x N x d float32): at most this many bytes.
EXACT_MAX_MASKED_BYTES = 512 * 2 ** 20
# Sampled values: their error is measured, per model, on a tenth of the explained rows (at
# least 2, at most DEFAULT_ERROR_ROWS), against exact values where those stay within 4x the
# exact budget, else against a reference of this many antithetic permutations (two
# independent halves, whose difference measures the reference's own sampling error). With
# 100 rows explained by 2 permutations that adds 5 x 16 / (100 x 2) = 40 % to the
# explanation's model evaluations; the reference's own error is about sqrt(2 / 16) = 0.35
# times the error measured, which inflates the measured mean error by about 6 %
# (benchmarks/shapley_error.py compares it with a 64-permutation reference).
DEFAULT_ERROR_ROWS = 5
DEFAULT_REFERENCE_PERMUTATIONS = 16
ERROR_REFERENCE_EXACT_FACTOR = 4
# Exact values smaller than this are rounding noise of their 2^G-term sums (see _exact_values).
EXACT_ROUNDING = 1e-12
OTHER_CATEGORY = "(other)"
TOP_GLOBAL = 15
TOP_LOCAL = 12
TOP_BEESWARM = 15


# --------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    """A python float, or None for NaN/inf (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


class _CountingPredict:
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


def _validate_groups(feature_groups: dict[str, list[int]], d: int) -> tuple[list[str], list[np.ndarray]]:
    columns = [str(c) for c in feature_groups]
    if not columns:
        raise ValueError("feature_groups is empty")
    indices = [np.asarray(list(v), dtype=np.intp) for v in feature_groups.values()]
    seen = np.zeros(d, dtype=np.int64)
    for column, idx in zip(columns, indices):
        if idx.size == 0:
            raise ValueError(f"feature_groups[{column!r}] has no encoded indices")
        if idx.min() < 0 or idx.max() >= d:
            raise ValueError(f"feature_groups[{column!r}] has indices outside 0..{d - 1}")
        np.add.at(seen, idx, 1)
    if not np.all(seen == 1):
        missing = np.flatnonzero(seen == 0).tolist()
        repeated = np.flatnonzero(seen > 1).tolist()
        raise ValueError(
            "feature_groups must assign every encoded input to exactly one column; "
            f"unassigned: {missing[:10]}, assigned more than once: {repeated[:10]}"
        )
    return columns, indices


def _is_one_hot(column: str, idx: np.ndarray, feature_names: Sequence[str]) -> bool:
    prefix = f"{column}="
    return all(str(feature_names[i]).startswith(prefix) for i in idx)


def _shown_value(column: str, idx: np.ndarray, feature_names: Sequence[str], row: np.ndarray) -> Any:
    """The raw value shown beside a contribution (see module docstring)."""
    if _is_one_hot(column, idx, feature_names):
        active = [str(feature_names[i])[len(column) + 1:] for i in idx if row[i] > 0.5]
        return " | ".join(active) if active else OTHER_CATEGORY
    if idx.size == 1:
        return _num(row[idx[0]])
    return [_num(row[i]) for i in idx]


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import rankdata

    if a.size < 2:
        return None
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denominator == 0.0:
        return None
    return _num(float(ra @ rb) / denominator)


def _top(columns: list[str], importance: np.ndarray, k: int) -> list[str]:
    # stable: ties keep column order
    order = np.argsort(-importance, kind="stable")
    return [columns[j] for j in order[:k]]


class _GroupMasker:
    """A shap masker whose players are ORIGINAL columns (groups of encoded inputs).

    Interventional ("independent") masking like ``shap.maskers.Independent``, but a
    column is kept from x or replaced from a background row as a whole: all encoded
    inputs of a group (a numeric value, or an entire one-hot block) together. Implements
    the duck-typed masker protocol ``shap.utils.MaskedModel`` uses, including shap's fast
    "delta masking" (a 1-D int array of indices to toggle, negative = keep toggling) and
    ``invariants`` (background rows that already equal x on a column are not re-run).
    """

    supports_delta_masking = True
    immutable_outputs = True
    clustering = None

    def __init__(self, background: np.ndarray, groups: list[np.ndarray]):
        self.data = np.ascontiguousarray(background, dtype=np.float32)
        d = self.data.shape[1]
        self.column_of = np.empty(d, dtype=np.intp)
        self.membership = np.zeros((d, len(groups)), dtype=np.int32)
        for g, idx in enumerate(groups):
            self.column_of[idx] = g
            self.membership[idx, g] = 1
        self.shape = (len(self.data), len(groups))  # (background rows, players)

    def mask_shapes(self, x: np.ndarray) -> list[tuple[int]]:
        return [(self.shape[1],)]

    def invariants(self, x: np.ndarray) -> np.ndarray:
        """[k, g] True where background row k already equals x on every input of column g."""
        differs = (np.asarray(x, dtype=np.float32)[None, :] != self.data).astype(np.int32)
        return (differs @ self.membership) == 0

    def _fill(self, states: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Masked inputs for boolean column states [m, G]: float32 [m * N, d]."""
        keep = states[:, self.column_of]  # [m, d]: True = take x
        m, (n_background, d) = len(states), self.data.shape
        out = np.empty((m, n_background, d), dtype=np.float32)
        out[:] = self.data
        np.copyto(out, x, where=keep[:, None, :])
        return out.reshape(m * n_background, d)

    def __call__(self, mask: np.ndarray, x: np.ndarray):
        x = np.asarray(x, dtype=np.float32)
        if x.shape != self.data.shape[1:]:
            raise ValueError(f"explained row of shape {x.shape}, expected {self.data.shape[1:]}")
        mask = np.asarray(mask)
        if not np.issubdtype(mask.dtype, np.integer):  # a full boolean mask over the G columns
            return (self._fill(mask.astype(bool).reshape(1, -1), x),)

        # delta masking, same encoding as shap.maskers._tabular._delta_masking: each entry
        # toggles one column; a negative entry -(g) - 1 toggles g and continues the same step;
        # the noop value is a step that toggles nothing. Vectorised: ExactExplainer sends
        # 2^G steps at once.
        from shap.utils import MaskedModel

        noop = MaskedModel.delta_mask_noop_value
        mask = mask.astype(np.int64)
        ends = mask >= 0                                   # the last entry of each step
        step = np.concatenate([[0], np.cumsum(ends)[:-1]])  # the step each entry belongs to
        steps = int(ends.sum())
        toggles = np.zeros((steps, self.shape[1]), dtype=np.int32)
        real = mask != noop
        column = np.where(mask[real] < 0, -mask[real] - 1, mask[real])
        np.add.at(toggles, (step[real], column), 1)
        toggles %= 2
        states = (np.cumsum(toggles, axis=0) % 2).astype(bool)
        # background rows to re-run at each step: those that differ from x on a toggled column
        variants = (~self.invariants(x)).astype(np.int32)
        varying = (toggles @ variants.T) > 0
        varying[0] = True
        return (self._fill(states, x),), varying


def _import_shap():
    """shap, imported lazily (1.5-2 s) and without its import-time matplotlib deprecation noise."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


_numba_warm: set[str] = set()


def _warm_up_shap(method: str = PERMUTATION) -> None:
    """Compile shap's numba kernels of `method` once, so the first model's timing is not inflated."""
    if method in _numba_warm:
        return
    shap = _import_shap()

    rng_state = np.random.get_state()
    try:
        masker = _GroupMasker(np.zeros((2, 2), dtype=np.float32), [np.array([0]), np.array([1])])
        row = np.array([[2.0, 3.0]], dtype=np.float32)
        function = lambda x: x.sum(1).astype(np.float64)  # noqa: E731
        if method == EXACT:
            _exact_values(shap, function, masker, row)
        else:
            _permutation_values(shap, function, masker, row, permutations=1, seed=0)
    finally:
        np.random.set_state(rng_state)
    _numba_warm.add(method)


def exact_model_rows(players: int, background_rows: int) -> int:
    """Model rows that exact values cost per explained row: 2^G coalitions x N background rows."""
    return (1 << int(players)) * int(background_rows)


def exact_is_affordable(players: int, background_rows: int, encoded_features: int,
                        max_model_rows: int = DEFAULT_EXACT_MAX_MODEL_ROWS) -> bool:
    """Whether exact values fit the model-row budget and the masked inputs' memory cap."""
    rows = exact_model_rows(players, background_rows)
    return rows <= max_model_rows and rows * int(encoded_features) * 4 <= EXACT_MAX_MASKED_BYTES


def _exact_values(shap, predict, masker: "_GroupMasker", rows: np.ndarray) -> np.ndarray:
    """Exact Shapley values of every row: shap.ExactExplainer over all 2^G coalitions of the masker's players.

    ExactExplainer walks the coalitions in Gray-code order through shap's delta masking (the
    same protocol the permutation explainer uses), so each step toggles one column and only
    the background rows that differ from x on it are re-evaluated; columns on which every
    background row equals x are left out (their value is exactly 0, a null player).
    """
    explainer = shap.ExactExplainer(predict, masker)
    values = np.empty((len(rows), masker.shape[1]))
    for i in range(len(rows)):
        result = explainer.explain_row(rows[i], max_evals="auto", main_effects=False, error_bounds=False,
                                       batch_size="auto", outputs=None, interactions=1, silent=True)
        values[i] = np.asarray(result["values"], dtype=np.float64).reshape(masker.shape[1])
    # Each value is a signed sum of 2^G weighted coalition values: a player with no effect
    # gets rounding noise (~1e-17), not 0. Below EXACT_ROUNDING (far under the ~1e-8
    # resolution of float32 model outputs) it is 0, so e.g. a constant model has no ranking.
    values[np.abs(values) < EXACT_ROUNDING] = 0.0
    return values


def _permutation_values(shap, predict, masker: "_GroupMasker", rows: np.ndarray, *, permutations: int,
                        seed: int) -> np.ndarray:
    """Shapley values estimated from `permutations` antithetic permutations per row (reseeds numpy's RNG)."""
    explainer = shap.PermutationExplainer(predict, masker, seed=int(seed))
    max_evals = int(permutations) * (2 * masker.shape[1] + 1)
    # explain_row per row rather than explainer(rows): in shap 0.51 Explainer.__call__
    # rebinds `main_effects` to a list, so from the 2nd row on every row also pays
    # for main effects (~2G extra masked evaluations) that are never used.
    values = np.empty((len(rows), masker.shape[1]))
    for i in range(len(rows)):
        result = explainer.explain_row(rows[i], max_evals=max_evals, main_effects=False, error_bounds=False,
                                       batch_size="auto", outputs=None, silent=True)
        values[i] = np.asarray(result["values"], dtype=np.float64).reshape(masker.shape[1])
    return values


def _error_positions(n: int, count: int, seed: int) -> np.ndarray:
    """The explained rows (positions) whose sampling error is measured: a seeded sample, in order."""
    count = min(int(count), n)
    return np.sort(np.random.default_rng(seed + 1).choice(n, size=count, replace=False))


def _sampling_error(shap, predict, masker: "_GroupMasker", rows: np.ndarray, sampled: np.ndarray, *,
                    exact_reference: bool, reference_permutations: int, seed: int) -> dict:
    """Error of the sampled values `sampled` [k, G] of `rows` against exact values (or a reference).

    exact_reference: compare with exact Shapley values. Otherwise the reference is the mean
    of two independent halves of `reference_permutations` antithetic permutations (seeds
    seed + 1 and seed + 2, neither the explanation's), and half their difference estimates the
    reference's own sampling error, reported beside the error.
    """
    start = time.perf_counter()
    rows_before = predict.rows
    if exact_reference:
        reference = _exact_values(shap, predict, masker, rows)
        noise = None
    else:
        half = max(1, int(reference_permutations) // 2)
        first = _permutation_values(shap, predict, masker, rows, permutations=half, seed=seed + 1)
        second = _permutation_values(shap, predict, masker, rows, permutations=half, seed=seed + 2)
        reference = (first + second) / 2.0
        noise = np.abs(first - second) / 2.0
    difference = np.abs(np.asarray(sampled, dtype=np.float64) - reference)
    result = {
        "max_abs_error_vs_exact": _num(difference.max()),
        "mean_abs_error_vs_exact": _num(difference.mean()),
        "mean_abs_value": _num(np.abs(reference).mean()),
        "max_abs_value": _num(np.abs(reference).max()),
        "seconds": _num(time.perf_counter() - start),
        "model_rows": int(predict.rows - rows_before),
    }
    if noise is not None:
        result["reference_max_abs_error"] = _num(noise.max())
        result["reference_mean_abs_error"] = _num(noise.mean())
    return result


# --------------------------------------------------------------------------- explain


def local_row_positions(row_ids: Sequence[int], local_row_ids: Sequence[int]) -> tuple[dict[int, int], list[int]]:
    """Row id -> its position among the explained rows, and the local rows as ints (each must be explained)."""
    position_of = {int(r): i for i, r in enumerate(row_ids)}
    local_row_ids = [int(r) for r in local_row_ids]
    unknown = [r for r in local_row_ids if r not in position_of]
    if unknown:
        raise ValueError(f"local_row_ids {unknown} are not in row_ids")
    return position_of, local_row_ids


def explain_tabular(
    *,
    predict_functions: dict[str, PredictFunction],
    background: np.ndarray,
    rows: np.ndarray,
    row_ids: Sequence[int],
    local_row_ids: Sequence[int],
    feature_names: Sequence[str],
    feature_groups: dict[str, list[int]],
    seed: int = 0,
    reference: str | None = None,
    permutations: int = DEFAULT_PERMUTATIONS,
    max_background: int = DEFAULT_MAX_BACKGROUND,
    method: str = "auto",
    exact_max_model_rows: int = DEFAULT_EXACT_MAX_MODEL_ROWS,
    error_rows: int | None = None,
    reference_permutations: int = DEFAULT_REFERENCE_PERMUTATIONS,
) -> dict:
    """Per-column SHAP values of every model on `rows`; see the module docstring.

    reference: the model the others are compared with (default: the first key of
    predict_functions). max_background: background rows used (a seeded uniform sample when
    more are given). method: "exact" (all 2^G coalitions), "permutation" (sampled), or
    "auto": exact when 2^G x background rows <= exact_max_model_rows (and the masked inputs
    fit EXACT_MAX_MASKED_BYTES), else sampled. permutations: antithetic permutations per
    explained row when sampled (max_evals = permutations * (2G + 1)). error_rows: sampled
    values are compared with exact values (or a reference of reference_permutations
    antithetic permutations where exact ones are too costly) on this many explained rows
    (None: a tenth of them, at least 2, at most DEFAULT_ERROR_ROWS; 0: not measured).
    """
    setup_start = time.perf_counter()
    shap = _import_shap()

    names, reference = model_names_and_reference(predict_functions, reference)
    if int(permutations) < 1:
        raise ValueError("permutations must be at least 1")
    if int(max_background) < 1:
        raise ValueError("max_background must be at least 1")
    if method not in METHODS:
        raise ValueError(f"method {method!r}; expected one of {METHODS}")
    if error_rows is None:
        error_rows = min(DEFAULT_ERROR_ROWS, max(2, len(rows) // 10))
    if int(error_rows) < 0 or int(reference_permutations) < 2:
        raise ValueError("error_rows must be at least 0 and reference_permutations at least 2")

    rows = np.asarray(rows, dtype=np.float32)
    background = np.asarray(background, dtype=np.float32)
    if rows.ndim != 2 or background.ndim != 2 or rows.shape[1] != background.shape[1]:
        raise ValueError(f"rows {rows.shape} and background {background.shape} must be 2-D with equal widths")
    n, d = rows.shape
    if n == 0 or len(background) == 0:
        raise ValueError("need at least one row to explain and one background row")
    if len(feature_names) != d:
        raise ValueError(f"{len(feature_names)} feature_names for {d} encoded inputs")
    row_ids = [int(r) for r in row_ids]
    if len(row_ids) != n:
        raise ValueError(f"{len(row_ids)} row_ids for {n} rows")
    position_of, local_row_ids = local_row_positions(row_ids, local_row_ids)
    columns, groups = _validate_groups(feature_groups, d)
    G = len(columns)

    given_background = len(background)
    if given_background > max_background:
        chosen = np.sort(np.random.default_rng(seed).choice(given_background, size=int(max_background), replace=False))
        background = background[chosen]
    N = len(background)

    masker = _GroupMasker(background, groups)
    affordable = exact_is_affordable(G, N, d, exact_max_model_rows)
    if method == "auto":
        method = EXACT if affordable else PERMUTATION
    elif method == EXACT and exact_model_rows(G, N) * d * 4 > EXACT_MAX_MASKED_BYTES:
        raise ValueError(f"exact values over {G} players need 2^{G} x {N} masked rows of {d} inputs at once, more "
                         f"than {EXACT_MAX_MASKED_BYTES // 2 ** 20} MiB; use method='auto' or 'permutation'")
    exact = method == EXACT
    max_evals = (1 << G) if exact else int(permutations) * (2 * G + 1)
    if not exact and error_rows:
        error_at = _error_positions(n, error_rows, seed)
        exact_reference = exact_is_affordable(G, N, d, ERROR_REFERENCE_EXACT_FACTOR * exact_max_model_rows)
    else:
        error_at, exact_reference = np.zeros(0, dtype=np.intp), False

    _warm_up_shap(method)
    if len(error_at):
        _warm_up_shap(EXACT if exact_reference else PERMUTATION)
    setup_seconds = time.perf_counter() - setup_start

    shap_values: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    models: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    rng_state = np.random.get_state()  # PermutationExplainer reseeds numpy's global RNG
    try:
        for name in names:
            predict = _CountingPredict(name, predict_functions[name])
            start = time.perf_counter()
            if exact:
                values = _exact_values(shap, predict, masker, rows)
            else:
                values = _permutation_values(shap, predict, masker, rows, permutations=permutations, seed=seed)
            calls, evaluated = predict.calls, predict.rows
            f_x = predict(rows)
            f_background = predict(background)
            seconds = time.perf_counter() - start
            if len(error_at):
                errors[name] = _sampling_error(shap, predict, masker, rows[error_at], values[error_at],
                                               exact_reference=exact_reference,
                                               reference_permutations=reference_permutations, seed=seed)

            base_value = float(f_background.mean())
            error = np.abs(values.sum(axis=1) - (f_x - base_value))
            importance = np.abs(values).mean(axis=0)
            order = np.argsort(-importance, kind="stable")
            shap_values[name], scores[name] = values, f_x

            local = []
            for row_id in local_row_ids:
                i = position_of[row_id]
                by_size = np.argsort(-np.abs(values[i]), kind="stable")
                local.append({
                    "row_id": row_id,
                    "score": _num(f_x[i]),
                    "base_value": _num(base_value),
                    "contributions": {columns[j]: _num(values[i, j]) for j in by_size},
                    "values": {
                        columns[j]: _shown_value(columns[j], groups[j], feature_names, rows[i]) for j in by_size
                    },
                })
            models[name] = {
                "base_value": _num(base_value),
                "seconds": _num(seconds),
                "seconds_per_100_rows": _num(seconds * 100.0 / n),
                "predict_calls": int(calls),
                "predict_rows": int(evaluated),
                "global_importance": {columns[j]: _num(importance[j]) for j in order},
                "additivity": {"max_abs_error": _num(error.max()), "mean_abs_error": _num(error.mean())},
                "local": local,
            }
            if name in errors:
                models[name]["sampling_error"] = errors[name]
    finally:
        np.random.set_state(rng_state)

    agreement: dict[str, dict] = {}
    ref_values = shap_values[reference]
    ref_importance = np.abs(ref_values).mean(axis=0)
    for name in names:
        if name == reference:
            continue
        importance = np.abs(shap_values[name]).mean(axis=0)
        agreement[name] = {
            "spearman_rank_correlation_of_global_importance": _spearman(importance, ref_importance),
            "top5_overlap": len(set(_top(columns, importance, 5)) & set(_top(columns, ref_importance, 5))),
            "mean_abs_difference": _num(np.abs(shap_values[name] - ref_values).mean()),
        }

    column_values = np.full((n, G), np.nan)
    for j, (column, idx) in enumerate(zip(columns, groups)):
        if idx.size == 1 and not _is_one_hot(column, idx, feature_names):
            column_values[:, j] = rows[:, idx[0]]

    cost = exact_model_rows(G, N)
    if exact:
        description = (f"exact Shapley values: all 2^{G} = {1 << G:,} coalitions of the {G} players, each the mean "
                       f"over {N} background rows (shap.ExactExplainer)")
    else:
        plural = "s" if int(permutations) > 1 else ""
        description = (f"sampled Shapley values: {int(permutations)} antithetic permutation{plural} per row "
                       f"(shap.PermutationExplainer, {max_evals} coalitions of 2^{G}); exact for models without "
                       f"interactions of three or more players, otherwise an estimate")
    settings = {
        "method": method,
        "method_description": description,
        "exact_rule": (f"exact when 2^players x background rows <= {int(exact_max_model_rows):,} model rows per "
                       f"explained row and the masked inputs fit {EXACT_MAX_MASKED_BYTES // 2 ** 20} MiB; here "
                       f"2^{G} x {N} = {float(cost):,.0f}" if cost < 10 ** 15 else
                       f"exact when 2^players x background rows <= {int(exact_max_model_rows):,} model rows per "
                       f"explained row; here 2^{G} x {N}"),
        "exact_affordable": bool(affordable),
        "masking": "interventional, per original column: a numeric input or a whole one-hot block "
                   "is kept from x or taken from a background row as a unit (_GroupMasker)",
        "link": "identity (probability units)",
        "permutations": None if exact else int(permutations),
        "max_evals": max_evals,
        "max_evals_rule": "2 ** columns (every coalition)" if exact else "permutations * (2 * columns + 1)",
        "columns": G,
        "encoded_features": d,
        "explained_rows": n,
        "local_rows": len(local_row_ids),
        "background_rows": N,
        "background_rows_given": given_background,
        "background_sampling": "all" if N == given_background else "uniform without replacement (seeded)",
        "seed": int(seed),
        "additivity_target": "f(x) - mean f(background), both from the predict function",
        "sampling_error": _error_summary(errors, error_at, row_ids, exact_reference=exact_reference,
                                         reference_permutations=reference_permutations, G=G) if errors else None,
        "shap_version": str(shap.__version__),
    }
    return {
        "explainer": "shap.ExactExplainer" if exact else "shap.PermutationExplainer",
        "settings": settings,
        "setup_seconds": _num(setup_seconds),
        "feature_columns": columns,
        "reference": reference,
        "models": models,
        "agreement": agreement,
        "_arrays": {
            "row_ids": np.asarray(row_ids, dtype=np.int64),
            "shap_values": shap_values,
            "scores": scores,
            "column_values": column_values,
        },
    }


def _error_summary(errors: dict[str, dict], error_at: np.ndarray, row_ids: list[int], *, exact_reference: bool,
                   reference_permutations: int, G: int) -> dict:
    """settings["sampling_error"]: the worst model's error, and how it was measured."""
    def worst(key):
        found = [e[key] for e in errors.values() if e.get(key) is not None]
        return max(found) if found else None

    half = max(1, int(reference_permutations) // 2)
    summary = {
        "max_abs_error_vs_exact": worst("max_abs_error_vs_exact"),
        "mean_abs_error_vs_exact": worst("mean_abs_error_vs_exact"),
        "mean_abs_value": worst("mean_abs_value"),
        "rows": len(error_at),
        "row_ids": [row_ids[i] for i in error_at],
        "reference": (f"exact Shapley values (all 2^{G} coalitions, shap.ExactExplainer)" if exact_reference else
                      f"a reference of {2 * half} antithetic permutations (two halves of {half}, seeds seed+1 and "
                      f"seed+2), as exact values over 2^{G} coalitions are too costly"),
        "reference_exact": bool(exact_reference),
        "how": ("per model, |sampled value - reference value| over every player of the measured rows; the figures "
                "here are the largest over the models (each model's are under models[name]['sampling_error'])"),
        "by_model": {name: {k: e.get(k) for k in ("max_abs_error_vs_exact", "mean_abs_error_vs_exact")}
                     for name, e in errors.items()},
    }
    if not exact_reference:
        summary["reference_max_abs_error"] = worst("reference_max_abs_error")
        summary["reference_mean_abs_error"] = worst("reference_mean_abs_error")
    return summary


def model_names_and_reference(predict_functions: dict, reference: str | None) -> tuple[list[str], str]:
    """The models' names, and the reference they are compared with (default: the first)."""
    if not predict_functions:
        raise ValueError("predict_functions is empty")
    names = [str(n) for n in predict_functions]
    reference = names[0] if reference is None else str(reference)
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the models {names}")
    return names, reference


def without_arrays(explanation: dict) -> dict:
    """The explanation without its numpy part: ready for json.dumps(allow_nan=False)."""
    return {k: v for k, v in explanation.items() if k != "_arrays"}


# --------------------------------------------------------------------------- figures

_MODEL_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _colour(k: int) -> str:
    return _MODEL_COLOURS[k % len(_MODEL_COLOURS)]


def _short(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _grouped_barh(ax, labels: list[str], series: dict[str, list[float]]) -> None:
    """Horizontal bars, one group per label (top label first), one bar per model."""
    k = max(len(series), 1)
    height = 0.8 / k
    y = np.arange(len(labels))
    for m, (name, values) in enumerate(series.items()):
        offset = (m - (k - 1) / 2) * height
        ax.barh(y + offset, values, height=height, color=_colour(m), label=name)
    ax.set_yticks(y)
    ax.set_yticklabels([_short(lbl) for lbl in labels], fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)


def explanation_figures(explanation: dict) -> dict:
    """matplotlib Figures (no pyplot state) for an `explain_tabular` result.

    "shap_global" and "shap_local_<row_id>" need only the JSON part (so they can be
    redrawn from a saved explanation); "shap_beeswarm_<model>" needs "_arrays" and is
    skipped without it.
    """
    from matplotlib.figure import Figure

    models = explanation["models"]
    names = list(models)
    columns = list(explanation["feature_columns"])
    reference = explanation.get("reference") or names[0]
    figures: dict = {}

    def value(x):
        return 0.0 if x is None else float(x)

    # (a) global importance, top columns of the reference model
    ref_importance = models[reference]["global_importance"]
    top = sorted(columns, key=lambda c: -value(ref_importance.get(c)))[:TOP_GLOBAL]
    fig = Figure(figsize=(8, 1.2 + 0.38 * len(top) * max(1, len(names)) ** 0.5))
    ax = fig.add_subplot()
    _grouped_barh(ax, top, {n: [value(models[n]["global_importance"].get(c)) for c in top] for n in names})
    ax.set_xlabel("mean |SHAP value| (probability)")
    ax.set_title(f"Global importance per column (top {len(top)}, ranked by {reference})", fontsize=10)
    fig.tight_layout()
    figures["shap_global"] = fig

    # (b) one figure per local row: contributions per column, models side by side
    local_by_model = {n: {entry["row_id"]: entry for entry in models[n]["local"]} for n in names}
    for row_id in local_by_model[names[0]]:
        entries = {n: local_by_model[n].get(row_id) for n in names}
        entries = {n: e for n, e in entries.items() if e is not None}
        size = {c: max(abs(value(e["contributions"].get(c))) for e in entries.values()) for c in columns}
        ranked = sorted(columns, key=lambda c: -size[c])
        shown, rest = ranked[:TOP_LOCAL], ranked[TOP_LOCAL:]
        shown_entry = entries.get(reference, next(iter(entries.values())))
        shown_values = {**shown_entry["values"], **(shown_entry.get("raw_values") or {})}  # the user's units first
        labels = []
        for c in shown:
            v = shown_values.get(c)
            v = f"{v:.3g}" if isinstance(v, float) else str(v)
            labels.append(f"{c} = {v}")
        series = {n: [value(e["contributions"].get(c)) for c in shown] for n, e in entries.items()}
        if rest:
            labels.append(f"({len(rest)} other columns)")
            for n, e in entries.items():
                series[n].append(sum(value(e["contributions"].get(c)) for c in rest))
        fig = Figure(figsize=(9, 1.4 + 0.2 * len(series) + 0.36 * len(labels) * max(1, len(series)) ** 0.5))
        ax = fig.add_subplot()
        _grouped_barh(ax, labels, series)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("SHAP contribution to the score (probability)")
        title = "\n".join(
            f"{n}: f(x)={value(e['score']):.3f}, base={value(e['base_value']):.3f}" for n, e in entries.items()
        )
        ax.set_title(f"Row {row_id}\n{title}", fontsize=9)
        fig.tight_layout()
        figures[f"shap_local_{row_id}"] = fig

    # (c) beeswarm-like strip plot per model (needs the arrays)
    arrays = explanation.get("_arrays")
    if arrays:
        column_values = np.asarray(arrays["column_values"], dtype=np.float64)
        for name in names:
            values = np.asarray(arrays["shap_values"][name], dtype=np.float64)
            importance = np.abs(values).mean(axis=0)
            order = np.argsort(-importance, kind="stable")[:TOP_BEESWARM]
            fig = Figure(figsize=(8, 1.5 + 0.35 * len(order)))
            ax = fig.add_subplot()
            jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=values.shape[0])
            scatter = None
            for pos, j in enumerate(order):
                colour_values = column_values[:, j]
                numeric = np.isfinite(colour_values)
                if (~numeric).any():
                    ax.scatter(values[~numeric, j], pos + jitter[~numeric], s=8, color="#999999", alpha=0.7)
                if numeric.any():
                    cv = colour_values[numeric]
                    low, high = np.nanpercentile(cv, [5, 95]) if cv.size > 1 else (cv[0], cv[0])
                    scaled = np.clip((cv - low) / (high - low), 0, 1) if high > low else np.full(cv.shape, 0.5)
                    scatter = ax.scatter(values[numeric, j], pos + jitter[numeric], s=8, c=scaled,
                                         cmap="coolwarm", vmin=0, vmax=1, alpha=0.8)
            ax.set_yticks(np.arange(len(order)))
            ax.set_yticklabels([_short(columns[j]) for j in order], fontsize=8)
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.grid(axis="x", alpha=0.3)
            ax.set_xlabel("SHAP value (probability)")
            ax.set_title(f"{name}: SHAP value per row and column (grey: categorical column)", fontsize=10)
            if scatter is not None:
                bar = fig.colorbar(scatter, ax=ax, pad=0.01, ticks=[0, 1])
                bar.ax.set_yticklabels(["low", "high"], fontsize=8)
                bar.set_label("encoded value (5th-95th percentile)", fontsize=8)
            fig.tight_layout()
            figures[f"shap_beeswarm_{name}"] = fig

    return figures
