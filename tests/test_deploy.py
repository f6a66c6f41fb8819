"""Device targets, the microcontroller runtime, and the decision of which variant ships."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.metrics import Predictions
from pipeline.stages import deploy
from pipeline.stages.gate import apply_gate
from pipeline.stages.microcontroller import ARENA_RESOLUTION, run_on_microcontroller
from pipeline.targets import DeviceTarget, builtin_targets, load_targets, resolve_targets


# ---- the decision rule, on hand-made measurements -------------------------------------

def _gate(verdicts: dict[str, str]) -> dict:
    checks = [{"name": name, "verdict": verdict, "passed": verdict == "pass", "explanation": f"{name}: {verdict}"}
              for name, verdict in verdicts.items()]
    overall = "fail" if "fail" in verdicts.values() else "inconclusive" if "inconclusive" in verdicts.values() \
        else "pass"
    return {"verdict": overall, "passed": overall == "pass", "checks": checks}


def _deployment(flash: int, latency: float = 0.01, arena: int | None = 4096) -> dict:
    micro = {"supported": arena is not None, "arena_bytes": arena,
             "first_unsupported": None if arena is not None else "DEQUANTIZE (node 0): not supported"}
    return {"flash_bytes": flash, "litert_latency_ms": latency, "runs_in_litert": True, "microcontroller": micro}


def _choose(deployments, gates, targets=(), requested="auto", inconclusive="fail"):
    shown = [builtin_targets()[name] for name in targets] or list(builtin_targets().values())
    fits = deploy.target_fits(shown, deployments)
    return deploy.choose_variant(requested=requested, named_targets=list(targets), deployments=deployments,
                                 fits=fits, validation_gates=gates, inconclusive=inconclusive)


def test_the_smallest_variant_that_passes_on_validation_ships_and_every_other_says_why_not():
    deployments = {"float32": _deployment(40_000), "int8": _deployment(10_000), "qat_int8": _deployment(10_400),
                   "float16": _deployment(20_000, arena=None)}
    gates = {"float32": _gate({"pr_auc drop": "pass"}), "int8": _gate({"equalized odds difference by age": "fail"}),
             "qat_int8": _gate({"pr_auc drop": "pass"}), "float16": _gate({"pr_auc drop": "pass"})}
    decision = _choose(deployments, gates, targets=("cortex-m4",))
    assert decision["ship_variant"] == "qat_int8" and decision["verdict"] == "pass" and decision["passed"]
    assert decision["order"] == ["int8", "qat_int8", "float16", "float32"]
    table = decision["table"]
    assert table["int8"]["why_not_chosen"] == "on validation: equalized odds difference by age: fail"
    assert table["float16"]["why_not_chosen"].startswith("cortex-m4: does not run on tflite-micro: DEQUANTIZE")
    assert "qat_int8 comes first" in table["float32"]["why_not_chosen"]
    assert table["qat_int8"]["why_not_chosen"] is None
    # Without a named target, float16 (LiteRT runs it) competes, and the order still decides.
    assert _choose(deployments, gates)["ship_variant"] == "qat_int8"


def test_a_tie_on_flash_is_broken_by_arena_then_by_far_lower_latency_then_by_the_fixed_order():
    gates = {name: _gate({"pr_auc drop": "pass"}) for name in ("int8", "pruned_int8")}
    noise = {"int8": _deployment(10_000, latency=0.0100), "pruned_int8": _deployment(10_000, latency=0.0072)}
    assert _choose(noise, gates)["ship_variant"] == "int8"  # 28 % faster is timing noise: the fixed order
    faster = {"int8": _deployment(10_000, latency=0.0100), "pruned_int8": _deployment(10_000, latency=0.0045)}
    assert _choose(faster, gates)["ship_variant"] == "pruned_int8"
    smaller_arena = {"int8": _deployment(10_000, arena=4096), "pruned_int8": _deployment(10_000, latency=0.02,
                                                                                         arena=2048)}
    assert _choose(smaller_arena, gates)["ship_variant"] == "pruned_int8"  # measured RAM before host latency


def test_when_none_qualifies_the_choice_fails_and_the_least_failing_variant_ships():
    deployments = {"int8": _deployment(10_000), "qat_int8": _deployment(10_400)}
    gates = {"int8": _gate({"a": "fail", "b": "fail"}), "qat_int8": _gate({"a": "fail", "b": "pass"})}
    decision = _choose(deployments, gates, targets=("cortex-m4",))
    assert decision["ship_variant"] == "qat_int8" and decision["verdict"] == "fail" and not decision["passed"]
    assert "fewest failed checks" in decision["explanation"]
    checks = deploy.choice_checks(decision, ship_variant="qat_int8")
    assert [(c["name"], c["verdict"]) for c in checks] == [(deploy.TARGET_CHECK, "pass"), (deploy.CHOICE_CHECK, "fail")]


def test_inconclusive_only_ships_as_inconclusive_and_counts_as_the_policy_says():
    deployments = {"int8": _deployment(10_000), "qat_int8": _deployment(10_400)}
    gates = {"int8": _gate({"a": "inconclusive"}), "qat_int8": _gate({"a": "fail"})}
    assert _choose(deployments, gates)["verdict"] == "inconclusive"
    assert _choose(deployments, gates)["passed"] is False
    assert _choose(deployments, gates, inconclusive="pass")["passed"] is True


def test_a_tiny_target_that_nothing_fits_fails_the_gate_and_says_why():
    tiny = DeviceTarget(name="tiny", title="t", runtime="tflite-micro", ram_bytes=2048, flash_bytes=8192,
                        reserved_ram_bytes=0, reserved_flash_bytes=0, source="test")
    deployments = {"int8": _deployment(10_000, arena=4096), "float32": _deployment(40_000, arena=None)}
    gates = {name: _gate({"pr_auc drop": "pass"}) for name in deployments}
    fits = deploy.target_fits([tiny], deployments)
    assert fits["int8"]["tiny"] == {"fits": False, "why_not": ["arena 4.0 KB + 0.0 KB reserved > 2.0 KB RAM",
                                                              "model 9.8 KB + 0.0 KB reserved > 8.0 KB flash"]}
    decision = deploy.choose_variant(requested="auto", named_targets=["tiny"], deployments=deployments, fits=fits,
                                     validation_gates=gates, inconclusive="fail")
    assert decision["verdict"] == "fail" and decision["explanation"].startswith("no variant fits on tiny")
    checks = deploy.choice_checks(decision, ship_variant=decision["ship_variant"])
    assert checks[0]["name"] == deploy.TARGET_CHECK and checks[0]["verdict"] == "fail"
    assert "RAM" in checks[0]["explanation"]


def test_a_named_variant_that_was_not_built_and_no_variant_at_all_are_decisions_too():
    deployments = {"int8": _deployment(10_000)}
    gates = {"int8": _gate({"pr_auc drop": "pass"})}
    decision = _choose(deployments, gates, targets=("cortex-m4",), requested="qat_int8")
    assert decision["ship_variant"] == "qat_int8"
    assert decision["table"]["int8"]["why_not_chosen"] == "qualifies, but --ship named qat_int8 (which was not built)"
    assert deploy.choice_checks(decision, ship_variant="qat_int8")[0]["explanation"] == \
        "qat_int8 does not fit: it was not built"
    nothing = _choose({}, {}, targets=("cortex-m4",))
    assert nothing["ship_variant"] is None and nothing["verdict"] == "fail" and nothing["table"] == {}


def test_a_named_variant_ships_as_named_and_the_gate_judges_its_fit():
    deployments = {"int8": _deployment(10_000), "float16": _deployment(20_000, arena=None)}
    gates = {name: _gate({"pr_auc drop": "pass"}) for name in deployments}
    decision = _choose(deployments, gates, targets=("cortex-m4",), requested="float16")
    assert decision["ship_variant"] == "float16" and "--ship named it" in decision["explanation"]
    checks = deploy.choice_checks(decision, ship_variant="float16")
    assert [(c["name"], c["verdict"]) for c in checks] == [(deploy.TARGET_CHECK, "fail")]
    gate = apply_gate(thresholds=__import__("pipeline.config", fromlist=["GateThresholds"]).GateThresholds(),
                      ship_variant="float16", headline_metric="pr_auc",
                      qualities={"keras_float": {"pr_auc": 0.5}, "float16": {"pr_auc": 0.5}},
                      audit={"settings": {"sensitive_columns": []}, "compression": {}}, extra_checks=checks)
    assert gate["verdict"] == "fail" and gate["checks"][-1]["name"] == deploy.TARGET_CHECK


# ---- targets ---------------------------------------------------------------------------

def test_the_built_in_targets_are_the_ones_the_issue_names():
    targets = builtin_targets()
    assert {name: (t.ram_bytes, t.flash_bytes, t.runtime) for name, t in targets.items()} == {
        "cortex-m4": (256 * 1024, 1024 * 1024, "tflite-micro"), "cortex-m7": (512 * 1024, 2048 * 1024, "tflite-micro"),
        "esp32-s3": (512 * 1024, 8192 * 1024, "tflite-micro"), "linux-cpu": (None, None, "litert")}
    assert all(t.source for t in targets.values())


def test_a_user_target_file_adds_a_device_and_a_bad_one_names_the_field(tmp_path):
    good = tmp_path / "board.json"
    good.write_text(json.dumps({"name": "my-board", "title": "M0+", "runtime": "tflite-micro", "ram_bytes": 32768,
                                "flash_bytes": 262144, "source": "datasheet"}))
    (target,) = resolve_targets([str(good), "cortex-m4"])[:1]
    assert target.name == "my-board" and target.reserved_ram_bytes == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"targets": [{"name": "b", "title": "t", "runtime": "zephyr", "ram_bytes": 1,
                                            "flash_bytes": 1, "source": "s"}]}))
    with pytest.raises(InputError, match="target 'b': field 'runtime' is 'zephyr'"):
        load_targets(bad)
    bad.write_text(json.dumps({"name": "b", "title": "t", "runtime": "litert", "ram_bytes": "lots",
                               "flash_bytes": None, "source": "s"}))
    with pytest.raises(InputError, match="field 'ram_bytes' is 'lots'"):
        load_targets(bad)
    with pytest.raises(InputError, match="the target file cannot be read"):
        resolve_targets([str(tmp_path)])  # a folder


def test_the_targets_command_lists_them_and_a_bad_target_file_exits_2(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "pipeline", "targets"], capture_output=True, text=True)
    assert listed.returncode == 0 and "cortex-m4" in listed.stdout and "esp32-s3" in listed.stdout
    template = subprocess.run([sys.executable, "-m", "pipeline", "targets", "--format", "json"], capture_output=True,
                              text=True)
    assert len(json.loads(template.stdout)["targets"]) == 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "b", "title": "t", "runtime": "litert", "flash_bytes": None,
                               "ram_bytes": None, "source": "s", "clock_hz": 1}))
    completed = subprocess.run([sys.executable, "-m", "pipeline", "run", "fraud", "--target", str(bad),
                                "--out", str(tmp_path / "reports")], capture_output=True, text=True)
    assert completed.returncode == 2 and "unknown field(s) clock_hz" in completed.stderr
    assert str(bad) in completed.stderr and not (tmp_path / "reports").exists()


# ---- the microcontroller runtime, on real .tflite files --------------------------------

@pytest.fixture(scope="module")
def tiny_tflites():
    """A small MLP converted three ways: float32, dynamic range (hybrid) and full int8."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    first = tf.Variable(rng.normal(size=(16, 96)).astype(np.float32) * 0.3)
    second = tf.Variable(rng.normal(size=(96, 1)).astype(np.float32) * 0.3)

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)])
    def model(x):
        return tf.sigmoid(tf.matmul(tf.nn.relu(tf.matmul(x, first)), second))

    def convert(kind):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
        if kind != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if kind == "int8":
            converter.representative_dataset = lambda: ([rng.normal(size=(1, 16)).astype(np.float32)]
                                                        for _ in range(50))
        return converter.convert()

    rows = rng.normal(size=(64, 16)).astype(np.float32)
    return {kind: convert(kind) for kind in ("float32", "dynamic_range", "int8")}, rows


