"""Evaluate: every `.tflite` runs in the LiteRT interpreter, exactly as a device would run it.

For each variant: quality on the whole test split (with a decision threshold chosen on
the validation split from the variant's own scores), raw and gzip size, sparsity measured
in the file's weight buffers, median single-example latency, batch throughput, and
agreement with the float Keras model. No TensorFlow is imported here: only ai_edge_litert.
"""

from __future__ import annotations

import gzip
import time
from typing import Callable

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from pipeline.console import native_output_silenced
from pipeline.metrics import Predictions, binary_quality, choose_threshold

_WEIGHT_TYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
}


class LiteRTModel:
    """A `.tflite` model in the LiteRT interpreter, with a batched predict function.

    A model whose input cannot be resized (e.g. a recurrent model converted with a fixed
    batch of 1) is run one row at a time. Variables (a fused LSTM's state) are reset
    before every call, so one call never leaks into the next.
    """

    def __init__(self, model_content: bytes, *, num_threads: int = 1, batch_size: int = 1024,
                 default_delegates: bool = True):
        """default_delegates=False runs LiteRT's built-in kernels without XNNPACK."""
        self.model_content = model_content
        self.num_threads = num_threads
        self.batch_size = batch_size
        self.op_resolver = (OpResolverType.AUTO if default_delegates
                            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self._interpreter = self._new_interpreter()
        detail = self._interpreter.get_input_details()[0]
        self.input_index = detail["index"]
        self.input_shape = tuple(int(d) for d in detail["shape"])
        self.input_dtype = np.dtype(detail["dtype"])
        self.output_index = self._interpreter.get_output_details()[0]["index"]
        self.input_quantization = detail.get("quantization", (0.0, 0))
        self._current_batch = self.input_shape[0]
        self.resizable = True

    def _new_interpreter(self) -> Interpreter:
        # LiteRT announces its XNNPACK delegate on file descriptor 2 ("INFO: Created ...").
        with native_output_silenced():
            interpreter = Interpreter(model_content=self.model_content, num_threads=self.num_threads,
                                      experimental_op_resolver_type=self.op_resolver)
            interpreter.allocate_tensors()
        return interpreter

    def _prepare(self, rows: np.ndarray) -> np.ndarray:
        if self.input_dtype == np.int8 or self.input_dtype == np.uint8:
            scale, zero_point = self.input_quantization
            info = np.iinfo(self.input_dtype)
            return np.clip(np.round(rows / scale + zero_point), info.min, info.max).astype(self.input_dtype)
        return rows.astype(self.input_dtype, copy=False)

    def _invoke(self, rows: np.ndarray) -> np.ndarray:
        if rows.shape[0] != self._current_batch:
            self._interpreter.resize_tensor_input(self.input_index, list(rows.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._current_batch = rows.shape[0]
        self._interpreter.reset_all_variables()
        self._interpreter.set_tensor(self.input_index, self._prepare(rows))
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self.output_index), dtype=np.float64).reshape(rows.shape[0], -1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability of class 1 for every row."""
        features = np.asarray(features)
        outputs = []
        if self.resizable:
            try:
                for start in range(0, len(features), self.batch_size):
                    outputs.append(self._invoke(features[start:start + self.batch_size]))
                return np.concatenate(outputs)[:, -1] if outputs else np.zeros(0)
            except (RuntimeError, ValueError):
                # Fixed-batch model: fall back to one row at a time, for good.
                self.resizable = False
                self._interpreter = self._new_interpreter()
                self._current_batch = self.input_shape[0]
                outputs = []
        for row in features:
            outputs.append(self._invoke(row[None, ...]))
        return np.concatenate(outputs)[:, -1] if outputs else np.zeros(0)

    def single_example_latency(self, example: np.ndarray, *, runs: int = 200, warmup: int = 20) -> dict:
        """Median, 90th percentile and mean of `runs` timed single-example invocations."""
        return _time_calls(lambda: self._invoke(example[None, ...]), runs=runs, warmup=warmup)

    def batch_throughput(self, features: np.ndarray, *, repeats: int = 3) -> float | None:
        """Rows per second for batched prediction (None when the model is fixed-batch)."""
        if not self.resizable:
            return None
        self.predict(features)  # warm-up and resize
        best = min(_elapsed(lambda: self.predict(features)) for _ in range(repeats))
        return float(len(features) / best) if best > 0 else None


def _elapsed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _time_calls(call: Callable[[], object], *, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        call()
    times = np.array([_elapsed(call) for _ in range(runs)]) * 1000.0
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "mean_ms": float(times.mean()), "runs": runs, "warmup": warmup}


def measure_keras_latency(predict_one: Callable[[np.ndarray], object], example: np.ndarray, *,
                          runs: int = 200, warmup: int = 20) -> dict:
    """Latency of a single-example call of the Keras model, timed like the LiteRT calls."""
    return _time_calls(lambda: predict_one(example[None, ...]), runs=runs, warmup=warmup)


def weight_sparsity(model_content: bytes) -> dict:
    """Share of zero weights in the file's constant weight tensors of rank ≥ 2.

    Read from the flatbuffer itself (buffers with data are the constants), so it measures
    what ships, not what the training framework believed. A quantized weight is zero when
    it equals its tensor's zero point (per channel where the scales are per channel): an
    int8 embedding table, for one, stores zero as a nonzero integer.
    """
    model = schema.Model.GetRootAs(model_content, 0)
    zeros = total = 0
    seen_buffers: set[int] = set()
    for subgraph_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(subgraph_index)
        for tensor_index in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(tensor_index)
            buffer_index = tensor.Buffer()
            dtype = _WEIGHT_TYPES.get(tensor.Type())
            if dtype is None or buffer_index in seen_buffers or tensor.ShapeLength() < 2:
                continue
            buffer = model.Buffers(buffer_index)
            if buffer is None:
                continue
            if buffer.DataLength() > 0:
                data = buffer.DataAsNumpy().tobytes()
            elif buffer.Offset() > 1:
                data = model_content[buffer.Offset():buffer.Offset() + buffer.Size()]
            else:
                continue
            seen_buffers.add(buffer_index)
            values = np.frombuffer(data, dtype=dtype).reshape(tensor.ShapeAsNumpy())
            zeros += int((values == _zero_of(tensor, values)).sum())
            total += int(values.size)
    return {"weights": total, "zero_weights": zeros, "sparsity": round(zeros / total, 4) if total else None}


def _zero_of(tensor, values: np.ndarray):
    """The stored value that means 0.0: the zero point(s) for quantized integers, else 0."""
    quantization = tensor.Quantization()
    if not np.issubdtype(values.dtype, np.integer) or quantization is None or quantization.ZeroPointLength() == 0:
        return 0
    zero_points = quantization.ZeroPointAsNumpy()
    if zero_points.size == 1:
        return zero_points[0]
    shape = [1] * values.ndim
    shape[quantization.QuantizedDimension()] = zero_points.size
    return zero_points.reshape(shape)


def file_sizes(model_content: bytes) -> dict:
    return {"bytes": len(model_content), "gzip_bytes": len(gzip.compress(model_content, compresslevel=9, mtime=0))}


def evaluate_variant(
    model_content: bytes,
    *,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    reference: Predictions,
    latency_runs: int = 200,
    quality: Callable[[np.ndarray, np.ndarray, float], dict] = binary_quality,
    threshold_rule: str = "f1",
) -> tuple[dict, Predictions, Predictions]:
    """Judge one `.tflite`: returns (JSON-able evaluation, its test predictions, its validation predictions).

    Its decision threshold is its own, chosen on its validation scores by `threshold_rule`.
    """
    model = LiteRTModel(model_content)
    validation_scores = model.predict(validation_features)
    threshold = choose_threshold(validation_labels, validation_scores, threshold_rule)
    test_scores = model.predict(test_features)
    predictions = Predictions(test_scores, threshold)
    latency = model.single_example_latency(test_features[0], runs=latency_runs)
    evaluation = {
        "quality": quality(test_labels, test_scores, threshold),
        "size": file_sizes(model_content),
        "sparsity": weight_sparsity(model_content),
        "latency": latency,
        "throughput_rows_per_second": model.batch_throughput(test_features[: min(len(test_features), 1024)]),
        "agreement": agreement(reference, predictions),
        "interface": {"input_shape": list(model.input_shape), "input_dtype": str(model.input_dtype),
                      "batch_resizable": model.resizable},
    }
    return evaluation, predictions, Predictions(validation_scores, threshold)


def agreement(reference: Predictions, candidate: Predictions) -> dict:
    """How closely a variant follows the float model on the same rows."""
    same = reference.decisions == candidate.decisions
    difference = np.abs(np.asarray(reference.scores, np.float64) - np.asarray(candidate.scores, np.float64))
    return {
        "identical_decisions": float(same.mean()) if same.size else None,
        "changed_decisions": int((~same).sum()),
        "max_score_difference": float(difference.max()) if difference.size else None,
        "mean_score_difference": float(difference.mean()) if difference.size else None,
    }
