"""Tests of the explainers (pipeline/explainers/: the grouped explainer tables, images and windows
share, the tabular figures) and of the explain stage, with pure-numpy models whose Shapley values
are known.

No TensorFlow: the explainers receive plain predict callables. Small sizes, whole file ~10-20 s
(most of it importing shap and compiling its numba kernel once).
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.explainers.common import without_arrays  # noqa: E402
from pipeline.explainers.group_masker import EXACT_MAX_MASKED_BYTES, exact_is_affordable  # noqa: E402
from pipeline.explainers.grouped_permutation import explain_groups  # noqa: E402
from pipeline.explainers.tabular import explanation_figures  # noqa: E402

NUMERIC = ["age", "income", "balance", "tenure"]
CATEGORIES = {"make": ["Honda", "Ford", "Fiat"], "region": ["north", "south", "east", "west"]}


def _schema():
    """4 numeric + 2 one-hot columns -> d = 11 encoded inputs, G = 6 columns."""
    names, groups, d = [], {}, 0
    for column in NUMERIC:
        groups[column] = [d]
        names.append(column)
        d += 1
    for column, cats in CATEGORIES.items():
        groups[column] = list(range(d, d + len(cats)))
        names += [f"{column}={c}" for c in cats]
        d += len(cats)
    return names, groups, d


NAMES, GROUPS, D = _schema()


def _data(n, seed, allow_other=True):
    """Encoded rows: numeric columns (two integer-valued, so some equal the background),
    one-hot blocks where category index == len(cats) means no category active."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, D), dtype=np.float32)
    x[:, 0] = rng.normal(size=n)
    x[:, 1] = rng.normal(size=n)
    x[:, 2] = rng.integers(0, 3, size=n)
    x[:, 3] = rng.integers(0, 2, size=n)
    for column, cats in CATEGORIES.items():
        idx = GROUPS[column]
        k = rng.integers(0, len(cats) + (1 if allow_other else 0), size=n)
        ok = k < len(cats)
        x[np.flatnonzero(ok), np.asarray(idx)[k[ok]]] = 1.0
    return x


BACKGROUND = _data(30, seed=1)
ROWS = _data(24, seed=2)
ROW_IDS = list(range(500, 500 + len(ROWS)))
LOCAL = [ROW_IDS[0], ROW_IDS[5], ROW_IDS[11]]

W = np.array([0.06, -0.05, 0.03, 0.015, 0.04, -0.02, 0.0, 0.01, 0.025, -0.03, 0.005])


def linear(w, bias=0.5):
    def f(x):
        return np.clip(bias + x.astype(np.float64) @ w, 0.0, 1.0)
    return f


def pairwise(x):
    """Linear plus a cross-column interaction age x make=Ford: pairwise only."""
    x = x.astype(np.float64)
    return 0.5 + x @ W * 0.5 + 0.04 * x[:, 0] * x[:, 5]


_RNG = np.random.default_rng(7)
W1 = _RNG.normal(size=(D, 8)) / 2
W2 = _RNG.normal(size=8)


def mlp(x):
    h = np.tanh(x.astype(np.float64) @ W1)
    return 1.0 / (1.0 + np.exp(-(h @ W2)))


def run(predict_functions, **kw):
    args = dict(predict_functions=predict_functions, background=BACKGROUND, rows=ROWS, row_ids=ROW_IDS,
                local_row_ids=LOCAL, feature_names=NAMES, feature_groups=GROUPS, seed=0)
    args.update(kw)
    return explain_groups(**args)