def test_the_microcontroller_runtime_measures_the_arena_and_matches_litert(tiny_tflites):
    from pipeline.stages.evaluate import LiteRTModel

    models, rows = tiny_tflites
    result = run_on_microcontroller(models["int8"], rows)
    assert result.supported and result.arena_bytes % ARENA_RESOLUTION == 0
    assert "FULLY_CONNECTED" in result.operators
    # The smallest arena: it allocates at the size found and not one step below.
    smaller = run_on_microcontroller(models["int8"], None, largest_arena=result.arena_bytes - ARENA_RESOLUTION)
    assert not smaller.supported
    litert = LiteRTModel(models["int8"], default_delegates=False).predict(rows)
    # The two runtimes' int8 kernels round differently in places: most outputs are identical, the
    # rest a couple of output steps (1/256 for a sigmoid) apart. That is why deployment.json measures
    # the agreement instead of assuming it.
    difference = np.abs(result.outputs - litert)
    assert (difference == 0).mean() >= 0.9 and difference.max() <= 3 / 256, difference
    float_result = run_on_microcontroller(models["float32"], rows)
    assert np.allclose(float_result.outputs, LiteRTModel(models["float32"]).predict(rows), atol=1e-6)


def test_a_variant_the_microcontroller_runtime_rejects_is_named_with_its_first_operator(tiny_tflites):
    models, rows = tiny_tflites
    result = run_on_microcontroller(models["dynamic_range"], rows)
    assert not result.supported and result.outputs is None and result.arena_bytes is None
    assert result.first_unsupported.startswith("FULLY_CONNECTED (node 0):")
    assert "not supported" in result.first_unsupported
    entry = deploy.variant_deployment(model_bytes=len(models["dynamic_range"]), latency_ms=0.01, micro=result,
                                      litert_test=Predictions(np.zeros(3), 0.5), micro_test=None, micro_quality=None,
                                      litert_quality={}, headline_metric="pr_auc")
    assert builtin_targets()["cortex-m4"].fit(entry)["why_not"][0].startswith("does not run on tflite-micro: "
                                                                              "FULLY_CONNECTED")
    assert builtin_targets()["linux-cpu"].fit(entry) == {"fits": True, "why_not": []}


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler on this machine")
def test_the_device_sources_compile(tiny_tflites, tmp_path):
    models, _ = tiny_tflites
    sources = deploy.device_sources(variant="int8", model_content=models["int8"], arena_bytes=2048,
                                    operators=["FULLY_CONNECTED"], input_detail={"shape": [1, 16], "dtype": "float32",
                                                                                 "quantization": None},
                                    domain="fraud", run_id="run")
    (tmp_path / "int8_model_data.h").write_text(sources["h"])
    (tmp_path / "int8_model_data.cc").write_text(sources["cc"])
    (tmp_path / "check.cc").write_text('#include "int8_model_data.h"\n'
                                       "static_assert(kInt8ArenaBytes == 2048, \"arena\");\n"
                                       f"static_assert(kInt8ModelBytes == {len(models['int8'])}, \"bytes\");\n"
                                       "const unsigned char* model() { return edgeaudit_int8_model; }\n")
    for name in ("int8_model_data.cc", "check.cc"):
        completed = subprocess.run(["g++", "-std=c++17", "-c", name, "-o", "/dev/null"], cwd=tmp_path,
                                   capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr
