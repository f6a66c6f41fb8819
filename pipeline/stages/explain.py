"""SHAP explanations per ORIGINAL column for tabular binary classifiers (float vs int8 ...).

Pure functions: no file I/O, no TensorFlow/Keras import. Every model arrives as a plain
batched predict callable ``f(x: float32[n, d]) -> float[n]`` of probabilities (a Keras
model, the LiteRT int8 interpreter, ...), and every model is explained by the SAME
model-agnostic explainer with the SAME masker, background rows, seed and permutations,
so their explanations are comparable.

Method (what "one SHAP value per column" means here)
----------------------------------------------------
* Explainer: ``shap.PermutationExplainer`` (antithetic permutation sampling) with an
  independent (interventional) masker over a background sample, identity link, so SHAP
  values are in probability units and ``sum(values) == f(x) - E_background[f]``.
* Masking is done at the level of ORIGINAL columns: the players of the Shapley game
  are the G columns of ``feature_groups``, not the d encoded inputs, and each column
  (a numeric value, or its whole one-hot block) is kept from x or replaced from a
  background row as a unit. This is feasible and exact in shap 0.51, but not with a
  stock masker: ``shap.maskers.Partition`` with a clustering that encodes the groups
  only constrains the permutation order (and its binary tree also imposes a hierarchy
  between groups, giving Owen-like rather than Shapley values) while still toggling
  one-hot inputs one at a time. So ``_GroupMasker`` implements the (duck-typed) masker
  protocol that ``shap.utils.MaskedModel`` drives: ``shape = (N, G)``,
  ``invariants(x)`` (background rows that already equal x on a column, e.g. the same
  category, are not re-evaluated) and shap's "delta masking" call. The result is the
  interventional Shapley game over original columns, estimated by shap's own
  permutation algorithm; the tests check it against brute-force Shapley values over
  all 2^G coalitions. Masked inputs never contain impossible one-hot patterns (two
  categories active), which explaining encoded inputs and summing SHAP values within a
  group would evaluate. Per antithetic permutation it costs 2G + 1 masked evaluations
  instead of 2d + 1.
* Rows are explained with ``explainer.explain_row`` one by one, not ``explainer(X)``:
  shap 0.51's ``Explainer.__call__`` rebinds its ``main_effects`` flag to a list, so
  from the second row on it also computes (and discards) main effects, ~1/3 more work.
  ``PermutationExplainer`` reseeds numpy's global RNG; its state is restored after.
* ``max_evals = permutations * (2G + 1)`` (G = number of columns; default
  ``permutations=2``), which is >= 2G + 1, the minimum for one permutation. One
  antithetic (forward + reverse) permutation already gives exact Shapley values for
  any model with at most pairwise interactions between columns (linear, additive,
  pairwise), and additivity is exact for every model because each permutation
  telescopes from E_B[f] to f(x). Further permutations only reduce Monte-Carlo
  variance for higher-order interactions; every model is explained with the same
  seed, hence the same permutations, so that noise is largely common to float and
  int8 and cancels in their comparison. Two permutations cost at most
  ``2 * (2*30 + 1) * 100 = 12,200`` model rows per explained row for 30 columns and
  100 background rows (~12 ms at LiteRT's ~1 us per row); measured with a numpy MLP
  (d = 150, G = 30): ~2 s per model per 100 rows on 2 cores, plus a one-off ~2.5 s
  numba compile of shap's output kernel per process.
* Background: at most ``max_background`` (default 100) rows, a uniform sample without
  replacement (seeded). Not ``shap.kmeans``: its weighted centroids are fractional
  one-hot rows that no real example has.
* Additivity is checked against f itself: per explained row
  ``|sum_g phi[i, g] - (f(x_i) - mean_k f(B_k))|``, both predictions made by calling f
  directly, not taken from shap.

Returned dict (JSON-able except for the ``"_arrays"`` key, see ``without_arrays``)
----------------------------------------------------------------------------------
::

    {"explainer": "shap.PermutationExplainer",
     "settings": {...},                          # method, permutations, max_evals, ...
     "setup_seconds": s,     # shap import + one-off numba compile in this call (~0 once warm)
     "feature_columns": [column, ...],           # order of feature_groups
     "reference": model_name,
     "models": {name: {
         "base_value": E_B[f],  "seconds": s, "seconds_per_100_rows": s * 100 / n,
         "predict_calls": int, "predict_rows": int,   # cost of the explanation
         "global_importance": {column: mean |phi|}    # sorted descending
         "additivity": {"max_abs_error": e, "mean_abs_error": e},
         "local": [{"row_id": int, "score": f(x), "base_value": E_B[f],
                    "contributions": {column: phi},    # sorted by |phi| descending
                    "values": {column: shown value}}]}},
     "agreement": {name: {"spearman_rank_correlation_of_global_importance": r | None,
                          "top5_overlap": int, "mean_abs_difference": m}},  # non-reference models
     "_arrays": {"row_ids": int[n], "shap_values": {name: float64[n, G]},
                 "scores": {name: float64[n]}, "column_values": float64[n, G]}}

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

        # delta masking, same encoding as shap.maskers._tabular._delta_masking
        from shap.utils import MaskedModel

        noop = MaskedModel.delta_mask_noop_value
        variants = ~self.invariants(x)
        state = np.zeros(self.shape[1], dtype=bool)
        states, varying = [], []
        pos = 0
        while pos < len(mask):
            toggled = []
            while mask[pos] < 0:  # -(index) - 1: toggle and keep going
                toggled.append(-int(mask[pos]) - 1)
                pos += 1
            if mask[pos] != noop:
                toggled.append(int(mask[pos]))
            pos += 1
            for g in toggled:
                state[g] = not state[g]
            states.append(state.copy())
            if not varying:
                varying.append(np.ones(self.shape[0], dtype=bool))
            elif toggled:
                varying.append(variants[:, toggled].any(axis=1))
            else:
                varying.append(np.zeros(self.shape[0], dtype=bool))
        return (self._fill(np.array(states), x),), np.array(varying)


def _import_shap():
    """shap, imported lazily (1.5-2 s) and without its import-time matplotlib deprecation noise."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


