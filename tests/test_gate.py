"""The gate: each limit can fail on its own; noise alone does not fail a run."""

from pipeline.config import FLOAT_MODEL, GateThresholds
from pipeline.stages.gate import apply_gate

QUALITIES = {FLOAT_MODEL: {"pr_auc": 0.60}, "int8": {"pr_auc": 0.595}}


def _audit(tpr_gap_change=0.01, interval=(-0.02, 0.04), eod=None):
    change = {"reference": 0.1, "variant": 0.1 + tpr_gap_change, "change": tpr_gap_change,
              "interval": list(interval), "flagged": interval[0] > 0 or interval[1] < 0}
    steady = {"reference": 0.1, "variant": 0.1, "change": 0.0, "interval": [-0.01, 0.01], "flagged": False}
    return {
        "settings": {"sensitive_columns": ["sex", "age"], "columns": ["sex", "age", "sex × age"]},
        "summary": {"int8": {"equalized_odds_difference": eod or {"sex": 0.10, "age": 0.12, "sex × age": 0.9}}},
        "compression": {"int8": {
            "sex": {"tpr_gap_change": steady, "fpr_gap_change": steady},
            "age": {"tpr_gap_change": change, "fpr_gap_change": steady},
            "sex × age": {"tpr_gap_change": {**change, "change": 0.5, "interval": [0.2, 0.8]},
                          "fpr_gap_change": steady}}},
    }


def _gate(qualities=QUALITIES, audit=None, **limits):
    return apply_gate(thresholds=GateThresholds(**limits), ship_variant="int8", headline_metric="pr_auc",
                      qualities=qualities, audit=audit or _audit())


def test_a_run_within_every_limit_passes_and_the_intersection_is_not_gated():
    gate = _gate()
    assert gate["passed"], gate
    assert [c["name"] for c in gate["checks"]] == [
        "pr_auc drop", "equalized odds difference by sex", "equalized odds difference by age",
        "group gap widening by compression"]


def test_quality_and_equalized_odds_limits_fail_on_their_own():
    assert not _gate(max_quality_drop=0.001)["passed"]
    failing = [c["name"] for c in _gate(max_equalized_odds_difference=0.11)["checks"] if not c["passed"]]
    assert failing == ["equalized odds difference by age"]


def test_a_real_widening_fails_and_a_noisy_one_does_not():
    real = _gate(audit=_audit(tpr_gap_change=0.09, interval=(0.03, 0.15)))
    assert not real["passed"]
    assert "TPR gap by age by +0.0900" in real["checks"][-1]["explanation"]
    noisy = _gate(audit=_audit(tpr_gap_change=0.09, interval=(-0.02, 0.2)))
    assert noisy["passed"]
    assert "not distinguishable from noise" in noisy["checks"][-1]["explanation"]


def test_unmeasurable_values_fail_rather_than_pass():
    audit = _audit(eod={"sex": None, "age": 0.1})
    audit["compression"]["int8"] = {}
    gate = _gate(audit=audit)
    assert {c["name"] for c in gate["checks"] if not c["passed"]} == {
        "equalized odds difference by sex", "group gap widening by compression"}


def test_a_shipped_variant_that_was_not_built_fails_the_gate():
    gate = _gate(qualities={FLOAT_MODEL: {"pr_auc": 0.6}})
    assert not gate["passed"]
    assert "was not built" in gate["checks"][0]["explanation"]
