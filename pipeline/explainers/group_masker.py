"""The Shapley game over GROUPS of model inputs, and the shap calls that compute its values.

The players are groups of encoded inputs (a table's original columns, an image's regions, a
window's (sensor, time block) cells). ``GroupMasker`` keeps a group from the explained row or
replaces it, as a whole, from a background row: shap's explainers drive it through the
duck-typed masker protocol of ``shap.utils.MaskedModel`` (see `grouped_permutation` for why no
stock masker does this). The values of the game are computed here in one of two ways:

* ``exact_values``: ``shap.ExactExplainer`` over all 2^G coalitions (Gray-code order, each
  step re-running only the background rows that differ from x on the toggled group);
* ``permutation_values``: ``shap.PermutationExplainer``, antithetic permutations (sampled).

``sampling_error`` measures the error of sampled values against exact ones (or a reference of
more permutations where exact ones cost too much).
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.explainers.common import finite_or_none, import_shap

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
# Exact values smaller than this are rounding noise of their 2^G-term sums (see exact_values).
EXACT_ROUNDING = 1e-12


def validate_groups(feature_groups: dict[str, list[int]], d: int) -> tuple[list[str], list[np.ndarray]]:
    """The groups' names and encoded indices, checked: every input belongs to exactly one group."""
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


class GroupMasker:
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


# The name the explanations' settings["masking"] text gives the masker (kept byte-identical in
# explanations.json), so that it still names a class.
_GroupMasker = GroupMasker


_numba_warm: set[str] = set()


def warm_up_shap(method: str = PERMUTATION) -> None:
    """Compile shap's numba kernels of `method` once, so the first model's timing is not inflated."""
    if method in _numba_warm:
        return
    shap = import_shap()

    rng_state = np.random.get_state()
    try:
        masker = GroupMasker(np.zeros((2, 2), dtype=np.float32), [np.array([0]), np.array([1])])
        row = np.array([[2.0, 3.0]], dtype=np.float32)
        function = lambda x: x.sum(1).astype(np.float64)  # noqa: E731
        if method == EXACT:
            exact_values(shap, function, masker, row)
        else:
            permutation_values(shap, function, masker, row, permutations=1, seed=0)
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


def exact_values(shap, predict, masker: "GroupMasker", rows: np.ndarray) -> np.ndarray:
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


def permutation_values(shap, predict, masker: "GroupMasker", rows: np.ndarray, *, permutations: int,
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


def error_positions(n: int, count: int, seed: int) -> np.ndarray:
    """The explained rows (positions) whose sampling error is measured: a seeded sample, in order."""
    count = min(int(count), n)
    return np.sort(np.random.default_rng(seed + 1).choice(n, size=count, replace=False))


def sampling_error(shap, predict, masker: "GroupMasker", rows: np.ndarray, sampled: np.ndarray, *,
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
        reference = exact_values(shap, predict, masker, rows)
        noise = None
    else:
        half = max(1, int(reference_permutations) // 2)
        first = permutation_values(shap, predict, masker, rows, permutations=half, seed=seed + 1)
        second = permutation_values(shap, predict, masker, rows, permutations=half, seed=seed + 2)
        reference = (first + second) / 2.0
        noise = np.abs(first - second) / 2.0
    difference = np.abs(np.asarray(sampled, dtype=np.float64) - reference)
    result = {
        "max_abs_error_vs_exact": finite_or_none(difference.max()),
        "mean_abs_error_vs_exact": finite_or_none(difference.mean()),
        "mean_abs_value": finite_or_none(np.abs(reference).mean()),
        "max_abs_value": finite_or_none(np.abs(reference).max()),
        "seconds": finite_or_none(time.perf_counter() - start),
        "model_rows": int(predict.rows - rows_before),
    }
    if noise is not None:
        result["reference_max_abs_error"] = finite_or_none(noise.max())
        result["reference_mean_abs_error"] = finite_or_none(noise.mean())
    return result
