"""Per-layer quantization error of a full-integer variant, mapped back to the Keras layers of the domain's builder.

TensorFlow's quantization debugger (`tf.lite.experimental.QuantizationDebugger`) converts the
model once more with a NumericVerify op after every quantized op: on each debug example it
records the difference between the op's int8 output (dequantized) and the same op computed in
float *from the same dequantized inputs*. So a row is the error that layer adds, not the error
accumulated before it, and the layer to look at is the one whose own row is large.

Per op output we report the debugger's statistics (mean error, standard deviation, max |error|,
mean squared error) and its quantization scale, and RMSE / scale: the root-mean-square error in
units of the output's quantization step. Rounding alone gives about 0.29 (a uniform error over one
step); the debugger's guide marks a layer above 0.7 as one whose quantization hurts
(https://www.tensorflow.org/lite/performance/quantization_debugger), and so do we.

Each TFLite tensor name ("fraud_mlp/dense_0/MatMul;fraud_mlp/dense_0/Relu;...") is mapped to the
Keras layer whose name is one of its `/`- or `;`-separated parts (Keras 3 may add "_1"; a fused
Conv + BatchNormalization + ReLU is one row, named after its first layer); the model's final
activation comes out as "StatefulPartitionedCall:0" and is the output layer.

`measure` runs in the compression child (it needs TensorFlow and the converter); the rest is pure.
"""

from __future__ import annotations

import csv
import io
import math
import re
from typing import Callable, Iterable

import numpy as np

# RMSE / scale above which a layer is marked (the quantization debugger guide's level).
WARNING_LEVEL = 0.7
# Validation rows run through the debug model (one invoke each).
DEBUG_ROWS = 200


def keras_layer_of(tensor_name: str, layer_names: Iterable[str], output_layer: str) -> str | None:
    """The Keras layer a TFLite tensor belongs to, or None if no part of its name is a layer's.

    Names are compared without tfmot's wrapper prefixes ("quant_dense_0" is "dense_0")."""
    known = {_unwrapped(name) for name in layer_names}
    parts = [_unwrapped(part) for part in re.split(r"[;/]", tensor_name) if part]
    for part in parts:
        if part in known:
            return part
    for part in parts:  # Keras 3 names a rebuilt layer "dense_0_1"
        stripped = re.sub(r"_\d+$", "", part)
        if stripped in known:
            return stripped
    if tensor_name.startswith("StatefulPartitionedCall"):
        return _unwrapped(output_layer)
    return None


def _unwrapped(name: str) -> str:
    return re.sub(r"^(quant_|prune_low_magnitude_)", "", name)


def layer_table(statistics_csv: str, layer_names: Iterable[str], output_layer: str) -> list[dict]:
    """The debugger's `layer_statistics_dump` as rows: one per quantized op output, in the model's order."""
    names = list(layer_names)
    rows = []
    for record in csv.DictReader(io.StringIO(statistics_csv)):
        scale = float(record["scale"])
        mean_squared = float(record["mean_squared_error"])
        ratio = math.sqrt(mean_squared) / scale if scale > 0 else None
        rows.append({
            "tensor_name": record["tensor_name"],
            "tensor_index": int(record["tensor_idx"]),
            "op": record["op_name"],
            "keras_layer": keras_layer_of(record["tensor_name"], names, output_layer),
            "elements": int(float(record["num_elements"])),
            "mean_error": float(record["mean_error"]),
            "stddev": float(record["stddev"]),
            "max_abs_error": float(record["max_abs_error"]),
            "mean_squared_error": mean_squared,
            "scale": scale,
            "zero_point": int(float(record["zero_point"])),
            "rmse_over_scale": ratio,
            "over_warning_level": bool(ratio is not None and ratio > WARNING_LEVEL),
        })
    rows.sort(key=lambda row: row["tensor_index"])
    return rows


def summary(rows: list[dict]) -> dict:
    """The worst layer and the layers over the warning level, by Keras layer name."""
    measured = [row for row in rows if row["rmse_over_scale"] is not None]
    worst = max(measured, key=lambda row: row["rmse_over_scale"]) if measured else None
    return {
        "layers": len(rows),
        "over_warning_level": [row["keras_layer"] or row["tensor_name"] for row in rows if row["over_warning_level"]],
        "worst": None if worst is None else {"keras_layer": worst["keras_layer"], "tensor_name": worst["tensor_name"],
                                            "rmse_over_scale": worst["rmse_over_scale"]},
    }


