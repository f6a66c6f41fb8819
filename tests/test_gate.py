"""The gate: each limit can fail on its own; noise alone does not fail a run."""

from pipeline.config import FLOAT_MODEL, GateThresholds
from pipeline.stages.gate import MITIGATION_WORSE_MARGIN, apply_gate, mitigation_made_worse

QUALITIES = {FLOAT_MODEL: {"pr_auc": 0.60}, "int8": {"pr_auc": 0.595}}


def _eo(value, interval=None, positives=(40, 40)):
    """One column's equalized-odds disparity and its groups, as the audit writes them."""
    interval = interval if interval is not None else (None if value is None else [max(0, value - 0.05), value + 0.05])
    groups = {f"g{i}": {"count": 1000, "measurable": True, "metrics": {"positives": {"value": count}}}
              for i, count in enumerate(positives)}
    disparity = {"equalized_odds_difference": {"value": value, "interval": interval},
                 "groups_used": list(groups), "groups_excluded": {}}
    return disparity, {"groups": groups}


def _audit(tpr_gap_change=0.01, interval=(-0.02, 0.04), eod=None, eo_intervals=None, positives=None):
    change = {"reference": 0.1, "variant": 0.1 + tpr_gap_change, "change": tpr_gap_change,
              "interval": list(interval), "flagged": interval[0] > 0 or interval[1] < 0}
    steady = {"reference": 0.1, "variant": 0.1, "change": 0.0, "interval": [-0.01, 0.01], "flagged": False}
    eod = eod or {"sex": 0.10, "age": 0.12, "sex × age": 0.9}
    columns = {column: _eo(value, (eo_intervals or {}).get(column), (positives or {}).get(column, (40, 40)))
               for column, value in eod.items()}
    return {
        "settings": {"sensitive_columns": ["sex", "age"], "columns": ["sex", "age", "sex × age"]},
        "summary": {"int8": {"equalized_odds_difference": eod}},
        "disparities": {"int8": {column: parts[0] for column, parts in columns.items()}},
        "by_group": {"int8": {column: parts[1] for column, parts in columns.items()}},
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
    narrow = _audit(eo_intervals={"sex": [0.08, 0.105], "age": [0.115, 0.14]})
    failing = [c["name"] for c in _gate(audit=narrow, max_equalized_odds_difference=0.11)["checks"]
               if not c["passed"]]
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


def test_an_interval_that_straddles_the_limit_is_inconclusive_and_counts_as_the_user_chose():
    """The default fraud run of issue 15: equalized odds by age 0.3095 [0.223, 0.812] against 0.30."""
    audit = _audit(eod={"sex": 0.10, "age": 0.3095}, eo_intervals={"age": [0.223, 0.812]})
    gate = _gate(audit=audit)
    age = gate["checks"][2]
    assert age["verdict"] == "inconclusive" and age["passed"] is False
    assert gate["verdict"] == "inconclusive" and gate["passed"] is False
    assert "straddles the limit" in age["explanation"] and "more test rows" in age["explanation"]
    # The half-width below the point (0.0865) must shrink to 0.0095: (0.0865 / 0.0095)^2 = 82.9
    # times the 2,000 rows, so about 163,800 more.
    assert 160_000 < age["more_examples"]["rows"] < 168_000, age
    lenient = _gate(audit=audit, inconclusive="pass")
    assert lenient["passed"] is True and lenient["verdict"] == "inconclusive"
    assert lenient["checks"][2]["passed"] is True and lenient["inconclusive_counts_as"] == "pass"


def test_a_whole_interval_beyond_the_limit_fails_and_one_within_passes():
    beyond = _gate(audit=_audit(eod={"sex": 0.10, "age": 0.45}, eo_intervals={"age": [0.35, 0.6]}),
                   inconclusive="pass")
    assert beyond["checks"][2]["verdict"] == "fail" and beyond["passed"] is False
    within = _gate(audit=_audit(eod={"sex": 0.10, "age": 0.2}, eo_intervals={"age": [0.12, 0.3]}))
    assert within["checks"][2]["verdict"] == "pass" and within["passed"] is True


def test_a_group_with_too_few_positives_is_inconclusive_and_says_how_many_more():
    """Ages 46-55 of the default fraud data hold 9 frauds: its TPR moves by 0.111 per transaction."""
    audit = _audit(eod={"sex": 0.10, "age": 0.12}, positives={"age": (9, 14)})
    gate = _gate(audit=audit)
    age = gate["checks"][2]
    assert age["verdict"] == "inconclusive", age
    assert age["more_examples"] == {"g0": {"positives": 11}, "g1": {"positives": 6}}
    assert "g0: 9 positives, 11 more needed" in age["explanation"]
    assert _gate(audit=audit, min_positives_per_group=5)["checks"][2]["verdict"] == "pass"


def test_verdict_labels_read_old_records_too():
    from pipeline.stages.gate import verdict_label, verdict_of

    assert verdict_of({"passed": True}) == "pass" and verdict_of({"passed": "true"}) == "fail"
    assert verdict_label({"verdict": "inconclusive", "passed": False}) == "INCONCLUSIVE (counted as failed)"
    assert verdict_label({"verdict": "pass", "passed": True}, gate=True) == "PASSED"


def test_mitigation_made_worse_names_the_columns_whose_gap_grew_past_the_margin():
    def report(sex, age):
        return {"disparities": {"sex": {"equalized_odds_difference": {"value": sex}},
                                "age": {"equalized_odds_difference": age}}}
    mitigation = {"before": report(0.20, 0.30), "after": report(0.20 + MITIGATION_WORSE_MARGIN / 2, 0.45)}
    assert mitigation_made_worse(mitigation) == ["age"]  # sex moved by less than the margin
    assert mitigation_made_worse({"before": report(0.2, 0.3), "after": report(0.1, None)}) == []
    # the record's own answer wins (mitigation.json carries it since it was written by the audit stage)
    assert mitigation_made_worse({**mitigation, "made_worse": []}) == []