def exact_group_shapley(f, x, background, groups):
    """Brute-force interventional Shapley values over original columns (all 2^G coalitions)."""
    cols = [np.asarray(v) for v in groups.values()]
    G = len(cols)

    def value(coalition):
        masked = background.copy()
        for g in coalition:
            masked[:, cols[g]] = x[cols[g]]
        return float(f(masked).mean())

    phi = np.zeros(G)
    for g in range(G):
        others = [h for h in range(G) if h != g]
        for r in range(G):
            weight = math.factorial(r) * math.factorial(G - r - 1) / math.factorial(G)
            for subset in itertools.combinations(others, r):
                phi[g] += weight * (value(subset + (g,)) - value(subset))
    return phi


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("method", ["exact", "permutation"])
def test_linear_model_gives_exact_per_column_sums(method):
    f = linear(W)
    assert np.all((f(ROWS) > 0) & (f(ROWS) < 1)) and np.all((f(BACKGROUND) > 0) & (f(BACKGROUND) < 1))
    result = run({"float": f}, permutations=1, method=method)
    assert result["settings"]["method"] == method
    phi = result["_arrays"]["shap_values"]["float"]
    assert phi.shape == (len(ROWS), len(GROUPS))
    per_input = W * (ROWS.astype(np.float64) - BACKGROUND.astype(np.float64).mean(axis=0))
    expected = np.stack([per_input[:, idx].sum(axis=1) for idx in GROUPS.values()], axis=1)
    np.testing.assert_allclose(phi, expected, atol=1e-9, rtol=0)
    # the one-hot group really is a sum of several non-zero encoded terms
    make = list(GROUPS).index("make")
    assert np.abs(per_input[:, GROUPS["make"]]).sum(axis=1).max() > 0.01
    assert result["feature_columns"] == list(GROUPS)
    assert result["models"]["float"]["base_value"] == pytest.approx(float(f(BACKGROUND).mean()), abs=1e-12)
    local = result["models"]["float"]["local"][0]
    assert local["contributions"]["make"] == pytest.approx(expected[0, make], abs=1e-9)


def test_group_masking_matches_brute_force_shapley_with_interactions():
    # pairwise interactions: one antithetic permutation must be exact
    result = run({"float": pairwise}, permutations=1, rows=ROWS[:6], row_ids=ROW_IDS[:6], local_row_ids=[],
                 method="permutation")
    phi = result["_arrays"]["shap_values"]["float"]
    for i in range(6):
        exact = exact_group_shapley(pairwise, ROWS[i].astype(np.float64), BACKGROUND.astype(np.float64), GROUPS)
        np.testing.assert_allclose(phi[i], exact, atol=1e-9, rtol=0)
    # the interaction is real: it is not the linear answer
    linear_part = (W * 0.5) * (ROWS[:6] - BACKGROUND.mean(axis=0))
    age_linear = linear_part[:, 0]
    assert np.abs(phi[:, 0] - age_linear).max() > 1e-3


def test_many_permutations_approach_brute_force_for_a_nonlinear_model():
    result = run({"float": mlp}, permutations=30, rows=ROWS[:3], row_ids=ROW_IDS[:3], local_row_ids=[],
                 method="permutation")
    phi = result["_arrays"]["shap_values"]["float"]
    for i in range(3):
        exact = exact_group_shapley(mlp, ROWS[i].astype(np.float64), BACKGROUND.astype(np.float64), GROUPS)
        scale = np.abs(exact).max()
        assert np.abs(phi[i] - exact).max() < 0.05 * scale + 1e-6


def test_invariant_background_rows_are_skipped():
    result = run({"float": linear(W)}, permutations=1, method="permutation", error_rows=0)
    m = result["models"]["float"]
    G, N, n = len(GROUPS), len(BACKGROUND), len(ROWS)
    assert m["predict_calls"] == n  # one batched call per row and permutation
    # rows sharing a category / integer value with x are not re-run
    assert 0 < m["predict_rows"] < n * (2 * G + 1) * N
    # exact: one batched call per row over its 2^G coalitions, the same rows skipped
    exact = run({"float": linear(W)}, method="exact")["models"]["float"]
    assert exact["predict_calls"] == n
    assert n * (2 * G + 1) * N < exact["predict_rows"] < n * 2 ** G * N


# ----------------------------------------------------------------------------- exact values


