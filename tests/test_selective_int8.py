"""selective_int8: the greedy search on the worst group's change (pure, with stand-in models), and on a real
model with one layer made hard to quantize (found by the per-layer table, repaired by keeping it in float)."""

import numpy as np
import pytest

from pipeline.stages import selective_int8
from pipeline.stages.group_harm import HarmTarget, group_changes

LABELS = np.array([1, 0] * 50)
GROUP = np.array(["A"] * 50 + ["B"] * 50)
REFERENCE = LABELS.copy()  # the float model is right on every row


def _stand_ins(harm_by_layer: dict[str, int], sizes: dict[str, int]):
    """Models are denylists (as bytes); group B's positives lose `harm` decisions until the harmful layers
    are restored. harm_by_layer: layer -> positives of B it flips while quantized."""
    def quantize(denylist):  # exactly 100 bytes plus the restored layers' sizes
        prefix = ",".join(denylist).encode() + b"#"
        return prefix + b"." * (100 + sum(sizes.get(name, 0) for name in denylist) - len(prefix))

    def predict(model, features):
        restored = set(model.split(b"#")[0].decode().split(",")) - {""}
        scores = np.where(LABELS == 1, 0.9, 0.1)
        harmed = sum(harm for layer, harm in harm_by_layer.items() if layer not in restored)
        positives_b = np.flatnonzero((GROUP == "B") & (LABELS == 1))
        scores[positives_b[:harmed]] = 0.05
        return scores

    return quantize, predict


def _search(harm, sizes, layers, max_change=0.05, ratio=1.25):
    quantize, predict = _stand_ins(harm, sizes)
    target = HarmTarget(groups={"Group": GROUP}, reference_decisions=REFERENCE, max_change=max_change,
                        threshold_rule="f1", min_group_size=10)
    return selective_int8.search(
        quantize=quantize, predict=predict, float_tensors=lambda model: set(model.split(b"#")[0].decode().split(",")),
        latency=lambda model: len(model) / 1000, layers=[{"tensor_name": n, "keras_layer": n, "op": "FC",
                                                           "rmse_over_scale": r} for n, r in layers],
        int8_bytes=100, features=np.zeros((LABELS.size, 1)), labels=LABELS, target=target, byte_budget_ratio=ratio)


def test_the_layer_that_harms_a_group_is_restored_not_the_one_with_the_largest_error():
    # "noisy" has the largest RMSE / scale but harms nobody; "harmful" flips 10 of group B's 25 positives.
    outcome = _search({"harmful": 10}, {"noisy": 5, "harmful": 20}, [("noisy", 3.0), ("harmful", 0.9)])
    details = outcome["details"]
    assert outcome["status"] == "ok"
    assert details["start"]["worst"]["group"] == "B" and details["start"]["worst"]["metric"] == "tpr"
    assert details["start"]["worst"]["change"] == pytest.approx(-10 / 25)
    assert [step["keras_layer"] for step in details["restored"]] == ["harmful"]
    assert details["within_limit"] and details["final"]["worst"]["change"] == pytest.approx(0.0)
    step = details["restored"][0]
    assert step["bytes_added"] == 20 and step["float_in_file"] and step["latency_ms_added"] == pytest.approx(0.02)


def test_a_variant_inside_the_limit_is_skipped_and_the_byte_budget_is_respected():
    skipped = _search({}, {}, [("a", 1.0)])
    assert skipped["status"] == "skipped" and "no layer to restore" in skipped["reason"]
    # The only repair costs 40 % more bytes than int8: over the 1.25x budget, so nothing is restored.
    over_budget = _search({"harmful": 10}, {"harmful": 40}, [("harmful", 0.9)])
    assert over_budget["status"] == "ok" and over_budget["details"]["restored"] == []
    assert not over_budget["details"]["within_limit"] and over_budget["details"]["stopped"] == "the byte budget"
    # Two harmful layers: both restored, greedily, the larger harm first.
    both = _search({"first": 3, "second": 8}, {"first": 5, "second": 5}, [("first", 2.0), ("second", 1.0)])
    assert [step["keras_layer"] for step in both["details"]["restored"]] == ["second", "first"]


def test_group_changes_need_enough_rows_and_both_classes():
    decisions = REFERENCE.copy()
    decisions[:6:2] = 0  # three of A's positives lost
    changes = group_changes(LABELS, {"Group": GROUP}, REFERENCE, decisions, min_group_size=10)
    assert changes[0] == {"column": "Group", "group": "A", "metric": "tpr", "change": pytest.approx(-3 / 25),
                          "rows": 25}
    assert group_changes(LABELS, {"Group": GROUP}, REFERENCE, decisions, min_group_size=60) == []
    # 25 positives and 25 negatives a group: with 30 needed (the gate's --min-positives-per-group) nothing is judged
    assert group_changes(LABELS, {"Group": GROUP}, REFERENCE, decisions, min_group_size=10, min_positives=30) == []


def test_a_layer_made_hard_to_quantize_is_kept_in_float_and_the_group_repaired():
    """The model of test_layer_errors.py: hidden_0 has one huge-range unit that hidden_1 reads through tiny
    weights. The rows where that unit is active (group "on") lose its contribution in int8; selective int8
    keeps hidden_1 (and what it needs) in float, within the byte budget, and still runs on tflite-micro."""
    import dataclasses

    from pipeline.metrics import Predictions, choose_threshold
    from pipeline.stages.compress import compress
    from pipeline.stages.microcontroller import run_on_microcontroller
    from tests.test_layer_errors import HARD_LAYER, hard_to_quantize_job

    job, model, validation = hard_to_quantize_job(variants=("int8", "selective_int8"))
    weights, bias = model.get_layer("hidden_0").get_weights()
    active = validation @ weights[:, 0] + bias[0] > 0
    scores = np.asarray(model.predict(validation, verbose=0)).ravel()
    reference = Predictions(scores, choose_threshold(job.validation_labels, scores)).decisions
    job = dataclasses.replace(job, harm_target=HarmTarget(
        groups={"unit": np.where(active, "on", "off")}, reference_decisions=reference, max_change=0.02,
        min_group_size=10))
    results = compress(job, progress=lambda _: None)
    int8, selective = results["int8"], results["selective_int8"]
    assert selective.status == "ok", selective.reason
    details = selective.details["selective"]
    assert abs(details["start"]["worst"]["change"]) > 0.02 and details["start"]["worst"]["group"] == "on"
    assert details["within_limit"] and abs(details["final"]["worst"]["change"]) <= 0.02
    restored = [step["keras_layer"] for step in details["restored"]]
    assert HARD_LAYER in restored and all(step["float_in_file"] for step in details["restored"])
    assert len(selective.tflite) <= 1.25 * len(int8.tflite) and details["final"]["bytes"] == len(selective.tflite)
    assert selective.details["converter"]["denylisted_nodes"] == [step["tensor_name"] for step in details["restored"]]
    micro = run_on_microcontroller(selective.tflite, validation[:20])
    assert micro.supported, micro.first_unsupported
    # Without a target (no groups), the variant says why it was not built.
    plain = compress(dataclasses.replace(job, harm_target=None, variants=("selective_int8",)), progress=lambda _: None)
    assert plain["selective_int8"].status == "skipped" and "validation split" in plain["selective_int8"].reason
