"""The benchmark's explainer comparison computes the right thing (no TensorFlow needed):
on a model whose Shapley values are known in closed form, KernelExplainer over groups of
inputs recovers them, and the agreement figures see a perfect and a broken explainer."""

import numpy as np

from benchmarks.run import _agreement, _kernel_on_groups


def test_kernel_on_groups_recovers_exact_shapley_values_of_a_linear_model():
    rng = np.random.default_rng(0)
    shape = (3, 4)                                   # 12 inputs, as a tiny "image"
    weights = rng.normal(size=12)
    groups = [np.array([0, 1, 4, 5]), np.array([2, 3, 6, 7]), np.array([8, 9]), np.array([10, 11])]
    rows = rng.normal(size=(3, 12)).astype(np.float32)
    masked_by = rng.normal(size=(5, 12)).astype(np.float32)   # averaged over, like background windows

    def predict(batch):
        return np.asarray(batch, dtype=np.float64).reshape(len(batch), -1) @ weights

    # Linear model: a group's Shapley value is sum over its inputs of w_i (x_i - mean masked value).
    exact = np.stack([[float(weights[g] @ (row[g] - masked_by[:, g].mean(0))) for g in groups] for row in rows])
    result = _kernel_on_groups(exact, rows, masked_by, groups, shape, predict)
    agreement = result["agreement"]
    assert agreement["pearson_per_value"] > 0.9999
    assert agreement["mean_abs_difference"] < 1e-6 * agreement["mean_abs_value"] + 1e-9
    assert agreement["row_sum_max_abs_difference"] < 1e-6
    # per row: every coalition of the 4 players (2^4 - 2), the full and the empty one, each with 5 masked rows
    assert result["model_rows"] == 3 * 16 * 5 and result["nsamples_used"] == [14]


def test_agreement_tells_a_matching_from_a_scrambled_explainer():
    rng = np.random.default_rng(1)
    ours = [rng.normal(size=6) for _ in range(8)]
    same = _agreement(ours, [a.copy() for a in ours], np.abs(ours).mean(0), np.abs(ours).mean(0))
    assert same["pearson_per_value"] > 0.999 and same["spearman_per_row_mean"] > 0.999
    scrambled = [rng.permutation(a) for a in ours]
    other = _agreement(ours, scrambled, np.abs(ours).mean(0), np.abs(scrambled).mean(0))
    assert other["pearson_per_row_mean"] < 0.6 and other["row_sum_max_abs_difference"] < 1e-9


def test_shapley_from_coalitions_is_the_shapley_value():
    import itertools
    import math

    from benchmarks.shapley_error import shapley_from_coalitions

    rng = np.random.default_rng(2)
    players = 5
    v = rng.normal(size=1 << players)   # any game over 5 players, v[mask]
    v[0] = 0.0

    def value(subset):
        return v[sum(1 << j for j in subset)]

    expected = np.zeros(players)
    for j in range(players):
        others = [k for k in range(players) if k != j]
        for size in range(players):
            weight = math.factorial(size) * math.factorial(players - size - 1) / math.factorial(players)
            for subset in itertools.combinations(others, size):
                expected[j] += weight * (value(subset + (j,)) - value(subset))
    phi = shapley_from_coalitions(v, players)
    np.testing.assert_allclose(phi, expected, atol=1e-12)
    assert phi.sum() == __import__("pytest").approx(v[-1] - v[0])