def test_exact_method_equals_brute_force_shapley_for_a_nonlinear_model():
    int8 = lambda x: np.round(mlp(x) * 256) / 256  # noqa: E731
    result = run({"float": mlp, "int8": int8}, rows=ROWS[:5], row_ids=ROW_IDS[:5], local_row_ids=[])
    settings = result["settings"]
    assert settings["method"] == "exact" and result["explainer"] == "shap.ExactExplainer"  # auto: 2^6 x 30 rows
    assert "exact" in settings["method_description"] and f"2^{len(GROUPS)}" in settings["method_description"]
    assert settings["max_evals"] == 2 ** len(GROUPS) and settings["permutations"] is None
    assert settings["sampling_error"] is None and "sampling_error" not in result["models"]["float"]
    for name, f in (("float", mlp), ("int8", int8)):
        phi = result["_arrays"]["shap_values"][name]
        for i in range(5):
            exact = exact_group_shapley(f, ROWS[i].astype(np.float64), BACKGROUND.astype(np.float64), GROUPS)
            np.testing.assert_allclose(phi[i], exact, atol=1e-9, rtol=0)
        assert result["models"][name]["additivity"]["max_abs_error"] < 1e-12
    # and two antithetic permutations are NOT exact for this model (so the check above can fail)
    sampled = run({"float": mlp}, rows=ROWS[:5], row_ids=ROW_IDS[:5], local_row_ids=[], method="permutation",
                  error_rows=0)["_arrays"]["shap_values"]["float"]
    assert np.abs(sampled - result["_arrays"]["shap_values"]["float"]).max() > 1e-4


def test_exact_values_do_not_depend_on_the_seed():
    a = run({"float": mlp}, seed=1, method="exact")["_arrays"]["shap_values"]["float"]
    b = run({"float": mlp}, seed=2, method="exact")["_arrays"]["shap_values"]["float"]
    np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)


