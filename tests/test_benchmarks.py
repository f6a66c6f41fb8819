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
