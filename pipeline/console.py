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
import signal
import sys
import tempfile
import threading
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
def native_output_silenced(*, descriptors: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Send what native code writes to `descriptors` into a temporary file for the duration.

    Python's own `sys.stdout` / `sys.stderr` are flushed first, so nothing EdgeAudit printed
    is lost. If the body raises, the captured text is written back to the real stream before
    the exception goes on, so a failing start-up still explains itself. With `verbose()`,
    nothing is redirected.
    """
    if verbose():
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile() as capture:
        saved = {descriptor: os.dup(descriptor) for descriptor in descriptors}
        try:
            for descriptor in descriptors:
                os.dup2(capture.fileno(), descriptor)
            yield
        except BaseException:
            _restore(saved)
            capture.seek(0)
            text = capture.read()
            if text:
                os.write(2, text)  # the real stderr again: the failure explains itself
            raise
        finally:
            _restore(saved)


def _restore(saved: dict[int, int]) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    for descriptor, copy in list(saved.items()):
        os.dup2(copy, descriptor)
        os.close(copy)
        del saved[descriptor]


def start_frameworks(*, query_devices: bool = True) -> None:
    """Import Keras (and with it TensorFlow) and look for an accelerator, quietly.

    The first import and the first device query are where the native start-up lines come
    from; doing both here, once, keeps them off the terminal for the rest of the process.
    A process that must configure TensorFlow's devices itself first (a multi-worker
    strategy) passes `query_devices=False`.
    """
    with native_output_silenced():
        import keras

        if query_devices and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")


@contextlib.contextmanager
def interrupts_ignored_by_children() -> Iterator[None]:
    """Children started inside ignore Ctrl+C (SIGINT); the parent handles it and stops them.

    Ctrl+C signals the whole foreground process group: without this, the spawned child
    raised its own KeyboardInterrupt and printed a traceback after the CLI's clean message.
    An ignored signal stays ignored across exec, and Python does not install its handler
    over it, so the child never sees the interrupt; the parent kills it on the way out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed in the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