class Debugger:
    """The quantization debugger of one full-integer conversion (in the compression child).

    `converter` must be set up as the variant's own conversion (optimizations, representative data).
    Its calibrated model is quantized here with the variant's own per-channel settings (the debugger's
    `get_*_quantized_model` ignore the per-tensor choice for Dense layers, so its int8 model would not
    be the variant's). The debug model runs in an interpreter of its own bytes: built from the
    converter, the debugger's interpreter gets the XNNPACK delegate, and layer statistics then disagree
    with the reference kernels (../shared/STACK_NOTES.md). `quantized(denylist)` gives the model with
    those tensors' ops kept in float and every other op in int8 (for selective int8).
    """

    def __init__(self, tf, converter, debug_rows: np.ndarray):
        self.tf = tf
        self.rows = debug_rows
        self.debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=self._dataset)
        self.disable_per_channel = bool(getattr(converter, "_experimental_disable_per_channel", False))
        self.per_tensor_dense = bool(getattr(
            converter, "_experimental_disable_per_channel_quantization_for_dense_layers", False))

    def _dataset(self):
        for row in self.rows:
            yield [np.asarray(row[None, ...])]

    def _quantize(self, *, numeric_verify: bool, denylisted_nodes: list[str] | None = None) -> bytes:
        from tensorflow.lite.python import convert

        return convert.mlir_quantize(
            self.debugger.calibrated_model, disable_per_channel=self.disable_per_channel, fully_quantize=False,
            enable_numeric_verify=numeric_verify, denylisted_nodes=denylisted_nodes or None,
            disable_per_channel_for_dense_layers=self.per_tensor_dense)

    def statistics_csv(self) -> str:
        measured = self.tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=self._quantize(numeric_verify=True), debug_dataset=self._dataset)
        measured.run()
        buffer = io.StringIO()
        measured.layer_statistics_dump(buffer)
        return buffer.getvalue()

    def quantized(self, denylisted_nodes: list[str]) -> bytes:
        return self._quantize(numeric_verify=False, denylisted_nodes=list(denylisted_nodes))


def measure(tf, make_converter: Callable[[], object], debug_rows: np.ndarray, layer_names: list[str],
            output_layer: str) -> tuple[dict, "Debugger"]:
    """Per-layer errors of the conversion `make_converter()` sets up, on `debug_rows` (one invoke each).

    Returns ({"layers": [...], "summary": {...}, "debug_rows": n, "warning_level": 0.7}, the debugger).
    """
    debugger = Debugger(tf, make_converter(), debug_rows)
    rows = layer_table(debugger.statistics_csv(), layer_names, output_layer)
    return {"layers": rows, "summary": summary(rows), "debug_rows": int(len(debug_rows)),
            "warning_level": WARNING_LEVEL}, debugger


def layers_document(per_variant: dict[str, dict]) -> dict:
    """layers.json: every full-integer variant's table (or why it has none), and how it was measured."""
    return {
        "variants": per_variant,
        "settings": {"warning_level": WARNING_LEVEL, "metric": "rmse_over_scale",
                     "measured_on": "validation rows, one invoke each, by TensorFlow's quantization debugger",
                     "meaning": ("the error each op adds given dequantized int8 inputs, in units of its output's "
                                 "quantization step (rounding alone: about 0.29)")},
    }


def layer_error_figure(document: dict):
    """RMSE / scale of every layer of every full-integer variant, the warning level drawn (a Figure), or None."""
    from matplotlib.figure import Figure

    variants = {name: table for name, table in document["variants"].items() if table.get("layers")}
    if not variants:
        return None
    labels: list[str] = []
    for table in variants.values():
        for row in table["layers"]:
            label = _figure_label(row)
            if label not in labels:
                labels.append(label)
    figure = Figure(figsize=(min(max(7.0, 0.55 * len(labels) * len(variants) + 3), 22.0), 4.6), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(labels))
    bar = 0.8 / len(variants)
    for i, (name, table) in enumerate(variants.items()):
        values = {_figure_label(row): row["rmse_over_scale"] for row in table["layers"]}
        heights = np.array([values.get(label) if values.get(label) is not None else np.nan for label in labels])
        ax.bar(x + (i - (len(variants) - 1) / 2) * bar, np.nan_to_num(heights), bar, label=name, color=f"C{i + 1}")
    ax.axhline(WARNING_LEVEL, color="crimson", linestyle="--", linewidth=1.2, label=f"warning level {WARNING_LEVEL}")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("RMSE / quantization scale")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Quantization error each layer adds (TensorFlow's quantization debugger, validation rows)",
                 fontsize=10)
    return figure


def _figure_label(row: dict) -> str:
    """A layer's tick label: its Keras name (else the start of its TFLite tensor's) and its op."""
    return f"{row['keras_layer'] or row['tensor_name'][:24]} ({row['op'].lower()})"
