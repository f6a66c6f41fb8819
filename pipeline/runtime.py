"""Where training runs: device, seeds, threads, op determinism, mixed precision, XLA, batch size.

One code path for CPU and GPU: on a GPU, mixed precision (float16 compute, float32
output layer), XLA compilation and a batch size scaled to the device are switched on;
on a CPU they are off. Works with any Keras 3 backend (tensorflow, jax, torch).

Reproducible runs (issue 15). A seeded CPU run gives the same numbers and the same
`.tflite` bytes in every process, on any machine with the same kind of CPU and the same
packages, whatever its core count:

* every TensorFlow process of a run (the run itself, the compression child, a training
  worker) uses a FIXED number of intra-op and inter-op threads, EDGEAUDIT_THREADS
  (default 2), not the machine's CPU count: kernels split their work by the size of their
  thread pool (measured: imaging and sentiment train to other weights with 1 thread than
  with 2). It is set by `pin_threads` before TensorFlow runs its first op
  (console.start_frameworks, the compression child's start);
* op determinism (`tf.config.experimental.enable_op_determinism`) on a CPU: kernels with
  a nondeterministic multi-threaded path take their deterministic one (measured:
  sentiment's word CNN trained to different weights in two processes on one machine
  without it), and tf.data keeps its order. On an accelerator it stays off unless
  EDGEAUDIT_DETERMINISTIC=1 (some GPU kernels raise under it, others slow down);
  EDGEAUDIT_DETERMINISTIC=0 turns it off on a CPU too;
* seeds: `keras.utils.set_random_seed` (Python, NumPy, TensorFlow), the tf.data pipeline's
  own seeds, and seeded generators in every later stage.

What stays machine-dependent: oneDNN picks its kernels at run time from the CPU's
instruction set (measured: imaging trains to other weights with ONEDNN_MAX_CPU_ISA=AVX2
than with this machine's AVX-512, identical with AVX512_CORE). The manifest's `runtime`
records the thread counts, op determinism and the CPU (cpu_description): two runs agree
to the last digit where those agree.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Runtime:
    backend: str
    device: str                 # "CPU" or the accelerator's name
    accelerator: bool
    mixed_precision: bool
    jit_compile: bool
    batch_size: int
    seed: int
    intra_op_threads: int | None = None      # TensorFlow's thread pools (None: another backend)
    inter_op_threads: int | None = None
    deterministic_ops: bool = False          # tf.config.experimental.enable_op_determinism
    cpu: dict | None = None                  # cpu_description(): what "a machine of the same kind" means

    def to_json(self) -> dict:
        return asdict(self)


THREADS_VARIABLE = "EDGEAUDIT_THREADS"
DETERMINISTIC_VARIABLE = "EDGEAUDIT_DETERMINISTIC"
# Fixed, not the CPU count, so that machines with different core counts split every kernel's
# work the same way. 2: the CI and benchmark machines' core count, which TensorFlow used
# there before it was fixed, so their figures stay what they were; a bigger machine gives up
# its other cores to TensorFlow's kernels (EDGEAUDIT_THREADS=16 uses them, and reproduces
# only with 16 threads).
DEFAULT_THREADS = 2


def thread_count() -> int:
    """The thread count of TensorFlow's intra-op and inter-op pools: EDGEAUDIT_THREADS or DEFAULT_THREADS."""
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        from pipeline.errors import InputError

        raise InputError(f"{THREADS_VARIABLE} is {raw!r}, expected a whole number of threads, at least 1",
                         fix=f"set {THREADS_VARIABLE} to a number such as 2 (the default), or unset it; runs "
                             "reproduce to the last digit only with the same number")
    return threads


def pin_threads(threads: int | None = None) -> tuple[int, int]:
    """Give TensorFlow's intra-op and inter-op thread pools `threads` threads (default:
    thread_count()). Must run before TensorFlow runs its first op; in a process where it
    already has (a test session), the pools keep what they have. Returns (intra, inter) as
    TensorFlow now reports them."""
    import tensorflow as tf

    threads = thread_count() if threads is None else int(threads)
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the context is initialised: too late for this process
        pass
    return threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()


