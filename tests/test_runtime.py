"""The GPU path (mixed precision + XLA + larger batches) is the same code as the CPU path:
exercised here on CPU by pretending an accelerator is present."""

import numpy as np
import pytest

from pipeline import runtime
from pipeline.stages.train import train_model
from tests import tiny_models


def test_cpu_runtime_keeps_float32_and_no_xla():
    settings = runtime.configure_runtime(seed=0, batch_size=32)
    assert settings.device == "CPU" and not settings.mixed_precision and not settings.jit_compile
    assert settings.batch_size == 32


def test_a_domain_where_mixed_precision_does_not_pay_keeps_float32_on_an_accelerator(monkeypatch):
    import keras

    from pipeline.registry import get_domain

    monkeypatch.setattr(runtime, "_accelerator_name", lambda backend: "Fake GPU")
    try:
        pays = get_domain("sentiment").mixed_precision_on_accelerator
        settings = runtime.configure_runtime(seed=0, batch_size=16, mixed_precision_pays=pays)
        assert settings.accelerator and settings.jit_compile and not settings.mixed_precision
        assert keras.mixed_precision.global_policy().name == "float32"
        assert get_domain("fraud").mixed_precision_on_accelerator
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_accelerator_settings_train_with_mixed_precision_and_xla(monkeypatch):
    import keras

    monkeypatch.setattr(runtime, "_accelerator_name", lambda backend: "Fake GPU")
    try:
        settings = runtime.configure_runtime(seed=0, batch_size=16)
        assert settings.accelerator and settings.mixed_precision and settings.jit_compile
        assert settings.batch_size == 64 and keras.mixed_precision.global_policy().name == "mixed_float16"
        rng = np.random.default_rng(0)
        features = rng.normal(size=(256, 8)).astype(np.float32)
        labels = (features[:, 0] > 0).astype(np.int64)
        trained = train_model(model_builder=tiny_models.tiny_mlp, input_shape=(8,), model_options={},
                              train_features=features, train_labels=labels, validation_features=features,
                              validation_labels=labels, runtime=settings, epochs=2, progress=lambda _: None)
        assert trained.model.layers[1].compute_dtype == "float16"
        assert trained.model.output.dtype == "float32"  # the probability layer stays float32
        assert all(w.dtype == np.float32 for w in trained.model.get_weights())  # what the twin receives
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- reproducibility (issue 15)

def test_thread_count_is_fixed_not_the_cpu_count(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_VARIABLE, raising=False)
    assert runtime.thread_count() == runtime.DEFAULT_THREADS == 2
    monkeypatch.setenv(runtime.THREADS_VARIABLE, "4")
    assert runtime.thread_count() == 4
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv(runtime.THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match=runtime.THREADS_VARIABLE):
            runtime.thread_count()


def test_op_determinism_is_on_for_a_cpu_off_on_an_accelerator_and_can_be_forced(monkeypatch):
    monkeypatch.delenv(runtime.DETERMINISTIC_VARIABLE, raising=False)
    assert runtime.wants_deterministic_ops(accelerator=False)
    assert not runtime.wants_deterministic_ops(accelerator=True)
    monkeypatch.setenv(runtime.DETERMINISTIC_VARIABLE, "1")
    assert runtime.wants_deterministic_ops(accelerator=True)
    monkeypatch.setenv(runtime.DETERMINISTIC_VARIABLE, "0")
    assert not runtime.wants_deterministic_ops(accelerator=False)


def test_a_cpu_run_records_what_reproducing_it_takes(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv(runtime.DETERMINISTIC_VARIABLE, raising=False)
    settings = runtime.configure_runtime(seed=0, batch_size=32)
    assert settings.deterministic_ops and runtime.deterministic_ops_enabled()
    assert settings.cpu["model"] and isinstance(settings.cpu["features"], list)
    recorded = settings.to_json()
    assert {"intra_op_threads", "inter_op_threads", "deterministic_ops", "cpu"} <= set(recorded)
    # In this test process TensorFlow may have run ops before: the pools keep what they had, and
    # the record says what they are (a CLI run pins them first, see tests/test_reproducible.py).
    assert recorded["intra_op_threads"] == tf.config.threading.get_intra_op_parallelism_threads()
