"""The microcontroller runtime: does a `.tflite` run on TensorFlow Lite Micro, in how small a
tensor arena, and what does it decide there?

TensorFlow Lite Micro (PyPI `tflite-micro`) is the interpreter that runs on Cortex-M and
ESP32 boards; its Python package runs the same C++ kernels on the host. For one model this
module measures, in that runtime:

  * whether it loads at all, and if not, the first operator or type it rejects (the
    runtime's own words, e.g. "FULLY_CONNECTED (node 0): Input type: FLOAT32 with filter
    type: INT8 not supported");
  * the smallest tensor arena it allocates in, by bisection over `arena_size` to
    `ARENA_RESOLUTION` bytes (the runtime aligns its buffers to 16 bytes);
  * its output for every row given, run one row at a time in an arena of exactly that size,
    as a device runs it.

All of it happens in a spawned child process: with an arena that is too small the runtime
sometimes crashes the process (SIGSEGV) instead of raising, and it writes allocator chatter
straight to file descriptors 1 and 2. A crash while probing an arena size counts as "does not
fit in that size"; the child is restarted and the search goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.console import descriptors_redirected

RUNTIME_NAME = "tflite-micro"
ARENA_RESOLUTION = 16               # bytes: the runtime aligns every buffer to 16
LARGEST_ARENA = 64 * 1024 * 1024    # bytes: a model that does not allocate in this is "not supported"
SMALLEST_PROBE = 1024               # bytes: the search for an arena that works starts here and doubles
_REPLY_SECONDS = 600                # a child that answers nothing for this long is stopped
_ROWS_PER_MESSAGE = 1000            # rows run per request: each request gets its own time limit


@dataclass
class MicrocontrollerResult:
    """What the microcontroller runtime made of one model."""

    supported: bool
    first_unsupported: str | None = None   # the runtime's own reason, when not supported
    arena_bytes: int | None = None         # the smallest arena it allocates in (ARENA_RESOLUTION bytes)
    operators: list[str] = field(default_factory=list)  # builtin operators a device must register
    input: dict | None = None              # shape, dtype and quantization of input 0
    output: dict | None = None
    outputs: np.ndarray | None = None      # probability of class 1 per row given, in this runtime
    probes: int = 0                        # allocations tried by the arena search
    crashes: int = 0                       # of which crashed the process
    seconds: float = 0.0

    def summary(self) -> dict:
        """JSON-able, without the per-row outputs."""
        return {"runtime": RUNTIME_NAME, "runtime_version": _runtime_version(), "supported": self.supported,
                "first_unsupported": self.first_unsupported, "arena_bytes": self.arena_bytes,
                "arena_resolution_bytes": ARENA_RESOLUTION, "operators": self.operators, "input": self.input,
                "output": self.output, "arena_probes": self.probes, "arena_probe_crashes": self.crashes,
                "seconds": round(self.seconds, 2)}


def run_on_microcontroller(model_content: bytes, features: np.ndarray | None = None, *,
                           largest_arena: int = LARGEST_ARENA) -> MicrocontrollerResult:
    """Load `model_content` in TensorFlow Lite Micro, find its smallest arena and, where `features`
    are given, run every row in an arena of that size. Never raises for a model the runtime
    rejects, or fails or crashes on while running: that is the finding (`supported=False`,
    `first_unsupported`)."""
    started = time.monotonic()
    operators = builtin_operators(model_content)
    with _Child() as child:
        reply = child.allocate(model_content, largest_arena)
        if reply[0] != "ok":
            return MicrocontrollerResult(False, first_unsupported=_first_rejection(reply[1]), operators=operators,
                                         probes=child.probes, crashes=child.crashes,
                                         seconds=time.monotonic() - started)
        arena = _smallest_arena(child, model_content, largest_arena)
        reply = child.allocate(model_content, arena)
        if reply[0] != "ok":  # found, but does not allocate again: not a size this runtime keeps to
            return MicrocontrollerResult(False, first_unsupported=f"no stable arena size (at {arena:,} bytes: "
                                         f"{_first_rejection(reply[1])})", operators=operators,
                                         probes=child.probes, crashes=child.crashes,
                                         seconds=time.monotonic() - started)
        details = reply[1]
        outputs = None
        if features is not None:
            outputs, failure = child.predict(np.asarray(features))
            if failure is not None:  # it allocates, but a row crashes or fails it: it does not run there
                return MicrocontrollerResult(False, first_unsupported=f"fails while running: {failure}",
                                             arena_bytes=arena, operators=operators, input=details["input"],
                                             output=details["output"], probes=child.probes, crashes=child.crashes,
                                             seconds=time.monotonic() - started)
    return MicrocontrollerResult(True, arena_bytes=arena, operators=operators, input=details["input"],
                                 output=details["output"], outputs=outputs, probes=child.probes,
                                 crashes=child.crashes, seconds=time.monotonic() - started)


def _smallest_arena(child: "_Child", model_content: bytes, largest: int) -> int:
    """Bisection: the smallest multiple of ARENA_RESOLUTION the model allocates in (≤ largest, which works)."""
    works, fails = largest, 0
    probe = SMALLEST_PROBE
    while probe < works:  # doubling first: a small arena is found in few probes
        if child.allocate(model_content, probe)[0] == "ok":
            works = probe
            break
        fails = probe
        probe *= 2
    while works - fails > ARENA_RESOLUTION:
        middle = (fails + works) // 2 // ARENA_RESOLUTION * ARENA_RESOLUTION
        if middle <= fails:
            break
        if child.allocate(model_content, middle)[0] == "ok":
            works = middle
        else:
            fails = middle
    return works


def builtin_operators(model_content: bytes) -> list[str]:
    """The builtin operators of a `.tflite`, in the order they first appear: what a device's op
    resolver must register (e.g. `tflite::MicroMutableOpResolver<N>::AddFullyConnected()`)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAs(model_content, 0)
    codes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        codes.append(names.get(builtin, f"BUILTIN_{builtin}") if builtin != schema.BuiltinOperator.CUSTOM
                     else f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}")
    used = []
    for subgraph_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(subgraph_index)
        for operator_index in range(subgraph.OperatorsLength()):
            name = codes[subgraph.Operators(operator_index).OpcodeIndex()]
            if name not in used:
                used.append(name)
    return used


