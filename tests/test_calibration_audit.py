"""The calibration-set audit (pipeline/stages/calibration_audit.py): int8 calibrated on one group's rows
changes another group's numbers, and the set the run uses is chosen on validation."""

import numpy as np

from pipeline.metrics import Predictions, choose_threshold
from pipeline.stages import calibration_audit
from pipeline.stages.compress import CompressionJob, compress, weights_by_layer_name
from pipeline.stages.group_harm import HarmTarget
from tests import tiny_models


def _two_scale_data(rng, rows):
    """Group B's inputs are 16x wider than group A's: ranges calibrated on A alone clip B's activations."""
    group = np.where(rng.random(rows) < 0.5, "A", "B")
    features = rng.normal(size=(rows, 8)).astype(np.float32) * np.where(group == "B", 16.0, 1.0)[:, None]
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0.3 * np.where(group == "B", 16.0, 1.0)).astype(np.int64)
    return features.astype(np.float32), labels, group


def test_calibrating_on_one_group_moves_the_others_numbers_and_the_choice_is_made_on_validation():
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features, labels, group = _two_scale_data(rng, 1500)
    validation, validation_labels, validation_group = _two_scale_data(rng, 800)
    model = tiny_models.tiny_mlp(keras, (8,), hidden_units=(16, 8))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(features, labels, epochs=15, batch_size=64, verbose=0)
    scores = np.asarray(model.predict(validation, verbose=0)).ravel()
    reference = Predictions(scores, choose_threshold(validation_labels, scores)).decisions
    ids = calibration_audit.group_row_ids(labels, group, rows=100, seed=0, min_rows=20,
                                          draw=lambda y, n, seed: np.arange(min(n, y.size)))
    job = CompressionJob(
        model_builder=tiny_models.tiny_mlp, input_shape=(8,), model_options={"hidden_units": (16, 8)},
        weights=weights_by_layer_name(model), train_features=features, train_labels=labels.astype(np.float32),
        train_sample_weights=None, representative_features=features[:100], validation_features=validation,
        validation_labels=validation_labels, variants=("int8",),
        harm_target=HarmTarget(groups={"g": validation_group}, reference_decisions=reference, max_change=0.05,
                               min_group_size=20),
        calibration_sets={calibration_audit.group_set_name("g", name): features[rows] for name, rows in ids.items()},
        calibration_column="g", layer_debug_rows=50)
    result = compress(job, progress=lambda _: None)["int8"]
    assert result.status == "ok", result.reason
    audit = result.details["calibration"]
    sets = {row["name"]: row for row in audit["sets"]}
    assert list(sets) == ["representative", "g = A", "g = B"] and audit["column"] == "g"
    assert all(set(row["changes"]) == {"A", "B"} for row in sets.values())

    def harm(row, name):
        return max(abs(value) for value in row["changes"][name].values())

    # Calibrated on A alone, B's activations clip: B's rates move more than with the representative set.
    assert harm(sets["g = A"], "B") > max(2 * harm(sets["representative"], "B"), 0.05), audit
    assert abs(sets["g = A"]["worst"]["change"]) > abs(sets[audit["chosen"]]["worst"]["change"])
    assert audit["chosen"] != "g = A" and result.details["converter"]["calibration_set"] == audit["chosen"]


def test_the_audit_prefers_the_representative_set_on_a_tie_and_names_why():
    target = HarmTarget(groups={"g": np.array(["A"] * 20 + ["B"] * 20)}, reference_decisions=np.tile([1, 0], 20),
                        max_change=0.05, min_group_size=10, min_positives=5)
    labels = np.tile([1, 0], 20)
    same = calibration_audit.audit(convert=lambda name: name.encode(), predict=lambda content: labels * 0.9 + 0.05,
                                   sets={"representative": 100, "g = A": 50, "g = B": 50}, labels=labels,
                                   target=target, column="g")
    assert same["chosen"] == "representative" and same["why"].startswith("the representative set")
    better = calibration_audit.audit(
        convert=lambda name: name.encode(),
        predict=lambda content: np.where((np.arange(40) < 6) & (labels == 1) & (content != b"g = B"), 0.01,
                                         labels * 0.9 + 0.05),
        sets={"representative": 100, "g = A": 50, "g = B": 50}, labels=labels, target=target, column="g")
    assert better["chosen"] == "g = B" and "rows of g = B only" in better["why"]