def wants_deterministic_ops(accelerator: bool) -> bool:
    """Op determinism: on for a CPU run, off on an accelerator; EDGEAUDIT_DETERMINISTIC=1 or 0 overrides."""
    raw = os.environ.get(DETERMINISTIC_VARIABLE, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return not accelerator


def set_deterministic_ops(enabled: bool) -> None:
    """Switch TensorFlow's op determinism on or off for this process."""
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
    elif deterministic_ops_enabled():  # an earlier run in this process (tests): switch it off
        from tensorflow.python.framework import config as framework_config  # no public switch-off

        framework_config.disable_op_determinism()


def deterministic_ops_enabled() -> bool:
    from tensorflow.python.framework import config as framework_config  # the public API has no getter

    return bool(framework_config.is_op_determinism_enabled())


# CPU features that change which kernels oneDNN (TensorFlow's CPU math) and XNNPACK (LiteRT)
# pick at run time, and with them the order of floating-point sums.
_KERNEL_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                    "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> dict:
    """The CPU model, the features that pick kernels at run time, and the oneDNN settings.

    Two runs reproduce to the last digit only on the same kind of CPU: a machine with
    AVX-512 or AMX runs other oneDNN kernels than one with AVX2 only (ONEDNN_MAX_CPU_ISA caps
    them, TF_ENABLE_ONEDNN_OPTS=0 swaps oneDNN for Eigen; both are recorded).
    """
    import platform

    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as info:  # Linux; elsewhere only the platform's name is known
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine(),
            "features": [name for name in _KERNEL_FEATURES if name in flags],
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}


def _accelerator_name(backend: str) -> str | None:
    """Name of the first GPU the backend sees, or None."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", gpus[0].name)
    if backend == "jax":
        import jax

        devices = [device for device in jax.devices() if device.platform == "gpu"]
        return devices[0].device_kind if devices else None
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return None


def configure_runtime(*, seed: int, batch_size: int, allow_accelerator: bool = True,
                      mixed_precision_pays: bool = True) -> Runtime:
    """Seed everything and pick the training settings for the device present.

    mixed_precision_pays: the domain's measured answer (Domain.mixed_precision_on_accelerator);
    False keeps float32 on an accelerator too. EDGEAUDIT_MIXED_PRECISION=0 turns it off for all.
    """
    import keras

    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    name = _accelerator_name(backend) if allow_accelerator else None
    accelerator = name is not None
    if accelerator and mixed_precision_pays and os.environ.get("EDGEAUDIT_MIXED_PRECISION", "1") != "0":
        keras.mixed_precision.set_global_policy("mixed_float16")
        mixed = True
    else:
        keras.mixed_precision.set_global_policy("float32")
        mixed = False
    jit = accelerator and os.environ.get("EDGEAUDIT_XLA", "1") != "0"
    # Bigger batches keep a GPU busy; the learning rate is left as is (Adam tolerates it).
    scaled_batch = batch_size * 4 if accelerator else batch_size
    # tf.data feeds every backend, so TensorFlow's threads and determinism matter for all;
    # where TensorFlow is not installed (a JAX-only GPU machine running the throughput
    # benchmark) there is nothing to pin.
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        intra, inter = pin_threads()  # a no-op where console.start_frameworks already pinned them
        deterministic = wants_deterministic_ops(accelerator)
        set_deterministic_ops(deterministic)
    else:
        intra = inter = None
        deterministic = False
    return Runtime(backend=backend, device=name or "CPU", accelerator=accelerator,
                   mixed_precision=mixed, jit_compile=jit, batch_size=scaled_batch, seed=seed,
                   intra_op_threads=intra, inter_op_threads=inter, deterministic_ops=deterministic,
                   cpu=cpu_description())
