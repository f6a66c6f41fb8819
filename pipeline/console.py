"""What the terminal shows: EdgeAudit's own lines, not the frameworks' native start-up chatter.

TensorFlow, XLA and LiteRT write C++ log lines straight to file descriptor 2 while they
start: "All log messages before absl::InitializeLog() ...", oneDNN and CUDA notes, and on a
machine without a GPU an ``E0000 ... failed call to cuInit`` line that reads like a failure
to a newcomer. Some of them are written before ``TF_CPP_MIN_LOG_LEVEL`` is read, so the
variable alone cannot hide them (measured with TensorFlow 2.21). Here the file descriptors
are pointed at a temporary file while the frameworks start; what was captured is shown
only if the start-up fails. ``edgeaudit run --verbose`` (or ``EDGEAUDIT_VERBOSE=1``) turns
this off and shows everything the frameworks print.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator

VERBOSE_VARIABLE = "EDGEAUDIT_VERBOSE"


def verbose() -> bool:
    """True when the user asked to see the frameworks' own log lines."""
    return os.environ.get(VERBOSE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def set_verbose(enabled: bool) -> None:
    """Record the choice in the environment, so that child processes (compression, workers) follow it."""
    if enabled:
        os.environ[VERBOSE_VARIABLE] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.pop(VERBOSE_VARIABLE, None)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def descriptors_redirected(target: int, *, descriptors: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Point `descriptors` (1 = stdout, 2 = stderr) at the open file descriptor `target` for the
    duration, then put them back. Python's own streams are flushed on the way in and out, so
    nothing printed before or after lands in the wrong place.

    A child process started inside inherits the redirected descriptors from its first
    instruction on: that is how a spawned child's start-up output (a KeyboardInterrupt
    traceback when Ctrl+C reaches it while it is still importing) goes to its log instead of
    the terminal, while the parent keeps receiving Ctrl+C as usual.
    """
    _flush_python_streams()
    saved = {descriptor: os.dup(descriptor) for descriptor in descriptors}
    try:
        for descriptor in descriptors:
            os.dup2(target, descriptor)
        yield
    finally:
        _flush_python_streams()
        for descriptor, copy in saved.items():
            os.dup2(copy, descriptor)
            os.close(copy)


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def native_output_silenced(*, descriptors: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Send what native code writes to `descriptors` into a temporary file for the duration.

    If the body raises, the captured text is written to the real stderr before the exception
    goes on, so a failing start-up still explains itself. With `verbose()`, nothing is
    redirected.
    """
    if verbose():
        yield
        return
    with tempfile.TemporaryFile() as capture:
        try:
            with descriptors_redirected(capture.fileno(), descriptors=descriptors):
                yield
        except BaseException:
            capture.seek(0)
            text = capture.read()
            if text:
                os.write(2, text)  # the real stderr again: the failure explains itself
            raise


def start_frameworks(*, query_devices: bool = True) -> None:
    """Import Keras (and with it TensorFlow) and look for an accelerator, quietly.

    The first import and the first device query are where the native start-up lines come
    from; doing both here, once, keeps them off the terminal for the rest of the process.
    A process that must configure TensorFlow's devices itself first (a multi-worker
    strategy) passes `query_devices=False`.

    TensorFlow's thread pools are sized here too (runtime.pin_threads), before it runs any
    op: the size is fixed, not the CPU count, so that a run reproduces on other machines.
    """
    with native_output_silenced():
        import keras

        from pipeline.runtime import pin_threads

        pin_threads()
        if query_devices and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
