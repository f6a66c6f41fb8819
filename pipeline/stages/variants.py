"""The compressed variants: what each one is, the job that asks for them, and the result of each.

The parent (compress.py) sends a `CompressionJob` into the compression child process
(variant_builder.py), which answers with one `VariantResult` per variant: the `.tflite`
bytes and what was done to the model (which layers were pruned or quantized, which were
skipped and why). Both sides import this module; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pipeline.config import ALL_VARIANTS, PRUNING_LEARNING_RATES
from pipeline.stages.group_harm import HarmTarget

DESCRIPTIONS = {
    "float32": "TFLite float32, no quantization",
    "dynamic_range": "post-training dynamic-range quantization (int8 weights, float activations)",
    "float16": "post-training float16 quantization (float16 weights)",
    "int8": "post-training full-integer quantization (int8 weights and activations, float interface)",
    "selective_int8": ("int8 with the layers that most change a group's TPR or FPR kept in float "
                       "(greedy, on the validation split; built only where int8 breaks the gate's limit there)"),
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
    # The rows fine-tuning fits, their targets (labels, or soft targets where the float model was trained on a
    # teacher's mix) and weights (None: unweighted), and its loss (fitting.LOSSES): run.compression_job sets them
    # from fine_tune_targets.
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
    # "sensitivity": per-layer sparsity from a scan on validation, the target reached over all pruned weights
    # (pruning_sensitivity.py); "uniform": every layer at the target.
    sparsity_allocation: str = "sensitivity"
    fine_tune_epochs: int = 6
    # The most fine-tuning steps in all (each epoch then a shuffled sample of the training rows).
    fine_tune_steps: int = 6000
    # What fine-tuning fits (config.FINE_TUNE_TARGETS): "training" and "labels" fit train_labels with
    # train_sample_weights and fine_tune_loss, which run.compression_job sets to what the float model was trained on
    # or to the labels with binary cross-entropy; "float_model", the trained float model's scores on
    # train_features, unweighted, with binary cross-entropy (self-distillation).
    fine_tune_targets: str = "training"
    fine_tune_loss: str = "binary_crossentropy"
    # Pruning has to recover from losing most weights, at a learning rate that depends on the
    # model and data: each candidate fine-tunes its own copy and the best on validation is kept, or
    # of those provably equivalent to it, the one that ranks rows most like the float model
    # (validation_choice.py; benchmarks/pruning_learning_rate.py: the training rate, 1e-3, suits models
    # still improving late in training; 1e-4 suits those that peaked in their first epochs).
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
    # Validation rows the quantization debugger runs through each full-integer variant (layer_errors.py).
    layer_debug_rows: int = 200
    # What the repairs of int8 (its calibration set, selective_int8) are judged against on validation: the
    # split's groups, the float model's decisions there and the gate's limit on a group's change.
    harm_target: HarmTarget | None = None
    # Other int8 calibration sets to audit beside representative_features: "<column> = <group>" -> encoded
    # training rows of that group of the first sensitive column (`calibration_column`); the set used is chosen
    # on validation (calibration_audit.py). Empty: no audit, representative_features.
    calibration_sets: dict[str, np.ndarray] = field(default_factory=dict)
    calibration_column: str | None = None
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
    # Full-integer variants: the quantization debugger's error per layer (layer_errors.py), for layers.json.
    layers: dict | None = None

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
