"""Grouped SHAP explanations (`explain_groups`): the players are GROUPS of encoded inputs.

The core that tables (a group: an original column, a number or a whole one-hot block), images
(a group: a region of the grid, `image`) and windows (a group: one sensor over one block of
cycles, `window`) share: the Shapley game `group_masker.GroupMasker` defines, its values exact
or sampled by antithetic permutations, and their error measured where sampled. Written for
tables, so the text below speaks of columns; for images and windows read regions and cells.

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
  Shapley values) while still toggling one-hot inputs one at a time. So ``GroupMasker``
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

Returned dict (JSON-able except for the ``"_arrays"`` key, see ``common.without_arrays``)
-----------------------------------------------------------------------------------------
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
(`tabular.TabularExplainer` adds them for tables): reports show those, in the user's units.

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

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.explainers.common import (
    CountingPredict, PredictFunction, additivity_summary, agreement_with_reference, finite_or_none, import_shap,
    local_row_positions, model_names_and_reference,
)
from pipeline.explainers.group_masker import (
    DEFAULT_EXACT_MAX_MODEL_ROWS, EXACT, EXACT_MAX_MASKED_BYTES, METHODS, PERMUTATION, GroupMasker, error_positions,
    exact_is_affordable, exact_model_rows, exact_values, permutation_values, sampling_error, validate_groups,
    warm_up_shap,
)

DEFAULT_PERMUTATIONS = 2
DEFAULT_MAX_BACKGROUND = 100
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
OTHER_CATEGORY = "(other)"


def _is_one_hot(column: str, idx: np.ndarray, feature_names: Sequence[str]) -> bool:
    prefix = f"{column}="
    return all(str(feature_names[i]).startswith(prefix) for i in idx)


def _shown_value(column: str, idx: np.ndarray, feature_names: Sequence[str], row: np.ndarray) -> Any:
    """The raw value shown beside a contribution (see module docstring)."""
    if _is_one_hot(column, idx, feature_names):
        active = [str(feature_names[i])[len(column) + 1:] for i in idx if row[i] > 0.5]
        return " | ".join(active) if active else OTHER_CATEGORY
    if idx.size == 1:
        return finite_or_none(row[idx[0]])
    return [finite_or_none(row[i]) for i in idx]


@dataclass(frozen=True)
class _Game:
    """The checked inputs of one explanation: the rows, the players and the background they are masked from."""

    rows: np.ndarray              # float32 [n, d]
    background: np.ndarray        # float32 [N, d], at most max_background rows
    given_background: int         # background rows handed in, before the sample
    row_ids: list[int]
    position_of: dict[int, int]   # row id -> position in rows
    local_row_ids: list[int]
    feature_names: Sequence[str]
    columns: list[str]            # the players' names
    groups: list[np.ndarray]      # each player's encoded inputs


@dataclass(frozen=True)
class _Plan:
    """How the game's values are computed: exact or sampled, and where their sampling error is measured."""

    method: str
    affordable: bool              # exact values fit the budget
    max_evals: int
    error_at: np.ndarray          # positions of the rows whose sampling error is measured
    exact_reference: bool         # that error is measured against exact values


def _game(*, background, rows, row_ids, local_row_ids, feature_names, feature_groups, seed: int,
          max_background: int) -> _Game:
    """Checks the rows, row ids and groups, and samples the background (seeded) down to max_background rows."""
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
    columns, groups = validate_groups(feature_groups, d)

    given_background = len(background)
    if given_background > max_background:
        chosen = np.sort(np.random.default_rng(seed).choice(given_background, size=int(max_background), replace=False))
        background = background[chosen]
    return _Game(rows=rows, background=background, given_background=given_background, row_ids=row_ids,
                 position_of=position_of, local_row_ids=local_row_ids, feature_names=feature_names,
                 columns=columns, groups=groups)


def _plan(game: _Game, *, method: str, permutations: int, exact_max_model_rows: int, error_rows: int,
          seed: int) -> _Plan:
    """Exact where affordable (method "auto"), else sampled; the rows whose sampling error is measured."""
    (n, d), G, N = game.rows.shape, len(game.columns), len(game.background)
    affordable = exact_is_affordable(G, N, d, exact_max_model_rows)
    if method == "auto":
        method = EXACT if affordable else PERMUTATION
    elif method == EXACT and exact_model_rows(G, N) * d * 4 > EXACT_MAX_MASKED_BYTES:
        raise ValueError(f"exact values over {G} players need 2^{G} x {N} masked rows of {d} inputs at once, more "
                         f"than {EXACT_MAX_MASKED_BYTES // 2 ** 20} MiB; use method='auto' or 'permutation'")
    exact = method == EXACT
    max_evals = (1 << G) if exact else int(permutations) * (2 * G + 1)
    if not exact and error_rows:
        error_at = error_positions(n, error_rows, seed)
        exact_reference = exact_is_affordable(G, N, d, ERROR_REFERENCE_EXACT_FACTOR * exact_max_model_rows)
    else:
        error_at, exact_reference = np.zeros(0, dtype=np.intp), False
    return _Plan(method=method, affordable=affordable, max_evals=max_evals, error_at=error_at,
                 exact_reference=exact_reference)