def test_auto_method_follows_the_model_row_budget():
    G, N = len(GROUPS), len(BACKGROUND)
    assert run({"float": mlp}, exact_max_model_rows=2 ** G * N)["settings"]["method"] == "exact"
    sampled = run({"float": mlp}, exact_max_model_rows=2 ** G * N - 1)
    assert sampled["settings"]["method"] == "permutation" and sampled["explainer"] == "shap.PermutationExplainer"
    assert "antithetic permutation" in sampled["settings"]["method_description"]
    assert sampled["settings"]["exact_affordable"] is False
    # the memory cap: shap builds all 2^G x N masked rows of d float32 inputs at once
    assert exact_is_affordable(12, 100, 37)
    assert not exact_is_affordable(12, 100, EXACT_MAX_MASKED_BYTES // (4 * 2 ** 12 * 100) + 1)
    assert not exact_is_affordable(64, 1, 4096)
    with pytest.raises(ValueError, match="method"):
        run({"float": mlp}, method="kernel")
    wide = {f"c{j}": [j] for j in range(40)}
    with pytest.raises(ValueError, match="2\\^40"):
        explain_groups(predict_functions={"f": lambda x: x.sum(1) * 0.01 + 0.5}, background=np.zeros((2, 40)),
                       rows=np.ones((1, 40)), row_ids=[0], local_row_ids=[], feature_names=list(wide),
                       feature_groups=wide, method="exact")


# ----------------------------------------------------------------------------- sampling error


def test_sampled_error_is_the_error_against_brute_force_shapley():
    int8 = lambda x: np.round(mlp(x) * 256) / 256  # noqa: E731
    result = run({"float": mlp, "int8": int8}, method="permutation", error_rows=4)
    error = result["settings"]["sampling_error"]
    assert error["rows"] == 4 and error["reference_exact"] is True and "exact" in error["reference"]
    positions = [ROW_IDS.index(r) for r in error["row_ids"]]
    assert len(set(positions)) == 4
    worst_max, worst_mean = 0.0, 0.0
    for name, f in (("float", mlp), ("int8", int8)):
        phi = result["_arrays"]["shap_values"][name][positions]
        exact = np.stack([exact_group_shapley(f, ROWS[i].astype(np.float64), BACKGROUND.astype(np.float64), GROUPS)
                          for i in positions])
        difference = np.abs(phi - exact)
        recorded = result["models"][name]["sampling_error"]
        assert recorded["max_abs_error_vs_exact"] == pytest.approx(difference.max(), abs=1e-9)
        assert recorded["mean_abs_error_vs_exact"] == pytest.approx(difference.mean(), abs=1e-9)
        assert recorded["mean_abs_value"] == pytest.approx(np.abs(exact).mean(), abs=1e-9)
        assert error["by_model"][name]["max_abs_error_vs_exact"] == recorded["max_abs_error_vs_exact"]
        assert difference.max() > 1e-4  # a real error, not a zero that any bug would also give
        worst_max, worst_mean = max(worst_max, difference.max()), max(worst_mean, difference.mean())
    assert error["max_abs_error_vs_exact"] == pytest.approx(worst_max, abs=1e-9)
    assert error["mean_abs_error_vs_exact"] == pytest.approx(worst_mean, abs=1e-9)
    # measuring the error leaves the explanation itself unchanged
    plain = run({"float": mlp}, method="permutation", error_rows=0)
    assert plain["settings"]["sampling_error"] is None
    np.testing.assert_array_equal(plain["_arrays"]["shap_values"]["float"], result["_arrays"]["shap_values"]["float"])


def test_sampled_error_against_a_permutation_reference_where_exact_is_too_costly():
    # a budget under 2^G x N / 4: neither the explanation nor its error reference is exact
    result = run({"float": mlp}, method="permutation", error_rows=6, exact_max_model_rows=100,
                 reference_permutations=64)
    error = result["settings"]["sampling_error"]
    assert error["reference_exact"] is False and "a reference of 64 antithetic permutations" in error["reference"]
    positions = [ROW_IDS.index(r) for r in error["row_ids"]]
    phi = result["_arrays"]["shap_values"]["float"][positions]
    exact = np.stack([exact_group_shapley(mlp, ROWS[i].astype(np.float64), BACKGROUND.astype(np.float64), GROUPS)
                      for i in positions])
    true_mean = np.abs(phi - exact).mean()
    recorded = result["models"]["float"]["sampling_error"]
    # the reference's own error is small against the error measured, and the measured error is close to the true one
    assert recorded["reference_mean_abs_error"] < 0.4 * recorded["mean_abs_error_vs_exact"]
    assert recorded["mean_abs_error_vs_exact"] == pytest.approx(true_mean, rel=0.25)
    assert recorded["max_abs_error_vs_exact"] == pytest.approx(np.abs(phi - exact).max(), rel=0.35)


# ----------------------------------------------------------------------------- additivity


@pytest.mark.parametrize("method", ["exact", "permutation"])
def test_additivity_is_tiny_for_a_nonlinear_model(method):
    result = run({"float": mlp}, method=method)
    add = result["models"]["float"]["additivity"]
    assert add["max_abs_error"] < 1e-6 and add["mean_abs_error"] <= add["max_abs_error"]
    phi = result["_arrays"]["shap_values"]["float"]
    target = mlp(ROWS) - mlp(BACKGROUND).mean()
    assert np.abs(phi.sum(axis=1) - target).max() < 1e-6
    assert np.abs(target).max() > 0.05  # not trivially zero


def test_background_is_subsampled_and_additivity_still_holds():
    big = _data(80, seed=3)
    result = run({"float": mlp}, background=big, max_background=20)
    assert result["settings"]["method"] == "exact"
    s = result["settings"]
    assert s["background_rows"] == 20 and s["background_rows_given"] == 80
    assert result["models"]["float"]["additivity"]["max_abs_error"] < 1e-6
    base = result["models"]["float"]["base_value"]
    # the base value is the mean over a 20-row subset, not over all 80 rows
    subset_means = mlp(big).mean()
    assert base != pytest.approx(subset_means, abs=1e-12)
    assert abs(base - subset_means) < 0.2


# ----------------------------------------------------------------------------- agreement


def test_quantised_twin_agrees_and_scrambled_model_does_not():
    w_q = np.round(W * 100) / 100  # "int8" weights
    w_scrambled = W[np.random.default_rng(3).permutation(len(W))]
    result = run({"float": linear(W), "int8": linear(w_q), "scrambled": linear(w_scrambled)})
    assert result["reference"] == "float"
    assert set(result["agreement"]) == {"int8", "scrambled"}
    good, bad = result["agreement"]["int8"], result["agreement"]["scrambled"]
    assert good["spearman_rank_correlation_of_global_importance"] > 0.9
    assert good["top5_overlap"] >= 4
    assert good["mean_abs_difference"] < 0.003
    assert bad["spearman_rank_correlation_of_global_importance"] < 0.7
    assert bad["mean_abs_difference"] > good["mean_abs_difference"] * 3
    phi_f = result["_arrays"]["shap_values"]["float"]
    phi_q = result["_arrays"]["shap_values"]["int8"]
    assert good["mean_abs_difference"] == pytest.approx(np.abs(phi_f - phi_q).mean())


def test_reference_can_be_chosen_and_must_exist():
    result = run({"float": linear(W), "int8": linear(np.round(W, 2))}, reference="int8")
    assert result["reference"] == "int8" and set(result["agreement"]) == {"float"}
    with pytest.raises(ValueError, match="reference"):
        run({"float": linear(W)}, reference="nope")


# ----------------------------------------------------------------------------- determinism


def test_fixed_seed_is_deterministic_and_global_rng_untouched():
    import pipeline.explainers.group_masker as group_masker

    group_masker._numba_warm.clear()  # the one-off warm-up must not leak either
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = run({"float": mlp}, seed=5, method="permutation")
    after = np.random.get_state()[1]
    assert np.array_equal(before, after)
    b = run({"float": mlp}, seed=5, method="permutation")
    c = run({"float": mlp}, seed=6, method="permutation")
    pa, pb, pc = (r["_arrays"]["shap_values"]["float"] for r in (a, b, c))
    assert np.array_equal(pa, pb)
    assert not np.allclose(pa, pc, atol=1e-9)  # the seed does pick the permutations
    def strip(r):
        model = {k: v for k, v in without_arrays(r)["models"]["float"].items() if "seconds" not in k}
        model["sampling_error"] = {k: v for k, v in model["sampling_error"].items() if k != "seconds"}
        return model

    assert strip(a) == strip(b)


def test_models_share_permutations():
    # identical models must get identical explanations (same seed -> same permutations)
    result = run({"float": mlp, "copy": lambda x: mlp(x)}, method="permutation")
    assert result["agreement"]["copy"]["mean_abs_difference"] == 0.0
    assert result["agreement"]["copy"]["top5_overlap"] == 5


# ----------------------------------------------------------------------------- JSON contract


@pytest.mark.parametrize("method", ["exact", "permutation"])
def test_result_is_json_and_follows_the_schema(method):
    result = run({"float": mlp, "int8": lambda x: np.round(mlp(x) * 256) / 256}, method=method)
    text = json.dumps(without_arrays(result), allow_nan=False)
    back = json.loads(text)
    assert "_arrays" not in back and "_arrays" in result
    s = back["settings"]
    assert s["method"] == method
    if method == "exact":
        assert back["explainer"] == "shap.ExactExplainer"
        assert s["max_evals"] == 2 ** len(GROUPS) and s["permutations"] is None and s["sampling_error"] is None
    else:
        assert back["explainer"] == "shap.PermutationExplainer"
        assert s["max_evals"] == s["permutations"] * (2 * len(GROUPS) + 1) and s["max_evals"] >= 2 * len(GROUPS) + 1
        error = s["sampling_error"]
        # default: a tenth of the 24 explained rows, at least 2
        assert error["rows"] == 2 and len(error["row_ids"]) == 2 and set(error["row_ids"]) <= set(ROW_IDS)
        assert 0 < error["mean_abs_error_vs_exact"] <= error["max_abs_error_vs_exact"]
        assert set(error["by_model"]) == {"float", "int8"}
        for m in back["models"].values():
            assert m["sampling_error"]["max_abs_error_vs_exact"] <= error["max_abs_error_vs_exact"]
    assert s["columns"] == len(GROUPS) and s["encoded_features"] == D and s["explained_rows"] == len(ROWS)
    for name, m in back["models"].items():
        assert set(m) >= {"base_value", "seconds", "seconds_per_100_rows", "global_importance", "additivity", "local"}
        assert m["seconds"] > 0
        assert m["seconds_per_100_rows"] == pytest.approx(m["seconds"] * 100 / len(ROWS))
        importance = list(m["global_importance"].values())
        assert importance == sorted(importance, reverse=True)
        assert set(m["global_importance"]) == set(GROUPS)
        assert [e["row_id"] for e in m["local"]] == LOCAL
        for entry in m["local"]:
            assert isinstance(entry["row_id"], int)
            assert set(entry["contributions"]) == set(GROUPS) == set(entry["values"])
            assert entry["base_value"] == m["base_value"]
            total = sum(entry["contributions"].values())
            assert total == pytest.approx(entry["score"] - entry["base_value"], abs=1e-6)
    for a in back["agreement"].values():
        assert set(a) == {"spearman_rank_correlation_of_global_importance", "top5_overlap", "mean_abs_difference"}
        assert isinstance(a["top5_overlap"], int)


def test_local_values_show_category_or_scaled_number():
    rows = ROWS.copy()
    rows[0, GROUPS["make"]] = [0, 1, 0]   # Ford
    rows[0, GROUPS["region"]] = 0          # no category active
    rows[0, 0] = 1.25
    result = run({"float": linear(W)}, rows=rows)
    values = result["models"]["float"]["local"][0]["values"]
    assert values["make"] == "Ford"
    assert values["region"] == "(other)"
    assert values["age"] == pytest.approx(1.25)
    assert isinstance(values["tenure"], float)


def test_constant_model_gives_none_correlation_and_valid_json():
    result = run({"float": linear(W), "flat": lambda x: np.full(len(x), 0.3)})
    flat = result["models"]["flat"]
    assert all(v == 0.0 for v in flat["global_importance"].values())
    assert result["agreement"]["flat"]["spearman_rank_correlation_of_global_importance"] is None
    json.dumps(without_arrays(result), allow_nan=False)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("groups, message", [
    ({**GROUPS, "age": [0, 1]}, "exactly one column"),
    ({k: v for k, v in GROUPS.items() if k != "tenure"}, "exactly one column"),
    ({**GROUPS, "tenure": [D]}, "outside"),
])
def test_bad_feature_groups_are_rejected(groups, message):
    with pytest.raises(ValueError, match=message):
        run({"float": linear(W)}, feature_groups=groups)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="local_row_ids"):
        run({"float": linear(W)}, local_row_ids=[9999])
    with pytest.raises(ValueError, match="shape"):
        run({"float": lambda x: np.zeros((len(x), 2))})
    with pytest.raises(ValueError, match="feature_names"):
        run({"float": linear(W)}, feature_names=NAMES[:-1])
    with pytest.raises(ValueError, match="non-finite"):
        run({"float": lambda x: np.full(len(x), np.nan)})


