"""Where training runs: device, seeds, mixed precision, XLA, batch size.

One code path for CPU and GPU: on a GPU, mixed precision (float16 compute, float32
output layer), XLA compilation and a batch size scaled to the device are switched on;
on a CPU they are off. Works with any Keras 3 backend (tensorflow, jax, torch).
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

    def to_json(self) -> dict:
        return asdict(self)


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
    return Runtime(backend=backend, device=name or "CPU", accelerator=accelerator,
                   mixed_precision=mixed, jit_compile=jit, batch_size=scaled_batch, seed=seed)