def _checked_options(*, permutations: int, max_background: int, method: str, error_rows: int | None,
                     reference_permutations: int, explained_rows: int) -> int:
    """Rejects impossible options; returns error_rows (None: a tenth of the rows, at least 2, at most 5)."""
    if int(permutations) < 1:
        raise ValueError("permutations must be at least 1")
    if int(max_background) < 1:
        raise ValueError("max_background must be at least 1")
    if method not in METHODS:
        raise ValueError(f"method {method!r}; expected one of {METHODS}")
    if error_rows is None:
        error_rows = min(DEFAULT_ERROR_ROWS, max(2, explained_rows // 10))
    if int(error_rows) < 0 or int(reference_permutations) < 2:
        raise ValueError("error_rows must be at least 0 and reference_permutations at least 2")
    return error_rows


def explain_groups(
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
    """Per-group SHAP values of every model on `rows`; see the module docstring.

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
    shap = import_shap()

    names, reference = model_names_and_reference(predict_functions, reference)
    error_rows = _checked_options(permutations=permutations, max_background=max_background, method=method,
                                  error_rows=error_rows, reference_permutations=reference_permutations,
                                  explained_rows=len(rows))
    game = _game(background=background, rows=rows, row_ids=row_ids, local_row_ids=local_row_ids,
                 feature_names=feature_names, feature_groups=feature_groups, seed=seed, max_background=max_background)
    plan = _plan(game, method=method, permutations=permutations, exact_max_model_rows=exact_max_model_rows,
                 error_rows=error_rows, seed=seed)
    masker = GroupMasker(game.background, game.groups)
    warm_up_shap(plan.method)
    if len(plan.error_at):
        warm_up_shap(EXACT if plan.exact_reference else PERMUTATION)
    setup_seconds = time.perf_counter() - setup_start

    shap_values: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    models: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    rng_state = np.random.get_state()  # PermutationExplainer reseeds numpy's global RNG
    try:
        for name in names:
            shap_values[name], scores[name], models[name] = _explain_model(
                shap, CountingPredict(name, predict_functions[name]), masker, game, plan, seed=seed,
                permutations=permutations, reference_permutations=reference_permutations)
            if "sampling_error" in models[name]:
                errors[name] = models[name]["sampling_error"]
    finally:
        np.random.set_state(rng_state)

    settings = _settings(shap, game, plan, errors, permutations=permutations, seed=seed,
                         exact_max_model_rows=exact_max_model_rows, reference_permutations=reference_permutations)
    return {
        "explainer": "shap.ExactExplainer" if plan.method == EXACT else "shap.PermutationExplainer",
        "settings": settings,
        "setup_seconds": finite_or_none(setup_seconds),
        "feature_columns": game.columns,
        "reference": reference,
        "models": models,
        "agreement": _agreement(game.columns, shap_values, names, reference),
        "_arrays": {
            "row_ids": np.asarray(game.row_ids, dtype=np.int64),
            "shap_values": shap_values,
            "scores": scores,
            "column_values": _column_values(game),
        },
    }


def _explain_model(shap, predict: CountingPredict, masker: GroupMasker, game: _Game, plan: _Plan, *, seed: int,
                   permutations: int, reference_permutations: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One model's values [n, G], its scores f(x) [n] and its entry of models[name] (timed, counted)."""
    rows, columns, groups = game.rows, game.columns, game.groups
    start = time.perf_counter()
    if plan.method == EXACT:
        values = exact_values(shap, predict, masker, rows)
    else:
        values = permutation_values(shap, predict, masker, rows, permutations=permutations, seed=seed)
    calls, evaluated = predict.calls, predict.rows
    f_x = predict(rows)
    f_background = predict(game.background)
    seconds = time.perf_counter() - start
    error = None
    if len(plan.error_at):
        error = sampling_error(shap, predict, masker, rows[plan.error_at], values[plan.error_at],
                               exact_reference=plan.exact_reference, reference_permutations=reference_permutations,
                               seed=seed)

    base_value = float(f_background.mean())
    importance = np.abs(values).mean(axis=0)
    order = np.argsort(-importance, kind="stable")
    local = []
    for row_id in game.local_row_ids:
        i = game.position_of[row_id]
        by_size = np.argsort(-np.abs(values[i]), kind="stable")
        local.append({
            "row_id": row_id,
            "score": finite_or_none(f_x[i]),
            "base_value": finite_or_none(base_value),
            "contributions": {columns[j]: finite_or_none(values[i, j]) for j in by_size},
            "values": {
                columns[j]: _shown_value(columns[j], groups[j], game.feature_names, rows[i]) for j in by_size
            },
        })
    model = {
        "base_value": finite_or_none(base_value),
        "seconds": finite_or_none(seconds),
        "seconds_per_100_rows": finite_or_none(seconds * 100.0 / len(rows)),
        "predict_calls": int(calls),
        "predict_rows": int(evaluated),
        "global_importance": {columns[j]: finite_or_none(importance[j]) for j in order},
        "additivity": additivity_summary(np.abs(values.sum(axis=1) - (f_x - base_value))),
        "local": local,
    }
    if error is not None:
        model["sampling_error"] = error
    return values, f_x, model


def _agreement(columns: list[str], shap_values: dict[str, np.ndarray], names: list[str], reference: str) -> dict:
    """agreement[model] for every model but the reference: global importance compared, and the values."""
    agreement: dict[str, dict] = {}
    ref_values = shap_values[reference]
    ref_importance = np.abs(ref_values).mean(axis=0)
    for name in names:
        if name == reference:
            continue
        importance = np.abs(shap_values[name]).mean(axis=0)
        agreement[name] = agreement_with_reference(columns, importance, ref_importance,
                                                   finite_or_none(np.abs(shap_values[name] - ref_values).mean()))
    return agreement


def _column_values(game: _Game) -> np.ndarray:
    """[n, G]: the encoded value of single-input numeric columns, NaN elsewhere (the beeswarm's colours)."""
    n, G = len(game.rows), len(game.columns)
    column_values = np.full((n, G), np.nan)
    for j, (column, idx) in enumerate(zip(game.columns, game.groups)):
        if idx.size == 1 and not _is_one_hot(column, idx, game.feature_names):
            column_values[:, j] = game.rows[:, idx[0]]
    return column_values


def _settings(shap, game: _Game, plan: _Plan, errors: dict[str, dict], *, permutations: int, seed: int,
              exact_max_model_rows: int, reference_permutations: int) -> dict:
    """settings: how the values were computed (method, masking, budget, background, measured sampling error)."""
    (n, d), G, N = game.rows.shape, len(game.columns), len(game.background)
    exact = plan.method == EXACT
    cost = exact_model_rows(G, N)
    if exact:
        description = (f"exact Shapley values: all 2^{G} = {1 << G:,} coalitions of the {G} players, each the mean "
                       f"over {N} background rows (shap.ExactExplainer)")
    else:
        plural = "s" if int(permutations) > 1 else ""
        description = (f"sampled Shapley values: {int(permutations)} antithetic permutation{plural} per row "
                       f"(shap.PermutationExplainer, {plan.max_evals} coalitions of 2^{G}); exact for models without "
                       f"interactions of three or more players, otherwise an estimate")
    return {
        "method": plan.method,
        "method_description": description,
        "exact_rule": (f"exact when 2^players x background rows <= {int(exact_max_model_rows):,} model rows per "
                       f"explained row and the masked inputs fit {EXACT_MAX_MASKED_BYTES // 2 ** 20} MiB; here "
                       f"2^{G} x {N} = {float(cost):,.0f}" if cost < 10 ** 15 else
                       f"exact when 2^players x background rows <= {int(exact_max_model_rows):,} model rows per "
                       f"explained row; here 2^{G} x {N}"),
        "exact_affordable": bool(plan.affordable),
        "masking": "interventional, per original column: a numeric input or a whole one-hot block "
                   "is kept from x or taken from a background row as a unit (_GroupMasker)",
        "link": "identity (probability units)",
        "permutations": None if exact else int(permutations),
        "max_evals": plan.max_evals,
        "max_evals_rule": "2 ** columns (every coalition)" if exact else "permutations * (2 * columns + 1)",
        "columns": G,
        "encoded_features": d,
        "explained_rows": n,
        "local_rows": len(game.local_row_ids),
        "background_rows": N,
        "background_rows_given": game.given_background,
        "background_sampling": "all" if N == game.given_background else "uniform without replacement (seeded)",
        "seed": int(seed),
        "additivity_target": "f(x) - mean f(background), both from the predict function",
        "sampling_error": _error_summary(errors, plan.error_at, game.row_ids, exact_reference=plan.exact_reference,
                                         reference_permutations=reference_permutations, G=G) if errors else None,
        "shap_version": str(shap.__version__),
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
