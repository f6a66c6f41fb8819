"""The pruning sensitivity scan and the per-layer sparsity it allocates (pipeline/stages/pruning_sensitivity.py)."""

import numpy as np
import pytest

from pipeline.stages import pruning_sensitivity
from pipeline.stages.pruning_sensitivity import LEVELS, allocate, magnitude_pruned, overall_sparsity, scan


def test_magnitude_pruning_zeroes_exactly_the_smallest_share():
    array = np.array([[0.5, -4.0, 0.1], [3.0, -0.2, 2.0]])
    pruned, = magnitude_pruned([array], 0.5)
    np.testing.assert_array_equal(pruned, [[0.0, -4.0, 0.0], [3.0, 0.0, 2.0]])
    assert array[0, 0] == 0.5  # the input is not changed
    assert np.count_nonzero(magnitude_pruned([np.ones(10)], 0.75)[0]) == 2  # round(7.5) = 8 zeroed


def _toy_model():
    """A linear scorer of two 'layers': a large one of which most weights are tiny, and a small one every weight
    of which counts."""
    rng = np.random.default_rng(0)
    rows, noise = rng.normal(size=(400, 14)), rng.normal(size=(400, 90))
    layers = {"large": [np.concatenate([rng.normal(size=10), 0.001 * rng.normal(size=90)])],
              "small": [np.array([1.0, -1.0, 0.9, 1.1])]}
    labels = (rows[:, :10] @ layers["large"][0][:10] + rows[:, 10:] @ layers["small"][0]
              + rng.normal(scale=0.3, size=400) > 0).astype(int)
    current = {name: [np.array(a) for a in arrays] for name, arrays in layers.items()}

    def score():
        from sklearn.metrics import average_precision_score

        large, small = current["large"][0], current["small"][0]
        return average_precision_score(labels, rows[:, :10] @ large[:10] + noise @ large[10:] + rows[:, 10:] @ small)

    def set_weights(name, arrays):
        current[name] = [np.array(a) for a in arrays]

    return layers, current, set_weights, score


def test_the_scan_measures_each_layer_alone_and_restores_it():
    layers, current, set_weights, score = _toy_model()
    calls = []
    measured = scan(layers, lambda name, arrays: (calls.append(name), set_weights(name, arrays)), score,
                    report=lambda message: None)
    assert set(measured["layers"]) == {"large", "small"}
    assert list(measured["layers"]["large"]) == list(LEVELS)
    assert measured["layers"]["large"][0.0] == measured["dense"] == pytest.approx(score())
    for name in layers:  # restored after its scan
        np.testing.assert_array_equal(current[name][0], layers[name][0])
    # pruning the small layer hard costs more than pruning the large one as hard
    assert measured["layers"]["small"][0.75] < measured["layers"]["large"][0.75]


def test_allocation_keeps_the_sensitive_layer_denser_and_reaches_the_target_overall():
    measured = {"dense": 0.5, "layers": {
        "first_conv": {0.0: 0.5, 0.3: 0.49, 0.5: 0.45, 0.6: 0.4, 0.7: 0.3, 0.75: 0.25, 0.8: 0.2, 0.85: 0.15, 0.9: 0.1},
        "big_dense": {level: 0.5 - 0.02 * level for level in LEVELS},
        "output": {0.0: 0.5, 0.3: 0.5, 0.5: 0.48, 0.6: 0.45, 0.7: 0.4, 0.75: 0.35, 0.8: 0.3, 0.85: 0.2, 0.9: 0.1}}}
    sizes = {"first_conv": 144, "big_dense": 10_000, "output": 65}
    result = allocate(measured, sizes, 0.75)
    sparsity = result["sparsity"]
    assert sparsity["first_conv"] < 0.75 and sparsity["output"] < 0.75 < sparsity["big_dense"]
    # the pruned weights reach the target exactly: the largest layer gave back what the levels overshot
    assert result["overall"] == pytest.approx(overall_sparsity(sparsity, sizes), abs=1e-4) == pytest.approx(0.75, abs=1e-4)
    assert result["scored_at"]["big_dense"] in LEVELS and sparsity["big_dense"] <= result["scored_at"]["big_dense"]
    assert {name: sparsity[name] for name in ("first_conv", "output")} == {
        name: result["scored_at"][name] for name in ("first_conv", "output")}
    # no layer could step down a scanned level and keep the target
    for name, level in result["scored_at"].items():
        lower = [candidate for candidate in LEVELS if candidate < level]
        if lower and name != "big_dense":
            assert overall_sparsity({**result["scored_at"], name: max(lower)}, sizes) < 0.75, name
    # the uniform alternative costs the sensitive layers far more of their score
    assert result["drops"]["first_conv"] < 0.5 - 0.25 and result["drops"]["output"] < 0.5 - 0.35


def test_a_noisy_rise_is_not_taken_for_robustness():
    # "noisy" scores better at 0.9 than at 0.7 by chance: its drop at 0.9 still counts 0.7's
    assert pruning_sensitivity.monotone_drops({0.0: 0.5, 0.7: 0.3, 0.9: 0.45}, 0.5) == {0.0: 0.0, 0.7: 0.2, 0.9: 0.2}


def test_allocation_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="measured no layer"):
        allocate({"dense": 0.5, "layers": {}}, {}, 0.75)
    with pytest.raises(ValueError, match="outside the scanned levels"):
        allocate({"dense": 0.5, "layers": {"a": {0.0: 0.5, 0.9: 0.4}}}, {"a": 10}, 0.95)
