"""Compress: build every requested variant of the trained model in a spawned child process.

The variants are built from a tf_keras twin of the trained Keras 3 model (twin.py), since
tfmot (pruning, QAT, pruning-preserving QAT) works only on tf_keras models; the child does
the work (variant_builder.py), and this module supervises it. The job and the results are
in variants.py.

The work happens in a *spawned child process*, for two reasons:
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

import multiprocessing
import os
import signal
import tempfile
import time
from typing import Callable

from pipeline.config import ALL_VARIANTS
from pipeline.console import descriptors_redirected
from pipeline.stages.variant_builder import child_main
# Re-exported: the names callers have imported from this module.
from pipeline.stages.batch_norm_folding import fold_batch_normalization  # noqa: F401
from pipeline.stages.twin import copy_weights_by_layer_name, weights_by_layer_name  # noqa: F401
from pipeline.stages.variants import DESCRIPTIONS, CompressionJob, VariantResult  # noqa: F401


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
    child = context.Process(target=child_main, args=(child_end, job, tuple(remaining), log_path), daemon=True)
    current: str | None = None
    started = time.monotonic()
    try:
        # The child writes to the log from its first instruction (not only once child_main
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