# ----------------------------------------------------------------------------- figures


def test_figures_are_matplotlib_figures_with_axes():
    from matplotlib.figure import Figure

    result = run({"float": mlp, "int8": lambda x: np.round(mlp(x) * 256) / 256})
    figures = explanation_figures(result)
    expected = {"shap_global", "shap_beeswarm_float", "shap_beeswarm_int8"} | {f"shap_local_{r}" for r in LOCAL}
    assert set(figures) == expected
    for fig in figures.values():
        assert isinstance(fig, Figure) and fig.axes
    bars = figures["shap_global"].axes[0].patches
    assert len(bars) == 2 * len(GROUPS)  # fewer than 15 columns: all shown, one bar per model
    title = figures[f"shap_local_{LOCAL[0]}"].axes[0].get_title()
    assert "float" in title and "int8" in title and "f(x)=" in title and "base=" in title
    # from the JSON part alone (e.g. re-read from disk) only the beeswarms are missing
    from_json = explanation_figures(json.loads(json.dumps(without_arrays(result))))
    assert set(from_json) == expected - {"shap_beeswarm_float", "shap_beeswarm_int8"}


# ----------------------------------------------------------------------------- no TensorFlow


def test_stage_does_not_import_tensorflow_or_keras():
    code = (
        "import sys, numpy as np\n"
        "import pipeline.stages.explain\n"
        "from pipeline.explainers.grouped_permutation import explain_groups\n"
        "b = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)\n"
        "explain_groups(predict_functions={'m': lambda x: x.sum(1) * 0.1 + 0.5}, background=b, rows=b[:2],\n"
        "    row_ids=[0, 1], local_row_ids=[0], feature_names=['a', 'b'], feature_groups={'a': [0], 'b': [1]})\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_local_explanations_of_a_table_speak_in_the_data_files_units():
    from pipeline.domain import with_raw_values

    raw = pd.DataFrame({"hour": [13, 2], "channel": ["online", None], "amount": [5.5, float("nan")]})
    explanation = {"models": {"m": {"local": [{"row_id": 1, "contributions": {"hour": 0.1, "channel": -0.2,
                                                                             "amount": 0.0, "derived": 0.3}}]}}}
    with_raw_values(explanation, raw)
    assert explanation["models"]["m"]["local"][0]["raw_values"] == {"hour": 2, "channel": None, "amount": None}
    text_explanation = {"models": {"m": {"local": [{"row_id": 0, "contributions": {"good": 0.1}}]}}}
    assert "raw_values" not in with_raw_values(text_explanation, ["good film"])["models"]["m"]["local"][0]


# ----------------------------------------------------------------------------- stage and domains


def test_old_import_paths_are_the_explainers():
    import pipeline.stages.explain as stage
    from pipeline.explainers import image, probes, text, window
    from pipeline.stages import explain_image, explain_text, explain_window, probe

    assert stage.explain_tabular is explain_groups and stage.explanation_figures is explanation_figures
    assert explain_image.explain_images is image.explain_images and explain_text.explain_texts is text.explain_texts
    assert explain_window.explain_windows is window.explain_windows and probe.run_probe is probes.run_probe


def test_each_domain_names_the_explainer_of_its_modality():
    from pipeline.explainers import Explainer
    from pipeline.registry import all_domains_by_name

    domains = all_domains_by_name()
    kinds = {name: domain.explainer.kind for name, domain in domains.items()}
    assert kinds == {"fraud": "tabular", "tabular": "tabular", "imaging": "image", "sentiment": "text",
                     "maintenance": "window"}
    assert all(isinstance(domain.explainer, Explainer) for domain in domains.values())
    # maintenance reads two kinds of data and chooses by the data, keeping no state
    maintenance = domains["maintenance"]

    class _Data:
        def __init__(self, format_name):
            self.preprocessing = {"format": format_name}

    from pipeline.data.sensor_histories import FORMAT as WINDOWS
    from pipeline.data.tabular import FORMAT as TABLE

    assert maintenance.explainer_for(_Data(TABLE)).kind == "tabular" and maintenance.modality_of(_Data(TABLE)) == "tabular"
    assert maintenance.explainer_for(_Data(WINDOWS)).kind == "window" and maintenance.modality_of(_Data(WINDOWS)) == "window"
    assert maintenance.explainer.kind == "window" and maintenance.modality == "window"


def test_explanation_rows_put_flagged_rows_first_and_are_seeded():
    from pipeline.metrics import Predictions
    from pipeline.stages.explain import explanation_rows

    scores = np.linspace(0.0, 1.0, 40)
    predictions = Predictions(scores, 0.9)                     # rows 36..39 are flagged
    train = np.arange(60, dtype=np.float32)[:, None]
    chosen = explanation_rows(train_x=train, test_x=np.zeros((40, 1)), float_predictions=predictions, seed=1,
                              background_rows=8, explain_rows=6, local_examples=2)
    again = explanation_rows(train_x=train, test_x=np.zeros((40, 1)), float_predictions=predictions, seed=1,
                             background_rows=8, explain_rows=6, local_examples=2)
    assert chosen.local_row_ids == [39, 38] and {37, 38, 39} <= set(chosen.row_ids.tolist())
    assert len(chosen.row_ids) == 6 and list(chosen.row_ids) == sorted(chosen.row_ids)
    assert len(chosen.background) == 8 and np.array_equal(chosen.background, again.background)
    assert np.array_equal(chosen.row_ids, again.row_ids)
