"""Explanation drift by group (pipeline/stages/explanation_drift.py): hand-made SHAP values with known drift."""

import numpy as np
import pandas as pd
import pytest

from pipeline.stages.explanation_drift import compare, drift_by_group

NAMES = ["a", "b", "c", "d", "e", "f"]


def _values(rows=40, seed=0):
    weights = np.array([6, 5, 4, 3, 2, 1], dtype=float) / 10
    return np.random.default_rng(seed).normal(0, 0.05, (rows, len(NAMES))) + weights


def test_a_group_whose_ranking_reverses_is_flagged_and_the_others_are_not():
    reference = _values()
    shipped = reference.copy()
    groups = pd.DataFrame({"Sex": ["F", "M"] * 20})
    women = (groups["Sex"] == "F").to_numpy()
    shipped[women] = shipped[women][:, ::-1]          # women: the order of importance reversed
    shipped[women, 2] *= -1                           # ... and feature c pushes the other way
    drift = drift_by_group(names=NAMES, shap_values={"keras_float": reference, "int8": shipped}, groups=groups,
                           reference="keras_float", min_agreement=0.8, min_rows=10)
    cells = drift["models"]["int8"]["by_group"]["Sex"]
    assert cells["F"]["spearman"] == pytest.approx(-1.0) and cells["M"]["spearman"] == pytest.approx(1.0)
    assert cells["F"]["sign_flips"] == ["c"] and cells["M"]["sign_flips"] == []
    assert cells["F"]["top5_overlap"] == 4 and cells["M"]["top5_overlap"] == 5
    assert {"column": "Sex", "group": "F", "spearman": pytest.approx(-1.0)} in drift["models"]["int8"]["flagged"]
    assert all(item["group"] != "M" for item in drift["models"]["int8"]["flagged"])
    assert drift["models"]["int8"]["lowest_group"] == {"column": "Sex", "group": "F", "spearman": pytest.approx(-1.0)}


def test_small_groups_are_not_measured_and_identical_models_agree():
    reference = _values(rows=24)
    groups = pd.DataFrame({"Band": ["x"] * 20 + ["y"] * 4})
    drift = drift_by_group(names=NAMES, shap_values={"keras_float": reference, "int8": reference.copy()},
                           groups=groups, reference="keras_float", min_rows=10)
    cells = drift["models"]["int8"]["by_group"]["Band"]
    assert cells["y"] == {"rows": 4, "measured": False}
    assert cells["x"]["spearman"] == pytest.approx(1.0) and drift["models"]["int8"]["flagged"] == []
    assert compare(NAMES, reference, reference)["mean_abs_difference"] == 0.0
    with pytest.raises(ValueError, match="groups has 3 rows"):
        drift_by_group(names=NAMES, shap_values={"keras_float": reference, "int8": reference}, groups=groups.head(3),
                       reference="keras_float")


def test_tiny_means_do_not_count_as_sign_flips():
    reference = _values()
    shipped = reference.copy()
    reference[:, 5] = 0.001   # f barely matters ...
    shipped[:, 5] = -0.001    # ... and its sign changing is not a finding
    assert compare(NAMES, shipped, reference)["sign_flips"] == []


def test_an_explanation_is_split_by_the_groups_of_its_own_rows_and_a_text_is_not_measured():
    from pipeline.stages.explanation_drift import explanation_drift

    reference = _values(rows=30)
    test_groups = pd.DataFrame({"Sex": ["F", "M", "M"] * 20})   # 60 test rows, 30 of them explained
    row_ids = np.arange(0, 60, 2)                              # F, M, M, F ... at the even rows
    explanation = {"feature_columns": NAMES, "reference": "keras_float",
                   "_arrays": {"row_ids": row_ids, "shap_values": {"keras_float": reference, "int8": reference}}}
    drift = explanation_drift(explanation, test_groups, min_rows=5)
    cells = drift["models"]["int8"]["by_group"]["Sex"]
    assert cells["F"]["rows"] == int((test_groups["Sex"].to_numpy()[row_ids] == "F").sum()) == 10
    assert cells["M"]["rows"] == 20
    text = {"feature_columns": ["text"], "reference": "keras_float",
            "_arrays": {"row_ids": row_ids, "shap_values": {"keras_float": [[0.1, 0.2]], "int8": [[0.1]]}}}
    assert "not_measured" in explanation_drift(text, test_groups)
