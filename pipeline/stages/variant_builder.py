"""Builds the variants, inside the compression child process (compress.py starts it).

Each variant starts from a fresh tf_keras twin of the trained model (twin.py):
  * post-training quantization: float32, dynamic range, float16 and int8 are the twin,
    converted to TFLite with the variant's converter settings;
  * tfmot fine-tuning: pruned_int8 prunes the twin to the target sparsity while fine-tuning
    (each candidate learning rate on its own copy, the best on validation kept); qat_int8
    fine-tunes with fake quantization (BatchNormalization folded first); pqat_int8 does
    pruning-preserving QAT on the pruned model (the zeros of layers tfmot's scheme does not
    mask, Conv1D and Embedding, kept by `fine_tuning.zero_keeper`). Fine-tuning fits what the
    job says (by default what trained the float model; a deep ensemble member by member) and
    keeps the weights of its best epoch on the validation split.

Only this module and fine_tuning.py import tfmot, and only in the child: importing it sets
TF_USE_LEGACY_KERAS=1, which would change what `tf.keras` means in the parent.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from typing import Any, Callable

import numpy as np

from pipeline.stages import calibration_audit, fine_tuning, fitting, validation_choice
from pipeline.stages.batch_norm_folding import fold_batch_normalization
from pipeline.stages.twin import build_with_weights, max_output_difference
from pipeline.stages.variants import CompressionJob, VariantResult


# Validation rows the pruning sensitivity scan scores on (a seeded sample of larger splits).
SENSITIVITY_ROWS = 20000

# Post-training full-integer quantization: int8 weights and activations, calibrated on representative rows.
FULL_INTEGER = {"optimizations": "DEFAULT", "representative_data": True, "supported_ops": "TFLITE_BUILTINS_INT8"}


def child_main(connection, job: CompressionJob, variants: tuple[str, ...], log_path: str) -> None:
    """The compression child's entry point: builds `variants` one after the other, sending
    ("start", name), ("progress", text), ("result", VariantResult) and finally ("finished",)."""
    import sys
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore")
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    builder = VariantBuilder(job, lambda text: connection.send(("progress", text)))
    for name in variants:
        connection.send(("start", name))
        started = time.monotonic()
        try:
            result = builder.build(name)
        except Exception as error:  # a Python-level failure: record it, go on
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            result = VariantResult(name, "failed", reason=_short(detail))
        result.seconds = time.monotonic() - started
        connection.send(("result", result))
    connection.send(("finished",))
    connection.close()


def _recovery_words(planned: int, most: int, run: int, best: int) -> str:
    """How long pruning's recovery ran and why it stopped (fine_tuning.best_epoch_keeper's `stop_after` rule)."""
    stale = run - best
    if run == most and stale < fine_tuning.RECOVERY_PATIENCE:
        why = "stopped at the limit"
    else:
        why = f"stopped after {stale} epochs without a better one"
    return (f"pruning's recovery ran {run} of at most {most} epochs ({planned} planned); best validation PR-AUC at "
            f"epoch {best}, {why}")


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class VariantBuilder:
    """Builds variants inside the child; keeps the pruned model for the PQAT variant."""

    def __init__(self, job: CompressionJob, report: Callable[[str], None]):
        import tensorflow as tf

        from pipeline.runtime import pin_threads, set_deterministic_ops

        pin_threads(job.threads)  # before any op runs in this process
        set_deterministic_ops(job.deterministic_ops)
        import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS=1
        import tf_keras

        self.tf, self.tfmot, self.keras = tf, tfmot, tf_keras
        self.job = job
        self.report = report
        self._pruned: tuple[Any, dict] | None = None
        self._float_scores: np.ndarray | None = None
        self._float_train_scores: np.ndarray | None = None
        # variant -> (its layer_errors.Debugger, its layer table, its file's bytes): selective int8 starts from int8's
        self._debuggers: dict[str, tuple] = {}
        self._calibration: dict | None = None  # the calibration-set audit, once run (calibration_audit.py)
        tf_keras.utils.set_random_seed(job.seed)

    # ---- the twin --------------------------------------------------------------------
    def twin(self):
        """A fresh tf_keras copy of the trained model (new layer objects every call)."""
        options = {**self.job.model_options, **self.job.twin_model_options}
        return build_with_weights(self.keras, self.job.model_builder, self.job.input_shape, options, self.job.weights)

    # ---- the validation split --------------------------------------------------------
    def _validation_has_both_classes(self) -> bool:
        labels = self.job.validation_labels
        return self.job.validation_features is not None and labels is not None and len(np.unique(labels)) == 2

    def _validation_scores(self, model) -> np.ndarray:
        return np.asarray(model.predict(self.job.validation_features, batch_size=max(self.job.batch_size, 1024),
                                        verbose=0), dtype=np.float64).reshape(-1)

    def _threshold_rule(self) -> str:
        return self.job.harm_target.threshold_rule if self.job.harm_target is not None else "f1"

    def _float_validation_scores(self) -> np.ndarray:
        """The float model's validation scores (its tf_keras twin's, the weights the run trained)."""
        if self._float_scores is None:
            self._float_scores = self._validation_scores(self.twin())
        return self._float_scores

    # ---- dispatch --------------------------------------------------------------------
    def build(self, name: str) -> VariantResult:
        if name == "float32":
            return self._converted(name, self.twin(), {})
        if name == "dynamic_range":
            return self._converted(name, self.twin(), {"optimizations": "DEFAULT"})
        if name == "float16":
            return self._converted(name, self.twin(), {"optimizations": "DEFAULT", "supported_types": "float16"})
        if name == "int8":
            model = self.twin()
            settings = self._full_integer(model)
            result = self._converted(name, model, settings)
            if self._calibration is not None:
                result.details["calibration"] = self._calibration
            return self._with_layer_errors(result, model, settings)
        if name == "selective_int8":
            return self._selective_int8()
        if name == "pruned_int8":
            model, details = self._pruned_model()
            settings = self._full_integer()
            return self._with_layer_errors(self._converted(name, model, settings, details), model, settings)
        if name == "qat_int8":
            return self._quantization_aware(name, self.twin(), preserve_sparsity=False, details={})
        if name == "pqat_int8":
            pruned, pruning_details = self._pruned_model()
            return self._quantization_aware(name, pruned, preserve_sparsity=True,
                                            details={"pruning": pruning_details})
        raise ValueError(f"unknown variant {name!r}")

    # ---- the calibration set of full-integer conversions ------------------------------------
    def _calibration_wanted(self) -> bool:
        return bool(self.job.calibration_sets) and self.job.harm_target is not None \
            and self.job.validation_features is not None and self.job.validation_labels is not None

    def _full_integer(self, model=None) -> dict:
        """FULL_INTEGER with the calibration set chosen on validation (calibration_audit.py). The audit runs once,
        the first time a post-training full-integer variant is built, on the trained twin (`model`, or a new one)."""
        if self._calibration is None and self._calibration_wanted():
            from pipeline.stages.evaluate import LiteRTModel

            model = model if model is not None else self.twin()
            sets = {calibration_audit.REPRESENTATIVE: self.job.representative_features, **self.job.calibration_sets}
            self.report(f"calibration-set audit: int8 calibrated on each of {len(sets)} sets, judged on validation")
            self._calibration = calibration_audit.audit(
                convert=lambda name: self._converter(model, {**FULL_INTEGER, "calibration_set": name})[0].convert(),
                predict=lambda content: LiteRTModel(content).predict(self.job.validation_features),
                sets={name: len(rows) for name, rows in sets.items()}, labels=np.asarray(self.job.validation_labels),
                target=self.job.harm_target, column=self.job.calibration_column)
        return {**FULL_INTEGER, "calibration_set": (self._calibration or {}).get("chosen", calibration_audit.REPRESENTATIVE)}

    def _calibration_rows(self, name: str | None) -> np.ndarray:
        if name is None or name not in self.job.calibration_sets:
            return self.job.representative_features
        return self.job.calibration_sets[name]

    # ---- conversion ------------------------------------------------------------------
    def _converted(self, name: str, model, settings: dict, details: dict | None = None) -> VariantResult:
        converter, settings = self._converter(model, settings)
        tflite = converter.convert()
        return VariantResult(name, "ok", tflite=tflite, details={**(details or {}), "converter": settings})

    def _with_layer_errors(self, result: VariantResult, model, settings: dict) -> VariantResult:
        """Adds the quantization debugger's per-layer error of this conversion (on validation rows) to a
        full-integer variant; a debugger failure is recorded, never fails the variant."""
        from pipeline.stages import layer_errors

        rows = self.job.validation_features if self.job.validation_features is not None \
            else self.job.representative_features
        rows = rows[:self.job.layer_debug_rows]
        self.report(f"per-layer quantization error on {len(rows)} validation rows (quantization debugger)")
        try:
            result.layers, debugger = layer_errors.measure(
                self.tf, lambda: self._converter(model, settings)[0], rows, [layer.name for layer in model.layers],
                model.layers[-1].name)
            self._debuggers[result.name] = (debugger, result.layers, len(result.tflite))
        except Exception as error:  # noqa: BLE001 - the variant stands without its diagnosis
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            result.layers = {"error": f"not measured: the quantization debugger failed ({_short(detail, 300)})"}
        return result

    def _selective_int8(self) -> VariantResult:
        """int8 with the layers that most change a group's TPR/FPR kept in float (selective_int8.py)."""
        from ai_edge_litert.interpreter import Interpreter

        from pipeline.stages import selective_int8
        from pipeline.stages.evaluate import LiteRTModel

        name = "selective_int8"
        target = self.job.harm_target
        if target is None or self.job.validation_features is None or self.job.validation_labels is None:
            return VariantResult(name, "skipped", reason="needs the validation split, its groups and the float "
                                                         "model's decisions on it")
        settings = self._full_integer()
        if "int8" not in self._debuggers:  # int8 was not built in this process: its conversion again
            model = self.twin()
            self._with_layer_errors(self._converted("int8", model, settings), model, settings)
        if "int8" not in self._debuggers:
            return VariantResult(name, "failed", reason="the quantization debugger failed on int8")
        debugger, layers, int8_bytes = self._debuggers["int8"]
        features, labels = self.job.validation_features, np.asarray(self.job.validation_labels)

        def float_tensors(content: bytes) -> set[str]:
            interpreter = Interpreter(model_content=content)
            return {detail["name"] for detail in interpreter.get_tensor_details() if detail["dtype"] == np.float32}

        outcome = selective_int8.search(
            quantize=debugger.quantized, predict=lambda content, rows: LiteRTModel(content).predict(rows),
            float_tensors=float_tensors,
            latency=lambda content: LiteRTModel(content).single_example_latency(features[0], runs=50,
                                                                                warmup=5)["median_ms"],
            layers=layers["layers"], int8_bytes=int8_bytes, features=features, labels=labels, target=target,
            report=self.report)
        return VariantResult(name, outcome["status"], tflite=outcome["tflite"], reason=outcome["reason"],
                             details={"selective": outcome["details"], "converter": {
                                 **settings, "quantizer": "MLIR (the quantization debugger's)",
                                 "denylisted_nodes": [r["tensor_name"] for r in outcome["details"]["restored"]]}})

    def _converter(self, model, settings: dict):
        """A TFLite converter of `model` set up with the variant's settings; returns (converter, settings as recorded)."""
        tf = self.tf
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if settings.get("optimizations"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if settings.get("supported_types") == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if settings.get("representative_data"):
            rows = self._calibration_rows(settings.get("calibration_set"))

            def representative_dataset():
                for row in rows:
                    yield [row[None, ...]]

            converter.representative_dataset = representative_dataset
            settings = {**settings, "representative_rows": int(len(rows))}
        if settings.get("supported_ops") == "TFLITE_BUILTINS_INT8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if settings.get("representative_data") and not self.job.per_channel_dense:
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
            settings = {**settings, "dense_quantization": "per-tensor"}
        return converter, settings

    # ---- fine-tuning -----------------------------------------------------------------
    def _fine_tune(self, model, callbacks: list, *, learning_rate: float, eligible_from_step: int = 0,
                   recover: bool = False) -> dict:
        """Fine-tune; keep the weights of the best validation epoch among those that end at or
        after `eligible_from_step` (for pruning: the step the mask reaches its target sparsity).

        recover (pruning): with a validation split, go on past the planned epochs while the validation score still
        improves (fine_tuning.best_epoch_keeper's `stop_after`), up to PRUNING_MAX_EPOCHS_FACTOR x the plan and
        within the --fine-tune-steps budget: a model that lost most of its weights may need longer to recover than
        the plan gives, and the epochs run first are the same either way, so the kept epoch is as good or better on
        validation (measured on AI4I, seed 0: validation PR-AUC 0.907 at epoch 6 of 6, still rising; recovery ran to
        epoch 9 and kept epoch 7 at 0.914, float's 0.912; on test pruned_int8 went from -0.0105 to +0.009)."""
        job = self.job
        epochs, steps_per_epoch, full_pass = self._fine_tuning_plan()
        planned = epochs
        if recover and self._validation_has_both_classes():
            epochs = max(planned, min(fine_tuning.PRUNING_MAX_EPOCHS_FACTOR * planned,
                                      job.fine_tune_steps // steps_per_epoch))
        targets, weights = self._fine_tuning_targets()
        # A deep ensemble fine-tunes as it was trained, each member on its own loss (one output per member, the
        # same layers): fitting only their average lets the members co-adapt and lose the diversity the average
        # is kept for (measured on AI4I, seed 0: pruned_int8 -0.024 PR-AUC against float fitting the average,
        # -0.017 member by member; pqat_int8 -0.016 and -0.007). The average is still what is scored and kept.
        members = fine_tuning.averaged_members(self.keras, model)
        trained = model if members is None else self.keras.Model(model.inputs, members)
        if members is not None:
            targets = [targets] * len(members)
            weights = None if weights is None else [weights] * len(members)
        loss = "binary_crossentropy" if job.fine_tune_targets == "float_model" else job.fine_tune_loss
        trained.compile(optimizer=self.keras.optimizers.Adam(learning_rate), loss=fitting.make_loss(self.keras, loss))
        first_eligible = max(1, math.ceil(eligible_from_step / steps_per_epoch))  # 1-based epoch
        keeper = fine_tuning.best_epoch_keeper(self.keras, job.validation_features, job.validation_labels,
                                               first_eligible=first_eligible, batch_size=job.batch_size,
                                               scored_model=model, stop_after=planned if epochs > planned else None)
        history = trained.fit(job.train_features, targets, sample_weight=weights,
                              batch_size=job.batch_size, epochs=epochs, verbose=0, shuffle=True,
                              steps_per_epoch=None if steps_per_epoch == full_pass else steps_per_epoch,
                              callbacks=[*callbacks, *([keeper] if keeper else [])])
        epochs_run = len(history.history["loss"])
        summary = {"epochs": epochs_run, "steps": epochs_run * steps_per_epoch, "steps_per_epoch": steps_per_epoch,
                   "rows_per_epoch": min(steps_per_epoch * job.batch_size, len(job.train_labels)),
                   "sampled": steps_per_epoch < full_pass,
                   "learning_rate": learning_rate, "final_loss": float(history.history["loss"][-1]),
                   "targets": job.fine_tune_targets, "loss": loss, "rows": int(len(job.train_labels))}
        if members is not None:
            summary["objective"] = "each ensemble member's own loss"
            summary["member_final_losses"] = [float(history.history[f"{name}_loss"][-1])
                                              for name in trained.output_names]
        if keeper is None:
            summary["kept_epoch"] = epochs_run
            summary["kept_because"] = "last epoch (no validation split given)"
        else:
            summary.update(keeper.restore_best(model))
        if epochs > planned:
            summary.update(planned_epochs=planned, most_epochs=epochs,
                           recovery=_recovery_words(planned, epochs, epochs_run, summary["kept_epoch"]))
        return summary

    def _fine_tuning_targets(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(targets, sample weights) that fine-tuning fits: the float model's scores on the training rows, or the
        job's targets and weights (CompressionJob.fine_tune_targets)."""
        job = self.job
        if job.fine_tune_targets != "float_model":
            return job.train_labels, job.train_sample_weights
        if self._float_train_scores is None:
            self.report("    fine-tuning targets: the float model's scores on the training rows (self-distillation)")
            scores = self.twin().predict(job.train_features, batch_size=max(job.batch_size, 4096), verbose=0)
            self._float_train_scores = np.asarray(scores, dtype=np.float32).reshape(np.shape(job.train_labels))
        return self._float_train_scores, None

    def _fine_tuning_plan(self) -> tuple[int, int, int]:
        """(epochs, steps per epoch, steps of a full pass over the training rows) of every fine-tuning.

        tfmot's schedules need enough steps to act, so tiny data repeats epochs (at least 20 steps); large data
        is budgeted in steps (`fine_tune_steps` in all): each epoch is then a shuffled sample of the rows, so
        1.5 million rows fine-tune in the time of a few hundred thousand, with the same number of epochs to
        keep the best of."""
        job = self.job
        full_pass = math.ceil(len(job.train_labels) / job.batch_size)
        epochs = max(job.fine_tune_epochs, math.ceil(20 / full_pass))
        steps_per_epoch = min(full_pass, max(1, job.fine_tune_steps // epochs))
        return epochs, steps_per_epoch, full_pass

    def _pruning_schedule(self, final_sparsity: float):
        epochs, steps_per_epoch, _ = self._fine_tuning_plan()
        total_steps = epochs * steps_per_epoch
        # Reach the target after 60 % of the steps (10 mask updates), then let the
        # remaining steps recover quality with the mask fixed. tfmot prunes only on steps
        # that are multiples of `frequency`: an end step it never reaches prunes nothing.
        frequency = max(1, int(0.6 * total_steps) // 10)
        updates = max(1, min(10, int(0.6 * total_steps) // frequency))
        end_step = frequency * updates
        schedule = self.tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=final_sparsity,
            begin_step=0, end_step=end_step, frequency=frequency)
        return schedule, {"schedule": "polynomial_decay", "begin_step": 0, "end_step": end_step,
                          "frequency": frequency, "total_steps": total_steps}

    def _pruned_model(self):
        """Prune every layer tfmot can prune, fine-tune, strip. Cached for PQAT.

        With several candidate learning rates (and a validation split), each prunes its own copy
        of the twin and the copy whose kept epoch scores best on validation is the one kept.
        """
        if self._pruned is not None:
            return self._pruned
        from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

        sparsity = self.tfmot.sparsity.keras
        allocation = self._layer_sparsity()
        layer_sparsity = allocation.get("sparsity") or {}  # none given ("uniform"): every layer at the target
        _, schedule_details = self._pruning_schedule(self.job.target_sparsity)
        rates = self.job.pruning_learning_rates if self._validation_has_both_classes() \
            else self.job.pruning_learning_rates[:1]
        tried: dict[float, tuple[Any, dict]] = {}
        for rate in rates:
            pruned_layers, skipped_layers, kept_dense = [], {}, []

            def wrap(layer):
                if not layer.weights:
                    return layer
                if not PruneRegistry.supports(layer):
                    skipped_layers[layer.name] = f"tfmot cannot prune {type(layer).__name__} layers"
                    return layer
                level = layer_sparsity.get(layer.name, self.job.target_sparsity)
                if level <= 0.0:
                    kept_dense.append(layer.name)
                    return layer
                pruned_layers.append(layer.name)
                return sparsity.prune_low_magnitude(layer, pruning_schedule=self._pruning_schedule(level)[0])

            model = self.keras.models.clone_model(self.twin(), clone_function=wrap)
            if not pruned_layers:
                raise RuntimeError("no layer of this model can be pruned by tfmot")
            self.report(f"pruning {len(pruned_layers)} layers to {self.job.target_sparsity:.0%} sparsity "
                        + ("overall (per layer by sensitivity) " if allocation["method"] == "sensitivity" else "")
                        + f"while fine-tuning at learning rate {rate:g}"
                        + (f" ({len(tried) + 1} of {len(rates)})" if len(rates) > 1 else ""))
            training = self._fine_tune(model, [sparsity.UpdatePruningStep()], learning_rate=rate,
                                       eligible_from_step=schedule_details["end_step"], recover=True)
            stripped = sparsity.strip_pruning(model)
            tried[rate] = (stripped, {
                "target_sparsity": self.job.target_sparsity,
                **schedule_details,
                "fine_tuning": training,
                "pruned_layers": pruned_layers,
                "kept_dense_layers": kept_dense,
                "skipped_layers": skipped_layers,
                "sparsity_allocation": allocation,
                "sparsity_after_fine_tuning": fine_tuning.kernel_sparsity(stripped, pruned_layers + kept_dense),
                "layer_sparsity_after_fine_tuning": {
                    name: value for name in pruned_layers + kept_dense
                    if (value := fine_tuning.kernel_sparsity(stripped, [name])) is not None},  # None: BatchNorm
            })
        if len(rates) > 1:
            names = {f"{rate:g}": rate for rate in rates}
            search = validation_choice.choose_candidate(
                self.job.validation_labels,
                {name: self._validation_scores(tried[rate][0]) for name, rate in names.items()},
                self._float_validation_scores(), threshold_rule=self._threshold_rule(), seed=self.job.seed)
            for name, rate in names.items():
                search["candidates"][name]["kept_epoch"] = tried[rate][1]["fine_tuning"]["kept_epoch"]
            chosen = names[search["chosen"]]
            stripped, details = tried[chosen]
            details["learning_rate_search"] = {**search, "chosen": chosen}
        else:
            chosen = rates[0]
            stripped, details = tried[chosen]
            if len(self.job.pruning_learning_rates) > 1:
                details["learning_rate_search"] = {
                    "chosen": chosen, "chosen_because": "the first candidate (no validation split with both classes)"}
        self._pruned = (stripped, details)
        return self._pruned

    def _layer_sparsity(self) -> dict:
        """How the target sparsity is spread over the prunable layers (pruning_sensitivity.py), as recorded.

        "sensitivity": each layer pruned alone, by magnitude, to each scanned level on the validation split
        (PR-AUC, as fine-tuning keeps its best epoch by), and the levels allocated ("sparsity": layer -> level) so
        that the weights pruned overall reach the target. "uniform" (no "sparsity"): the target for every layer,
        where the job asks for it, has no validation split with both classes, or no layer can be scanned."""
        from sklearn.metrics import average_precision_score
        from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

        from pipeline.stages import pruning_sensitivity

        job = self.job
        uniform = {"method": "uniform", "target": job.target_sparsity}
        if job.sparsity_allocation == "uniform":
            return {**uniform, "because": "asked for (--sparsity-allocation uniform)"}
        labels = None if job.validation_labels is None else np.asarray(job.validation_labels).reshape(-1)
        if job.validation_features is None or labels is None or len(np.unique(labels)) < 2:
            return {**uniform, "because": "no validation split with both classes to scan on"}
        model = self.twin()
        variables = {}
        for layer in model.layers:
            if not layer.weights or not PruneRegistry.supports(layer) or PruneRegistry._is_rnn_layer(layer) \
                    or PruneRegistry._is_mha_layer(layer):
                continue
            names = PruneRegistry._weight_names(layer)
            if names:
                variables[layer.name] = [getattr(layer, name) for name in names]
        if not variables:
            return {**uniform, "because": "no layer whose pruned weights the scan can set"}
        rows = np.random.default_rng(job.seed).permutation(len(labels))[:SENSITIVITY_ROWS] \
            if len(labels) > SENSITIVITY_ROWS else np.arange(len(labels))
        features, labels = job.validation_features[rows], labels[rows]

        def set_weights(name: str, arrays: list[np.ndarray]) -> None:
            for variable, array in zip(variables[name], arrays):
                variable.assign(array)

        def score() -> float:
            scores = model.predict(features, batch_size=max(job.batch_size, 1024), verbose=0).reshape(-1)
            return float(average_precision_score(labels, scores))

        levels = tuple(sorted(set(pruning_sensitivity.LEVELS) | {job.target_sparsity}))
        measured = pruning_sensitivity.scan({name: [np.array(v.numpy()) for v in vs] for name, vs in variables.items()},
                                            set_weights, score, levels=levels, report=self.report)
        sizes = {name: int(sum(np.size(v.numpy()) for v in vs)) for name, vs in variables.items()}
        allocation = pruning_sensitivity.allocate(measured, sizes, job.target_sparsity)
        return {
            "method": "sensitivity", "target": job.target_sparsity, "overall": allocation["overall"],
            "tolerance": allocation["tolerance"], "sparsity": allocation["sparsity"],
            "scored_at": allocation["scored_at"],
            "drops": allocation["drops"], "weights": sizes, "rows": int(len(labels)), "metric": "pr_auc",
            "dense_score": round(measured["dense"], 5),
            "scan": {name: {f"{level:g}": round(value, 5) for level, value in curve.items()}
                     for name, curve in measured["layers"].items()}}

    def _quantization_aware(self, name: str, base_model, *, preserve_sparsity: bool, details: dict) -> VariantResult:
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
            Default8BitQuantizeRegistry,
        )

        # tfmot keeps a BatchNormalization after a convolution as its own layer, which the converter
        # cannot fold into an already fake-quantized kernel (it stays as int8 MUL + ADD ops, measured:
        # 2.5x the latency of post-training int8 for the imaging CNN): fold it into the kernel and bias
        # first, so QAT trains, and the file holds, the folded convolution.
        try:
            folded_model, folded = fold_batch_normalization(self.keras, base_model)
        except Exception as error:  # noqa: BLE001 - an unusual graph: QAT goes on unfolded, and says so
            folded_model, folded = base_model, []
            details = {**details, "folded_batch_normalization": f"not folded: {type(error).__name__}: {error}"}
        if folded:
            difference = max_output_difference(base_model, folded_model, self.job.representative_features[:64])
            details = {**details, "folded_batch_normalization": folded,
                       "folding_max_output_difference": difference}
            base_model = folded_model
        quantization = self.tfmot.quantization.keras
        registry = Default8BitQuantizeRegistry()
        quantized_layers, skipped_layers = [], {}

        def annotate(layer):
            if isinstance(layer, self.keras.layers.InputLayer):
                return layer
            if registry.supports(layer):
                if layer.weights:
                    quantized_layers.append(layer.name)
                return quantization.quantize_annotate_layer(layer)
            skipped_layers[layer.name] = f"tfmot's default 8-bit scheme does not support {type(layer).__name__}"
            return layer

        annotated = self.keras.models.clone_model(base_model, clone_function=annotate)
        if not quantized_layers:
            return VariantResult(name, "skipped",
                                 reason="no layer of this model is supported by quantization-aware training",
                                 details={"skipped_layers": skipped_layers})
        with quantization.quantize_scope():
            if preserve_sparsity:
                from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
                    default_8bit_prune_preserve_quantize_scheme as prune_preserve,
                )

                model = quantization.quantize_apply(
                    annotated, scheme=prune_preserve.Default8BitPrunePreserveQuantizeScheme())
            else:
                model = quantization.quantize_apply(annotated)
        self.report(f"quantization-aware fine-tuning of {len(quantized_layers)} layers"
                    + (" (preserving sparsity)" if preserve_sparsity else ""))
        keeper = (fine_tuning.zero_keeper(self.keras, model, details["pruning"]["pruned_layers"])
                  if preserve_sparsity else None)
        training = self._fine_tune(model, [keeper] if keeper else [],
                                   learning_rate=self.job.quantization_aware_learning_rate)
        details = {**details, "fine_tuning": training, "quantized_layers": quantized_layers,
                   "skipped_layers": skipped_layers}
        if keeper is not None:
            details["zeros_kept_by_mask"] = keeper.layer_names
        result = self._converted(name, model, {"optimizations": "DEFAULT", "representative_data": True}, details)
        # TensorFlow's debugger instruments post-training calibration (NumericVerify after each op it quantizes);
        # a quantization-aware model carries its ranges in fake-quant nodes, and the debugger finds nothing to
        # verify ("Please check if the quantized model is in debug mode").
        result.layers = {"error": "not measured: TensorFlow's quantization debugger instruments post-training "
                                  "quantization only, and this variant's ranges were learnt in training"}
        return result