_NODE_FAILURE = re.compile(r"Node (\w+) \(number (\d+)\) failed to (prepare|invoke)")


def _first_rejection(text: str) -> str:
    """The runtime's log, reduced to what it rejected first: "OPERATOR (node N): reason"."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for position, line in enumerate(lines):
        match = _NODE_FAILURE.search(line)
        if match:
            reason = lines[position - 1] if position > 0 else f"failed to {match.group(3)}"
            reason = re.sub(r"^\S+\.cc(:\d+)?\s*", "", reason)  # the kernel's source line: not for readers
            return f"{match.group(1)} (node {match.group(2)}): {reason}"
    for line in lines:
        if "not supported" in line or "Didn't find op" in line or "Failed to get registration" in line:
            return line
    return lines[-1] if lines else "the runtime refused the model without a message"


def _runtime_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return None


class _Child:
    """A spawned process holding one TensorFlow Lite Micro interpreter; restarted after a crash."""

    def __init__(self):
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._connection = None
        self.probes = 0
        self.crashes = 0
        self._log = tempfile.NamedTemporaryFile(prefix="edgeaudit-micro-", suffix=".log", delete=False)
        self._log.close()

    def __enter__(self) -> "_Child":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._stop()
        finally:
            os.unlink(self._log.name)

    def _start(self) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child_end, self._log.name), daemon=True)
        try:
            log = os.open(self._log.name, os.O_WRONLY | os.O_APPEND)
            try:
                with descriptors_redirected(log, descriptors=(1, 2)):  # its chatter, from its first instruction
                    process.start()
            finally:
                os.close(log)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._process, self._connection = process, parent_end

    def _stop(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._connection.close()
        self._process = self._connection = None

    def _ask(self, message: tuple) -> tuple:
        if self._process is None:
            self._start()
        try:
            self._connection.send(message)
            if not self._connection.poll(_REPLY_SECONDS):
                raise EOFError
            return self._connection.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            exitcode = self._process.exitcode
            self._stop()
            self.crashes += 1
            with open(self._log.name, errors="replace") as log:
                tail = log.read()[-2000:]
            return ("crashed", f"the runtime crashed the process (exit code {exitcode}): {tail}")

    def allocate(self, model_content: bytes, arena_size: int) -> tuple:
        self.probes += 1
        return self._ask(("allocate", model_content, int(arena_size)))

    def predict(self, features: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """(outputs, None), or (None, why) when the runtime fails or crashes on some row."""
        outputs = []
        for start in range(0, len(features), _ROWS_PER_MESSAGE):
            reply = self._ask(("predict", features[start:start + _ROWS_PER_MESSAGE]))
            if reply[0] != "outputs":
                return None, _first_rejection(reply[1])
            outputs.append(reply[1])
        return (np.concatenate(outputs) if outputs else np.zeros(0)), None


# --------------------------------------------------------------------------------------
# Everything below runs in the child process only.
# --------------------------------------------------------------------------------------

def _serve(connection, log_path: str) -> None:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = None
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message[0] == "allocate":
            interpreter = None
            start = os.path.getsize(log_path)
            try:
                interpreter = runtime.Interpreter.from_bytes(message[1], arena_size=message[2])
                connection.send(("ok", {"input": _details(interpreter.get_input_details(0)),
                                        "output": _details(interpreter.get_output_details(0))}))
            except Exception as error:  # noqa: BLE001 - the runtime's refusal is the answer
                _flush_native_streams()
                with open(log_path, errors="replace") as log:
                    log.seek(start)
                    connection.send(("error", log.read() + f"\n{error}"))
        elif message[0] == "predict":
            start = os.path.getsize(log_path)
            try:
                connection.send(("outputs", _predict(interpreter, message[1])))
            except Exception as error:  # noqa: BLE001
                _flush_native_streams()
                with open(log_path, errors="replace") as log:
                    log.seek(start)
                    connection.send(("error", log.read() + f"\n{type(error).__name__}: {error}"))


def _flush_native_streams() -> None:
    """C's stdout is block-buffered into a file: flush it, so the runtime's reason is in the log."""
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _details(detail: dict) -> dict:
    quantization = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in np.asarray(quantization.get("scales", []))]
    zero_points = [int(z) for z in np.asarray(quantization.get("zero_points", []))]
    return {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "quantization": {"scales": scales, "zero_points": zero_points} if scales else None}


def _predict(interpreter, features: np.ndarray) -> np.ndarray:
    """Probability of class 1 for every row, one invoke per row (a device's batch is one)."""
    input_detail = interpreter.get_input_details(0)
    output_detail = interpreter.get_output_details(0)
    input_dtype = np.dtype(input_detail["dtype"])
    input_shape = tuple(int(d) for d in input_detail["shape"])
    input_quantization = input_detail.get("quantization_parameters") or {}
    output_quantization = output_detail.get("quantization_parameters") or {}
    outputs = np.empty(len(features), dtype=np.float64)
    for index, row in enumerate(features):
        value = np.asarray(row).reshape(input_shape)
        if np.issubdtype(input_dtype, np.integer) and np.asarray(input_quantization.get("scales", [])).size:
            scale = float(input_quantization["scales"][0])
            zero_point = int(input_quantization["zero_points"][0])
            info = np.iinfo(input_dtype)
            value = np.clip(np.round(value / scale + zero_point), info.min, info.max)
        interpreter.set_input(value.astype(input_dtype), 0)
        interpreter.invoke()
        output = np.asarray(interpreter.get_output(0)).reshape(-1)
        if np.issubdtype(output.dtype, np.integer) and np.asarray(output_quantization.get("scales", [])).size:
            output = (output.astype(np.float64) - int(output_quantization["zero_points"][0])) \
                * float(output_quantization["scales"][0])
        outputs[index] = float(output[-1])
    return outputs