def test_shapley_error_table_names_the_method_and_the_error():
    from benchmarks.run import _shapley_error_lines

    error = {"max_abs_error": 0.0123, "mean_abs_error": 0.00123, "mean_abs_value": 0.0111}
    result = {
        "case": "shapley-error", "command": "python -m benchmarks.shapley_error", "measured_utc": "now",
        "machine": {"cpus": 2, "load_average": [1.0, 1.0, 1.0]},
        "settings": {"rows": 20, "window_rows": 10, "background_rows": 100, "reference_permutations": 64,
                     "text_max_tokens": 12},
        "cases": {
            "fraud": {"modality": "tabular", "players": 12, "pipeline_method": "exact", "pipeline_sampling_error": None,
                      "seconds_per_row": {"float32": {"exact": 0.5, "sampled": 0.005},
                                          "int8": {"exact": 0.25, "sampled": 0.002}},
                      "error": {"float32": error, "int8": {**error, "max_abs_error": 0.02}}},
            "imaging": {"modality": "image", "players": 64, "pipeline_method": "permutation",
                        "pipeline_sampling_error": {"max_abs_error_vs_exact": 0.03, "mean_abs_error_vs_exact": 0.004,
                                                    "rows": 5},
                        "seconds_per_row": {"float32": {"sampled": 0.01, "reference_64_permutations": 0.3},
                                            "int8": {"sampled": 0.01, "reference_64_permutations": 0.3}},
                        "error": {m: {**error, "reference_max_abs_error": 0.002, "reference_mean_abs_error": 0.0003}
                                  for m in ("float32", "int8")}},
        },
    }
    text = "\n".join(_shapley_error_lines(result))
    assert "| fraud | 12 | exact (2^12 coalitions) | 2 antithetic permutations vs exact | 0.0200 | 0.00123 |" in text
    assert "0.500 / 0.250 | sampled 0.005 / 0.002 | none: exact |" in text
    assert ("| imaging | 64 | 2 antithetic permutations | 64-permutation reference | 0.0123 (0.0020) | "
            "0.00123 (0.00030) |") in text
    assert "max 0.0300, mean 0.00400 (5 rows)" in text


def test_runtime_agreement_table_shows_both_litert_kernels_and_a_rejected_variant():
    from benchmarks.runtime_agreement import lines

    result = {"command": "python -m benchmarks.runtime_agreement", "measured_utc": "2026-11-27T14:00:00+00:00",
              "machine": {"cpus": 2}, "cases": {"imaging-default": {"variants": {
                  "int8": {"micro_supported": True, "rows": 959, "threshold": 0.4,
                           "litert_xnnpack": {"identical_decisions": 0.9979, "changed_decisions": 2,
                                              "identical_outputs": 0.8, "max_output_difference_steps": 3.0},
                           "litert_reference_kernels": {"identical_decisions": 1.0, "changed_decisions": 0,
                                                        "identical_outputs": 1.0, "max_output_difference_steps": 0.0}},
                  "qat_int8": {"micro_supported": False, "first_unsupported": "CONV_2D (node 0): no"}}}}}
    table = "\n".join(lines(result))
    assert "| imaging-default | int8 | 959 | 0.9979 (2) | 3 | 1.0000 (0) | 0 | 1.0000 |" in table
    assert "| imaging-default | qat_int8 | — | does not run: CONV_2D (node 0): no |" in table


def test_a_case_section_says_which_pruning_learning_rate_was_kept_and_why():
    from benchmarks.run import _repair_lines

    because = "tied on validation PR-AUC with 0.001 (...); of the tied, the one whose validation scores rank ..."
    repair = {"limit": 0.05, "variants": {}, "selective_int8": {}, "calibration": {},
              "pruning": {"method": "uniform", "learning_rate": 0.0001, "learning_rate_because": because,
                          "learning_rate_candidates": {
                              "0.001": {"validation_pr_auc": 0.99862, "rank_correlation_with_float": 0.955904},
                              "0.0001": {"validation_pr_auc": 0.99841, "rank_correlation_with_float": 0.98196}}}}
    text = "\n".join(_repair_lines(repair))
    assert ("pruned_int8's fine-tuning learning rate: 0.0001, chosen on validation from 0.001: PR-AUC 0.9986, rank "
            "correlation with float 0.956; 0.0001: PR-AUC 0.9984, rank correlation with float 0.982 (" + because
            + ").") in text
    repair["pruning"]["learning_rate_candidates"] = None  # one rate given: nothing chosen, nothing said
    assert "learning rate" not in "\n".join(_repair_lines(repair))
