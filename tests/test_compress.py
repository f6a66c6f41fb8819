"""Compression: every variant is a real .tflite; a converter crash fails one variant only."""

import dataclasses

import numpy as np
import pytest

from pipeline.stages.compress import CompressionJob, compress, weights_by_layer_name
from pipeline.stages.evaluate import LiteRTModel, weight_sparsity
from tests import tiny_models
from tests.expectations import assert_learning_rate_search


def _job(builder, variants, **overrides):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(600, 8)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0.8).astype(np.float32)
    import keras

    model = builder(keras, (8,)) if builder is not tiny_models.crashes_on_fourth_build else tiny_models.tiny_mlp(keras, (8,))
    return CompressionJob(model_builder=builder, input_shape=(8,), model_options={},
                          weights=weights_by_layer_name(model), train_features=features, train_labels=labels,
                          train_sample_weights=None, representative_features=features[:50],
                          variants=variants, **overrides), model, features


def test_every_variant_converts_and_pruning_reaches_its_target():
    rng = np.random.default_rng(1)
    validation = rng.normal(size=(300, 8)).astype(np.float32)
    job, model, features = _job(tiny_models.tiny_mlp, ("float32", "int8", "pruned_int8", "qat_int8", "pqat_int8"),
                                target_sparsity=0.5, validation_features=validation,
                                validation_labels=(validation[:, 0] + 0.5 * validation[:, 1] > 0.8).astype(np.int64))
    results = compress(job, progress=lambda _: None)
    assert list(results) == ["float32", "int8", "pruned_int8", "qat_int8", "pqat_int8"]
    assert all(r.status == "ok" for r in results.values()), {n: r.reason for n, r in results.items()}
    float_scores = np.asarray(model.predict_on_batch(features[:64])).ravel()
    lite_scores = LiteRTModel(results["float32"].tflite).predict(features[:64])
    np.testing.assert_allclose(lite_scores, float_scores, atol=1e-5)
    for name in ("pruned_int8", "pqat_int8"):
        measured = weight_sparsity(results[name].tflite)["sparsity"]
        assert measured == pytest.approx(0.5, abs=0.05), (name, measured)
    assert weight_sparsity(results["int8"].tflite)["sparsity"] < 0.2
    # no groups to judge calibration sets by: the representative rows, and no audit
    assert results["int8"].details["converter"]["calibration_set"] == "representative"
    assert "calibration" not in results["int8"].details
    assert results["pruned_int8"].details["pruned_layers"]
    # the target is spread over the layers by a sensitivity scan on validation, and reached over their weights
    allocation = results["pruned_int8"].details["sparsity_allocation"]
    assert allocation["method"] == "sensitivity" and set(allocation["sparsity"]) == {"hidden_0", "probability"}
    assert allocation["overall"] >= 0.5
    assert results["qat_int8"].details["quantized_layers"]
    # Fine-tuning keeps its best validation epoch; for pruning, only among the epochs after the
    # mask reached its target (the sparsity asserted above is that of the kept weights).
    for name, fine_tuning, first_eligible in (
            ("pruned_int8", results["pruned_int8"].details["fine_tuning"],
             -(-results["pruned_int8"].details["end_step"] // 3)),  # 600 rows / batch 256: 3 steps per epoch
            ("qat_int8", results["qat_int8"].details["fine_tuning"], 1)):
        scores = fine_tuning["validation_pr_auc_by_epoch"]
        assert len(scores) == fine_tuning["epochs"], name
        assert first_eligible > 1 if name == "pruned_int8" else True
        assert fine_tuning["kept_epoch"] >= first_eligible, name
        assert scores[fine_tuning["kept_epoch"] - 1] == max(scores[first_eligible - 1:]), name
    # Every candidate learning rate pruned its own copy; the one built is the best on validation or tied with it
    # (validation_choice.py), and says why.
    assert_learning_rate_search(results["pruned_int8"].details, ["0.001", "0.0001"])



def test_a_deep_ensemble_fine_tunes_member_by_member_and_ships_their_average():
    # Each member fits its own loss, as it was trained (ensemble.py); the average is what is scored, kept and
    # converted, and its full-integer file still runs on the microcontroller runtime.
    from sklearn.metrics import average_precision_score

    from pipeline.domains.tabular import build_mlp
    from pipeline.stages.microcontroller import run_on_microcontroller

    rng = np.random.default_rng(4)
    validation = rng.normal(size=(300, 8)).astype(np.float32)
    validation_labels = (validation[:, 0] + 0.5 * validation[:, 1] > 0.8).astype(np.int64)
    options = {"hidden_units": (16,), "members": 3}
    job, _, _ = _job(tiny_models.tiny_mlp, ("pruned_int8", "qat_int8", "pqat_int8"), target_sparsity=0.5,
                     pruning_learning_rates=(1e-3,), sparsity_allocation="uniform",
                     validation_features=validation, validation_labels=validation_labels)
    import keras

    keras.utils.set_random_seed(4)
    ensemble = build_mlp(keras, (8,), **options)   # a trained float model: int8 then keeps its ranking
    ensemble.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    ensemble.fit(job.train_features, job.train_labels, epochs=15, batch_size=64, verbose=0)
    job = dataclasses.replace(job, model_builder=build_mlp, model_options=options,
                              weights=weights_by_layer_name(ensemble), fine_tune_targets="training",
                              fine_tune_loss="focal")   # the float model's loss, as a recipe may have trained it
    results = compress(job, progress=lambda _: None)
    assert all(r.status == "ok" for r in results.values()), {n: r.reason for n, r in results.items()}
    for name, result in results.items():
        fine_tuning = result.details["fine_tuning"]
        assert fine_tuning["objective"] == "each ensemble member's own loss", name
        assert (fine_tuning["loss"], fine_tuning["rows"]) == ("focal", 600), name
        losses = fine_tuning["member_final_losses"]
        assert len(losses) == 3 and all(np.isfinite(losses)), name
        assert sum(losses) == pytest.approx(fine_tuning["final_loss"], rel=1e-4), name   # the loss fit is theirs
        kept = fine_tuning["validation_pr_auc_by_epoch"][fine_tuning["kept_epoch"] - 1]
        shipped = average_precision_score(validation_labels, LiteRTModel(result.tflite).predict(validation))
        assert shipped == pytest.approx(kept, abs=0.01), name   # the kept epoch is the average's, less int8 steps
    micro = run_on_microcontroller(results["pqat_int8"].tflite, validation[:50])
    assert micro.supported, micro.first_unsupported
    assert {"ADD", "MUL"} <= set(micro.operators)   # the members' average
    assert weight_sparsity(results["pqat_int8"].tflite)["sparsity"] == pytest.approx(0.5, abs=0.05)


def test_pruning_preserving_qat_keeps_the_zeros_of_layers_its_scheme_does_not_mask():
    # tfmot's prune-preserving scheme masks Conv2D and Dense kernels only: a Conv1D's zeros would fill in
    # during QAT fine-tuning unless the pipeline keeps them
    import keras

    rng = np.random.default_rng(2)
    features = rng.normal(size=(900, 12, 2)).astype(np.float32)
    labels = (features[:, :, 0].mean(axis=1) + 0.3 * features[:, :, 1].std(axis=1) > 0.3).astype(np.float32)
    model = tiny_models.tiny_conv1d(keras, (12, 2))
    job = CompressionJob(model_builder=tiny_models.tiny_conv1d, input_shape=(12, 2), model_options={},
                         weights=weights_by_layer_name(model), train_features=features[:600],
                         train_labels=labels[:600], train_sample_weights=None,
                         representative_features=features[:50], variants=("pruned_int8", "pqat_int8"),
                         target_sparsity=0.75, sparsity_allocation="uniform", pruning_learning_rates=(1e-3,),
                         validation_features=features[600:], validation_labels=labels[600:].astype(np.int64))
    results = compress(job, progress=lambda _: None)
    assert all(r.status == "ok" for r in results.values()), {n: r.reason for n, r in results.items()}
    assert results["pqat_int8"].details["zeros_kept_by_mask"] == ["conv"]  # Dense is masked by tfmot itself
    pruned = weight_sparsity(results["pruned_int8"].tflite)["sparsity"]
    preserved = weight_sparsity(results["pqat_int8"].tflite)["sparsity"]
    assert pruned > 0.6 and preserved == pytest.approx(pruned, abs=0.02), (pruned, preserved)


def test_a_converter_crash_becomes_a_failed_variant_and_the_run_goes_on():
    job, _, _ = _job(tiny_models.crashes_on_fourth_build, ("float32", "dynamic_range", "float16", "int8", "pruned_int8"),
                     pruning_learning_rates=(1e-3,))
    messages = []
    results = compress(job, progress=messages.append)
    assert results["int8"].status == "failed"
    assert "SIGSEGV" in results["int8"].reason
    assert results["int8"].tflite is None
    for name in ("float32", "dynamic_range", "float16", "pruned_int8"):
        assert results[name].status == "ok", (name, results[name].reason)
    assert "learning_rate_search" not in results["pruned_int8"].details  # one rate given: nothing to choose
    assert any("int8: FAILED" in m for m in messages)


def test_a_twin_that_does_not_match_names_the_layers():
    import keras
    import tf_keras

    from pipeline.stages.compress import copy_weights_by_layer_name

    trained = weights_by_layer_name(tiny_models.tiny_mlp(keras, (8,)))
    twin = tiny_models.tiny_mlp(tf_keras, (8,), hidden_units=(16, 4))
    with pytest.raises(ValueError, match=r"layers without trained weights \['hidden_1'\]"):
        copy_weights_by_layer_name(trained, twin)


def test_the_twin_carries_the_weights_across_both_ways():
    import keras
    import tf_keras

    from pipeline.stages.twin import build_with_weights, max_output_difference

    rows = np.random.default_rng(2).normal(size=(32, 8)).astype(np.float32)
    trained = tiny_models.tiny_mlp(keras, (8,))
    twin = build_with_weights(tf_keras, tiny_models.tiny_mlp, (8,), {}, weights_by_layer_name(trained))
    back = build_with_weights(keras, tiny_models.tiny_mlp, (8,), {}, weights_by_layer_name(twin))
    assert max_output_difference(trained, twin, rows) < 1e-6
    assert max_output_difference(trained, back, rows) == 0.0


def test_fine_tuning_is_budgeted_in_steps_and_pruning_still_reaches_its_target():
    """A large training split fine-tunes on a shuffled sample per epoch, within --fine-tune-steps in all."""
    rng = np.random.default_rng(2)
    validation = rng.normal(size=(200, 8)).astype(np.float32)
    job, _, _ = _job(tiny_models.tiny_mlp, ("pruned_int8", "qat_int8"), target_sparsity=0.5, batch_size=16,
                     fine_tune_epochs=2, fine_tune_steps=40, pruning_learning_rates=(1e-3,),
                     sparsity_allocation="uniform",
                     validation_features=validation,
                     validation_labels=(validation[:, 0] + 0.5 * validation[:, 1] > 0.8).astype(np.int64))
    results = compress(job, progress=lambda _: None)   # 600 rows / 16 = 38 steps a full pass
    for name in ("pruned_int8", "qat_int8"):
        assert results[name].status == "ok", results[name].reason
        fine_tuning = results[name].details["fine_tuning"]
        assert (fine_tuning["epochs"], fine_tuning["steps_per_epoch"], fine_tuning["steps"]) == (2, 20, 40), name
        assert fine_tuning["rows_per_epoch"] == 320
    pruning = results["pruned_int8"].details
    assert pruning["total_steps"] == 40 and pruning["end_step"] <= 40
    assert pruning["sparsity_allocation"] == {"method": "uniform", "target": 0.5,
                                              "because": "asked for (--sparsity-allocation uniform)"}
    assert pruning["layer_sparsity_after_fine_tuning"] == pytest.approx({"hidden_0": 0.5, "probability": 0.5},
                                                                        abs=0.07)
    assert weight_sparsity(results["pruned_int8"].tflite)["sparsity"] == pytest.approx(0.5, abs=0.05)


def test_fine_tuning_pulls_the_compressed_model_toward_the_float_model_unless_told_to_fit_the_labels():
    # Labels unrelated to the float model: fitting them moves quantization-aware fine-tuning away from the model it
    # replaces; fitting the float model's own scores keeps it there.
    rng = np.random.default_rng(3)
    validation = rng.normal(size=(200, 8)).astype(np.float32)
    outputs = {}
    for targets in ("float_model", "labels"):
        job, model, features = _job(tiny_models.tiny_mlp, ("qat_int8",), fine_tune_targets=targets,
                                    quantization_aware_learning_rate=1e-2, validation_features=validation,
                                    validation_labels=(validation[:, 0] > 0).astype(np.int64))
        job = dataclasses.replace(job, train_labels=(rng.random(len(features)) < 0.5).astype(np.float32))
        result = compress(job, progress=lambda _: None)["qat_int8"]
        assert result.status == "ok", result.reason
        assert result.details["fine_tuning"]["targets"] == targets
        float_scores = np.asarray(model.predict_on_batch(validation)).ravel()
        outputs[targets] = np.abs(LiteRTModel(result.tflite).predict(validation) - float_scores).mean()
    assert outputs["float_model"] < 0.02 and outputs["labels"] > 3 * outputs["float_model"], outputs


def test_pruning_recovery_goes_on_while_validation_improves_and_stops_when_it_does_not():
    # fine_tuning.best_epoch_keeper with stop_after: past the planned epochs, training stops once
    # RECOVERY_PATIENCE epochs pass without a better validation PR-AUC; the best eligible epoch is kept.
    import tf_keras

    from pipeline.stages.fine_tuning import RECOVERY_PATIENCE, best_epoch_keeper

    labels = np.array([0, 1] * 50)

    class Scored:   # ranks more positives first the higher its epoch's quality
        def __init__(self):
            self.epoch_quality = 0.0

        def predict(self, features, **_):
            noise = np.random.default_rng(0).random(len(labels))
            return (1 - self.epoch_quality) * noise + self.epoch_quality * labels

        def get_weights(self):
            return [np.array([self.epoch_quality])]

        def set_weights(self, weights):
            self.epoch_quality = float(weights[0][0])

    class Fitted:
        stop_training = False

    scored = Scored()

    def epochs_run(qualities: list[float], first_eligible: int):
        """Drives the keeper as fit would (stop_after: the planned 6 epochs): (epochs run, the keeper)."""
        fitted = Fitted()
        keeper = best_epoch_keeper(tf_keras, np.zeros((100, 1)), labels, first_eligible=first_eligible,
                                   batch_size=32, scored_model=scored, stop_after=6)
        keeper.set_model(fitted)
        epoch = 0
        while not fitted.stop_training and epoch < len(qualities):
            scored.epoch_quality = qualities[epoch]
            keeper.on_epoch_end(epoch)
            epoch += 1
        return epoch, keeper

    epochs, keeper = epochs_run([0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.12, 0.13, 0.10, 0.10, 0.10], 4)
    assert RECOVERY_PATIENCE == 2 and epochs == 9   # best at 7 (past the planned 6), then 8 and 9 not better
    record = keeper.restore_best(scored)
    assert record["kept_epoch"] == 7 and scored.epoch_quality == pytest.approx(0.14)
    # Not improving at the planned end: it stops there, as without recovery.
    epochs, keeper = epochs_run([0.02, 0.04, 0.12, 0.10, 0.10, 0.08, 0.18], 1)
    assert epochs == 6 and keeper.restore_best(scored)["kept_epoch"] == 3