_numba_warm = False


def _warm_up_shap() -> None:
    """Compile shap's numba output kernel once, so the first model's timing is not inflated."""
    global _numba_warm
    if _numba_warm:
        return
    shap = _import_shap()

    rng_state = np.random.get_state()
    try:
        masker = _GroupMasker(np.zeros((2, 2), dtype=np.float32), [np.array([0]), np.array([1])])
        explainer = shap.PermutationExplainer(lambda x: x.sum(1).astype(np.float64), masker, seed=0)
        explainer.explain_row(np.array([2.0, 3.0], dtype=np.float32), max_evals=5, main_effects=False,
                              error_bounds=False, batch_size="auto", outputs=None, silent=True)
    finally:
        np.random.set_state(rng_state)
    _numba_warm = True


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
) -> dict:
    """Per-column SHAP values of every model on `rows`; see the module docstring.

    reference: the model the others are compared with (default: the first key of
    predict_functions). permutations: antithetic permutations per explained row
    (max_evals = permutations * (2G + 1)). max_background: background rows used
    (a seeded uniform sample when more are given).
    """
    setup_start = time.perf_counter()
    shap = _import_shap()

    names, reference = model_names_and_reference(predict_functions, reference)
    if int(permutations) < 1:
        raise ValueError("permutations must be at least 1")
    if int(max_background) < 1:
        raise ValueError("max_background must be at least 1")

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
    max_evals = int(permutations) * (2 * G + 1)

    _warm_up_shap()
    setup_seconds = time.perf_counter() - setup_start

    shap_values: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    models: dict[str, dict] = {}
    rng_state = np.random.get_state()  # PermutationExplainer reseeds numpy's global RNG
    try:
        for name in names:
            predict = _CountingPredict(name, predict_functions[name])
            start = time.perf_counter()
            explainer = shap.PermutationExplainer(predict, masker, seed=int(seed))
            # explain_row per row rather than explainer(rows): in shap 0.51 Explainer.__call__
            # rebinds `main_effects` to a list, so from the 2nd row on every row also pays
            # for main effects (~2G extra masked evaluations) that are never used.
            values = np.empty((n, G))
            for i in range(n):
                result = explainer.explain_row(
                    rows[i], max_evals=max_evals, main_effects=False, error_bounds=False,
                    batch_size="auto", outputs=None, silent=True,
                )
                values[i] = np.asarray(result["values"], dtype=np.float64).reshape(G)
            calls, evaluated = predict.calls, predict.rows
            f_x = predict(rows)
            f_background = predict(background)
            seconds = time.perf_counter() - start

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

    return {
        "explainer": "shap.PermutationExplainer",
        "settings": {
            "masking": "interventional, per original column: a numeric input or a whole one-hot block "
                       "is kept from x or taken from a background row as a unit (_GroupMasker)",
            "link": "identity (probability units)",
            "permutations": int(permutations),
            "max_evals": max_evals,
            "max_evals_rule": "permutations * (2 * columns + 1)",
            "columns": G,
            "encoded_features": d,
            "explained_rows": n,
            "local_rows": len(local_row_ids),
            "background_rows": N,
            "background_rows_given": given_background,
            "background_sampling": "all" if N == given_background else "uniform without replacement (seeded)",
            "seed": int(seed),
            "additivity_target": "f(x) - mean f(background), both from the predict function",
            "shap_version": str(shap.__version__),
        },
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
        shown_values = entries.get(reference, next(iter(entries.values())))["values"]
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
