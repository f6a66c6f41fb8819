"""Compress: a tf_keras twin of the trained model, tfmot fine-tuning, TFLite conversion.

tfmot (pruning, QAT, pruning-preserving QAT) works only on tf_keras (Keras 2) models, so
this stage rebuilds the trained Keras 3 model with the domain's own Functional builder on
the tf_keras module and copies the weights over (`set_weights`). Nothing else in the
package imports tf_keras or tfmot.

All of that happens in a *spawned child process*, for two reasons:
  * the TFLite converter can kill its own process (a segfault was seen with int8
    conversion of recurrent models), and a crash must become a failed variant, not a
    failed run; when the child dies, the variant it was working on is recorded as
    failed with the signal, and a fresh child carries on with the variants left;
  * importing tfmot sets TF_USE_LEGACY_KERAS=1, which would change what `tf.keras` means
    for the rest of the parent process.

Every variant comes back as `.tflite` bytes plus the details of what was done to it
(which layers were pruned or quantized, which were skipped and why).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pipeline.config import ALL_VARIANTS, PRUNING_LEARNING_RATES
from pipeline.console import descriptors_redirected

DESCRIPTIONS = {
    "float32": "TFLite float32, no quantization",
    "dynamic_range": "post-training dynamic-range quantization (int8 weights, float activations)",
    "float16": "post-training float16 quantization (float16 weights)",
    "int8": "post-training full-integer quantization (int8 weights and activations, float interface)",
    "pruned_int8": "magnitude pruning (polynomial decay) + fine-tuning, then full-integer int8",
    "qat_int8": "quantization-aware training, then int8",
    "pqat_int8": "pruning, then pruning-preserving quantization-aware training, then int8",
}


@dataclass(frozen=True)
class CompressionJob:
    """Everything the child process needs; it is pickled into the child."""

    model_builder: Callable[..., Any]     # module-level function: (keras_module, input_shape, **options)
    input_shape: tuple[int, ...]
    model_options: dict
    # Trained Keras 3 weights by layer name. Builders name every layer that has weights,
    # so the twin finds them whatever else differs (e.g. an unrolled recurrent layer).
    weights: dict[str, list[np.ndarray]]
    train_features: np.ndarray
    train_labels: np.ndarray
    train_sample_weights: np.ndarray | None
    representative_features: np.ndarray   # rows from train for int8 calibration (model input dtype)
    # The validation split: fine-tuning keeps the weights of its best epoch on it (validation
    # PR-AUC, the criterion that stopped training); without it, the last epoch's weights.
    validation_features: np.ndarray | None = None
    validation_labels: np.ndarray | None = None
    # Overrides of model_options for the tf_keras twin that is converted, e.g.
    # {"unroll": True} for a recurrent layer.
    twin_model_options: dict = field(default_factory=dict)
    variants: tuple[str, ...] = ALL_VARIANTS
    target_sparsity: float = 0.75
    fine_tune_epochs: int = 6
    # Pruning has to recover from losing most weights, at a learning rate that depends on the
    # model and data: each candidate fine-tunes its own copy and the best on validation is kept
    # (benchmarks/pruning_learning_rate.py: the training rate, 1e-3, suits models still improving
    # late in training; 1e-4 suits those that peaked in their first epochs).
    # QAT only adapts to quantization noise: a small one (as the tfmot guides do).
    pruning_learning_rates: tuple[float, ...] = PRUNING_LEARNING_RATES
    quantization_aware_learning_rate: float = 1e-4
    # Per-channel weight scales for Dense layers in post-training int8. Off by default:
    # per-tensor scales are what QAT uses, and they save 24 bytes per output channel
    # (measured on the fraud MLP: 0.27x instead of 0.32x the float32 file, PR-AUC within 0.001).
    per_channel_dense: bool = False
    batch_size: int = 256
    seed: int = 0
    # The run's TensorFlow settings (pipeline.runtime), applied in the child before its first op:
    # thread pools of this size (None: EDGEAUDIT_THREADS or its default) and op determinism.
    # With the same seed they make fine-tuning, and so the .tflite bytes, reproducible.
    threads: int | None = None
    deterministic_ops: bool = False
    # A variant that takes longer than this is stopped and recorded as failed.
    variant_timeout_seconds: float = 900.0


@dataclass
class VariantResult:
    name: str
    status: str                       # "ok" | "skipped" | "failed"
    tflite: bytes | None = None
    reason: str | None = None
    details: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict:
        """JSON-able description without the bytes."""
        return {
            "name": self.name,
            "description": DESCRIPTIONS.get(self.name, ""),
            "status": self.status,
            "reason": self.reason,
            "details": self.details,
            "seconds": round(self.seconds, 3),
        }


def compress(job: CompressionJob, *, progress: Callable[[str], None] = print) -> dict[str, VariantResult]:
    """Build every requested variant; a crash or timeout in the child fails one variant only."""
    remaining = [name for name in ALL_VARIANTS if name in job.variants]
    results: dict[str, VariantResult] = {}
    context = multiprocessing.get_context("spawn")
    # The converter writes C++ logging straight to file descriptors 1 and 2; the child
    # sends those to this log, and the log's tail explains a crash.
    log_file = tempfile.NamedTemporaryFile(prefix="edgeaudit-compress-", suffix=".log", delete=False)
    log_file.close()
    try:
        while remaining:
            _run_child(context, job, remaining, results, log_file.name, progress)
    finally:
        os.unlink(log_file.name)
    return {name: results[name] for name in ALL_VARIANTS if name in results}


def _run_child(context, job: CompressionJob, remaining: list[str], results: dict[str, VariantResult],
               log_path: str, progress: Callable[[str], None]) -> None:
    """One child process: builds variants from `remaining` until done, crashed or stopped.

    Removes every variant it settles (built, skipped or failed) from `remaining`.
    """
    parent_end, child_end = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(child_end, job, tuple(remaining), log_path), daemon=True)
    current: str | None = None
    started = time.monotonic()
    try:
        # The child writes to the log from its first instruction (not only once _child_main
        # runs): a Ctrl+C that reaches it while it still imports leaves its traceback there,
        # not on the terminal after the CLI's clean message.
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
        try:
            with descriptors_redirected(log, descriptors=(1, 2)):
                child.start()
        finally:
            os.close(log)
        child_end.close()
        while True:
            timeout = job.variant_timeout_seconds - (time.monotonic() - started)
            if timeout <= 0 or not parent_end.poll(timeout):
                child.kill()
                child.join()
                if current is None:
                    raise RuntimeError(f"the compression child process did not start a variant within "
                                       f"{job.variant_timeout_seconds:.0f} s")
                results[current] = VariantResult(
                    current, "failed", reason=f"stopped after {job.variant_timeout_seconds:.0f} s without finishing",
                    seconds=time.monotonic() - started)
                progress(f"  {current}: FAILED ({results[current].reason}); continuing with the others")
                remaining.remove(current)
                return
            try:
                message = parent_end.recv()
            except EOFError:  # the child died: a converter crash, or out of memory
                child.join()
                if current is None:
                    raise RuntimeError(f"the compression child process died before starting a variant: "
                                       f"{_describe_death(child.exitcode, log_path)}") from None
                results[current] = VariantResult(
                    current, "failed", reason=_describe_death(child.exitcode, log_path),
                    seconds=time.monotonic() - started)
                progress(f"  {current}: FAILED ({results[current].reason}); continuing with the others")
                remaining.remove(current)
                return
            kind = message[0]
            if kind == "start":
                current, started = message[1], time.monotonic()
                progress(f"  {current}: {DESCRIPTIONS[current]} ...")
            elif kind == "progress":
                progress(f"    {message[1]}")
            elif kind == "result":
                result: VariantResult = message[1]
                results[result.name] = result
                remaining.remove(result.name)
                current = None
                size = f", {len(result.tflite):,} bytes" if result.tflite else ""
                reason = f" ({result.reason})" if result.reason else ""
                progress(f"  {result.name}: {result.status}{size}{reason} in {result.seconds:.1f} s")
            elif kind == "finished":
                child.join()
                return
    except BaseException:  # Ctrl+C (or any failure here): the child goes with the run
        if child.is_alive():
            child.kill()
            child.join()
        raise
    finally:
        parent_end.close()


def _describe_death(exitcode: int | None, log_path: str) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        text = f"the converter process crashed ({name}); the other variants were built in a fresh process"
    else:
        text = f"the converter process exited unexpectedly (exit code {exitcode})"
    with open(log_path, errors="replace") as log:
        last_lines = [line.strip() for line in log.read().splitlines() if line.strip()][-3:]
    return text + (f"; last output: {' | '.join(last_lines)}" if last_lines else "")


# --------------------------------------------------------------------------------------
# Everything below runs in the child process only.
# --------------------------------------------------------------------------------------

def _child_main(connection, job: CompressionJob, variants: tuple[str, ...], log_path: str) -> None:
    import sys
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore")
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    worker = _Worker(job, lambda text: connection.send(("progress", text)))
    for name in variants:
        connection.send(("start", name))
        started = time.monotonic()
        try:
            result = worker.build(name)
        except Exception as error:  # a Python-level failure: record it, go on
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            result = VariantResult(name, "failed", reason=_short(detail))
        result.seconds = time.monotonic() - started
        connection.send(("result", result))
    connection.send(("finished",))
    connection.close()


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Worker:
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
        tf_keras.utils.set_random_seed(job.seed)

    # ---- the twin --------------------------------------------------------------------
    def twin(self):
        """A fresh tf_keras copy of the trained model (new layer objects every call)."""
        options = {**self.job.model_options, **self.job.twin_model_options}
        model = self.job.model_builder(self.keras, self.job.input_shape, **options)
        copy_weights_by_layer_name(self.job.weights, model)
        return model

    # ---- dispatch --------------------------------------------------------------------
    def build(self, name: str) -> VariantResult:
        if name == "float32":
            return self._converted(name, self.twin(), {})
        if name == "dynamic_range":
            return self._converted(name, self.twin(), {"optimizations": "DEFAULT"})
        if name == "float16":
            return self._converted(name, self.twin(), {"optimizations": "DEFAULT", "supported_types": "float16"})
        if name == "int8":
            return self._converted(name, self.twin(), {"optimizations": "DEFAULT", "representative_data": True,
                                                       "supported_ops": "TFLITE_BUILTINS_INT8"})
        if name == "pruned_int8":
            model, details = self._pruned_model()
            return self._converted(name, model, {"optimizations": "DEFAULT", "representative_data": True,
                                                 "supported_ops": "TFLITE_BUILTINS_INT8"}, details)
        if name == "qat_int8":
            return self._quantization_aware(name, self.twin(), preserve_sparsity=False, details={})
        if name == "pqat_int8":
            pruned, pruning_details = self._pruned_model()
            return self._quantization_aware(name, pruned, preserve_sparsity=True,
                                            details={"pruning": pruning_details})
        raise ValueError(f"unknown variant {name!r}")

    # ---- conversion ------------------------------------------------------------------
    def _converted(self, name: str, model, settings: dict, details: dict | None = None) -> VariantResult:
        tf = self.tf
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if settings.get("optimizations"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if settings.get("supported_types") == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if settings.get("representative_data"):
            rows = self.job.representative_features

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
        tflite = converter.convert()
        return VariantResult(name, "ok", tflite=tflite, details={**(details or {}), "converter": settings})

    # ---- fine-tuning -----------------------------------------------------------------
    def _fine_tune(self, model, callbacks: list, *, learning_rate: float, eligible_from_step: int = 0) -> dict:
        """Fine-tune; keep the weights of the best validation epoch among those that end at or
        after `eligible_from_step` (for pruning: the step the mask reaches its target sparsity)."""
        job = self.job
        steps_per_epoch = math.ceil(len(job.train_labels) / job.batch_size)
        # tfmot's schedules need enough steps to act; repeat epochs on tiny data.
        epochs = max(job.fine_tune_epochs, math.ceil(20 / steps_per_epoch))
        model.compile(optimizer=self.keras.optimizers.Adam(learning_rate),
                      loss="binary_crossentropy")
        first_eligible = max(1, math.ceil(eligible_from_step / steps_per_epoch))  # 1-based epoch
        keeper = _best_epoch_keeper(self.keras, job.validation_features, job.validation_labels,
                                    first_eligible=first_eligible, batch_size=job.batch_size)
        history = model.fit(job.train_features, job.train_labels, sample_weight=job.train_sample_weights,
                            batch_size=job.batch_size, epochs=epochs, verbose=0, shuffle=True,
                            callbacks=[*callbacks, *([keeper] if keeper else [])])
        summary = {"epochs": epochs, "steps": epochs * steps_per_epoch, "learning_rate": learning_rate,
                   "final_loss": float(history.history["loss"][-1])}
        if keeper is None:
            summary["kept_epoch"] = epochs
            summary["kept_because"] = "last epoch (no validation split given)"
        else:
            summary.update(keeper.restore_best(model))
        return summary

    def _pruning_schedule(self):
        job = self.job
        steps_per_epoch = math.ceil(len(job.train_labels) / job.batch_size)
        total_steps = max(job.fine_tune_epochs, math.ceil(20 / steps_per_epoch)) * steps_per_epoch
        # Reach the target after 60 % of the steps (10 mask updates), then let the
        # remaining steps recover quality with the mask fixed. tfmot prunes only on steps
        # that are multiples of `frequency`: an end step it never reaches prunes nothing.
        frequency = max(1, int(0.6 * total_steps) // 10)
        updates = max(1, min(10, int(0.6 * total_steps) // frequency))
        end_step = frequency * updates
        schedule = self.tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=job.target_sparsity,
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
        schedule, schedule_details = self._pruning_schedule()
        rates = self.job.pruning_learning_rates if self.job.validation_features is not None \
            else self.job.pruning_learning_rates[:1]
        tried: dict[float, tuple[Any, dict]] = {}
        for rate in rates:
            pruned_layers, skipped_layers = [], {}

            def wrap(layer):
                if not layer.weights:
                    return layer
                if PruneRegistry.supports(layer):
                    pruned_layers.append(layer.name)
                    return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
                skipped_layers[layer.name] = f"tfmot cannot prune {type(layer).__name__} layers"
                return layer

            model = self.keras.models.clone_model(self.twin(), clone_function=wrap)
            if not pruned_layers:
                raise RuntimeError("no layer of this model can be pruned by tfmot")
            self.report(f"pruning {len(pruned_layers)} layers to {self.job.target_sparsity:.0%} sparsity while "
                        f"fine-tuning at learning rate {rate:g}"
                        + (f" ({len(tried) + 1} of {len(rates)})" if len(rates) > 1 else ""))
            training = self._fine_tune(model, [sparsity.UpdatePruningStep()], learning_rate=rate,
                                       eligible_from_step=schedule_details["end_step"])
            stripped = sparsity.strip_pruning(model)
            tried[rate] = (stripped, {
                "target_sparsity": self.job.target_sparsity,
                **schedule_details,
                "fine_tuning": training,
                "pruned_layers": pruned_layers,
                "skipped_layers": skipped_layers,
                "sparsity_after_fine_tuning": _kernel_sparsity(stripped, pruned_layers),
            })
        chosen = max(rates, key=lambda rate: _kept_validation_score(tried[rate][1]["fine_tuning"]))
        stripped, details = tried[chosen]
        if len(rates) > 1:
            details["learning_rate_search"] = {
                "candidates": {f"{rate:g}": {"kept_epoch": tried[rate][1]["fine_tuning"]["kept_epoch"],
                                             "validation_pr_auc": _kept_validation_score(tried[rate][1]["fine_tuning"])}
                               for rate in rates},
                "chosen": chosen,
                "chosen_because": "best validation PR-AUC at its kept epoch",
            }
        elif len(self.job.pruning_learning_rates) > 1:
            details["learning_rate_search"] = {"chosen": chosen,
                                               "chosen_because": "the first candidate (no validation split given)"}
        self._pruned = (stripped, details)
        return self._pruned

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
            rows = self.job.representative_features[:64]
            difference = float(np.max(np.abs(np.asarray(base_model(rows, training=False))
                                              - np.asarray(folded_model(rows, training=False)))))
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
        training = self._fine_tune(model, [], learning_rate=self.job.quantization_aware_learning_rate)
        details = {**details, "fine_tuning": training, "quantized_layers": quantized_layers,
                   "skipped_layers": skipped_layers}
        if preserve_sparsity and skipped_layers:
            details["note"] = "layers left out of QAT keep float weights and lose their pruning-preserving guarantee"
        return self._converted(name, model, {"optimizations": "DEFAULT", "representative_data": True}, details)


def _best_epoch_keeper(keras, features: np.ndarray | None, labels: np.ndarray | None, *, first_eligible: int,
                       batch_size: int):
    """A `keras.callbacks.Callback` (of the given Keras module) that scores every epoch on the
    validation split by PR-AUC and keeps the weights of the best eligible epoch; None without
    a validation split with both classes."""
    if features is None or labels is None or len(labels) == 0 or len(np.unique(labels)) < 2:
        return None
    from sklearn.metrics import average_precision_score

    class KeepBestEpoch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.scores: list[float] = []
            self.best: tuple[float, int, list[np.ndarray]] | None = None

        def on_epoch_end(self, epoch, logs=None):
            scores = np.asarray(self.model.predict(features, batch_size=max(batch_size, 1024), verbose=0)).reshape(-1)
            score = float(average_precision_score(labels, scores))
            self.scores.append(score)
            if epoch + 1 >= first_eligible and (self.best is None or score > self.best[0]):
                self.best = (score, epoch + 1, [np.array(w) for w in self.model.get_weights()])

        def restore_best(self, model) -> dict:
            score, epoch, weights = self.best
            model.set_weights(weights)
            return {"kept_epoch": epoch,
                    "kept_because": (f"best validation PR-AUC among epochs {first_eligible}-{len(self.scores)}"
                                     + (" (the epochs after the pruning schedule reached its target)"
                                        if first_eligible > 1 else "")),
                    "validation_pr_auc_by_epoch": [round(s, 5) for s in self.scores]}

    return KeepBestEpoch()


def _kept_validation_score(fine_tuning: dict) -> float:
    """Validation PR-AUC of the epoch a fine-tune kept (-inf when it had no validation split)."""
    scores = fine_tuning.get("validation_pr_auc_by_epoch")
    return float(scores[fine_tuning["kept_epoch"] - 1]) if scores else float("-inf")


def fold_batch_normalization(keras, model) -> tuple[Any, list[str]]:
    """Fold every BatchNormalization that directly follows a Conv2D / DepthwiseConv2D / Dense.

    A pair folds when the layer has a linear activation, is called once, and feeds only the
    BatchNormalization, which normalises its last axis. The folded layer keeps its name and
    gets a bias: kernel * s and (bias - moving_mean) * s + beta, s = gamma / sqrt(moving_variance
    + epsilon), so in inference the new model computes what the old one did. A plain ReLU layer
    that alone follows the BatchNormalization becomes the folded layer's activation: tfmot's
    LayerReLUQuantize transform gives a Conv2D / Dense feeding a ReLU *layer* a no-op quantize
    config, which leaves its weights out of QAT (and out of pruning-preserving QAT's sparsity
    masks). Returns (a new functional model, ["<batch norm> into <layer>", ...]); (model, [])
    when nothing folds.
    """
    foldable = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    config = model.get_config()
    if "output_layers" not in config or any("inbound_nodes" not in entry for entry in config.get("layers", [])):
        return model, []   # not a functional model
    entries = {entry["name"]: entry for entry in config["layers"]}
    consumers: dict[str, list[str]] = {name: [] for name in entries}
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for inbound in node:
                consumers[inbound[0]].append(entry["name"])
    output_names = {item[0] for item in config["output_layers"]}
    pairs: dict[str, str] = {}  # batch norm -> the layer it folds into
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        nodes = entries[layer.name]["inbound_nodes"]
        if len(nodes) != 1 or len(nodes[0]) != 1:
            continue
        producer = model.get_layer(nodes[0][0][0])
        axis = layer.get_config()["axis"]
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if (isinstance(producer, foldable) and producer.get_config().get("activation") == "linear"
                and len(entries[producer.name]["inbound_nodes"]) == 1 and consumers[producer.name] == [layer.name]
                and producer.name not in output_names and axis in (-1, len(layer.input_shape) - 1)):
            pairs[layer.name] = producer.name
    if not pairs:
        return model, []
    removed: dict[str, str] = {}  # a removed layer -> the layer whose output replaces its output
    described = []
    for batch_norm, producer in pairs.items():
        entries[producer]["config"]["use_bias"] = True
        removed[batch_norm] = producer
        followers = consumers[batch_norm]
        relu = entries[followers[0]] if len(followers) == 1 else None
        if (relu is not None and relu["class_name"] == "ReLU" and len(relu["inbound_nodes"]) == 1
                and batch_norm not in output_names and relu["config"].get("max_value") is None
                and not relu["config"].get("negative_slope") and not relu["config"].get("threshold")):
            entries[producer]["config"]["activation"] = "relu"
            removed[relu["name"]] = producer
            described.append(f"{batch_norm} into {producer} (with {relu['name']} as its activation)")
        else:
            described.append(f"{batch_norm} into {producer}")

    def replacement(name: str) -> str:
        while name in removed:
            name = removed[name]
        return name

    config["layers"] = [entry for entry in config["layers"] if entry["name"] not in removed]
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for inbound in node:
                if inbound[0] in removed:
                    inbound[0], inbound[1], inbound[2] = replacement(inbound[0]), 0, 0
    config["output_layers"] = [[replacement(item[0]), 0, 0] if item[0] in removed else item
                               for item in config["output_layers"]]
    folded_model = keras.Model.from_config(config)
    folded_into = {producer: batch_norm for batch_norm, producer in pairs.items()}
    for layer in folded_model.layers:
        if not layer.weights:
            continue
        original = model.get_layer(layer.name)
        if layer.name not in folded_into:
            layer.set_weights(original.get_weights())
            continue
        batch_norm = model.get_layer(folded_into[layer.name])
        values = dict(zip([w.name.split("/")[-1].split(":")[0] for w in batch_norm.weights],
                          batch_norm.get_weights()))
        scale = values.get("gamma", 1.0) / np.sqrt(values["moving_variance"] + batch_norm.get_config()["epsilon"])
        shift = values.get("beta", 0.0) - values["moving_mean"] * scale
        weights = original.get_weights()
        kernel = weights[0]
        bias = weights[1] if len(weights) > 1 else np.zeros(np.shape(scale), dtype=kernel.dtype)
        if isinstance(original, keras.layers.DepthwiseConv2D):  # output channel = input channel x multiplier
            kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        else:
            kernel = kernel * scale
        layer.set_weights([kernel.astype(weights[0].dtype), (bias * scale + shift).astype(weights[0].dtype)])
    return folded_model, described


def weights_by_layer_name(model) -> dict[str, list[np.ndarray]]:
    """{layer name: its weights} for every layer that has weights (Keras 3 or tf_keras)."""
    weights = {}
    for layer in model.layers:
        values = layer.get_weights()
        if values:
            if layer.name in weights:
                raise ValueError(f"two layers are named {layer.name!r}: give every layer a unique name")
            weights[layer.name] = [np.asarray(value) for value in values]
    return weights


def copy_weights_by_layer_name(weights: dict[str, list[np.ndarray]], model) -> None:
    """Set every weighted layer of `model` from `weights`; fail loudly on a mismatch."""
    targets = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(targets) - set(weights))
    unused = sorted(set(weights) - set(targets))
    if missing or unused:
        raise ValueError(f"the tf_keras twin does not match the trained model: layers without trained weights "
                         f"{missing}, trained layers absent from the twin {unused}; the model builder must give "
                         f"every layer with weights the same explicit name in both Keras flavours")
    for name, layer in targets.items():
        layer.set_weights(weights[name])


def _kernel_sparsity(model, layer_names: list[str]) -> float | None:
    """Share of exact zeros over the kernels of the given layers."""
    zeros = total = 0
    for layer in model.layers:
        if layer.name in layer_names:
            for weight in layer.get_weights():
                if weight.ndim >= 2:
                    zeros += int((weight == 0).sum())
                    total += weight.size
    return round(zeros / total, 4) if total else None
