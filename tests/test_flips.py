"""The flip ledger (pipeline/stages/audit/flips.py): a hand-made case with known flips and rates."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.metrics import Predictions
from pipeline.stages.audit import flips as flip_stage
from pipeline.stages.audit.intervals import _wilson

# 60 rows: group A rows 0-29, group B rows 30-59; the variant flips rows 0-5 of A (6 of 30) and row 30 of B.
LABELS = np.array([1, 0] * 30)
GROUPS = pd.DataFrame({"Group": ["A"] * 30 + ["B"] * 30, "Band": ["x", "y", "z"] * 20})


def _case():
    reference = np.where(LABELS == 1, 0.8, 0.2)
    variant = reference.copy()
    flipped_rows = [0, 1, 2, 3, 4, 5, 30]
    variant[flipped_rows] = 1.0 - reference[flipped_rows]      # 1 -> 0 on positives, 0 -> 1 on negatives
    variant[6] = 0.55                                            # moves but stays on the same side
    return {"keras_float": Predictions(reference, 0.5), "int8": Predictions(variant, 0.5)}, flipped_rows


def test_the_ledger_lists_exactly_the_flipped_rows_with_both_scores_and_margins():
    predictions, flipped_rows = _case()
    texts = [f"example {row}" for row in range(LABELS.size)]
    ledger = flip_stage.flip_ledger(labels=LABELS, groups=GROUPS, predictions=predictions, examples=texts)
    assert sorted(ledger["row"]) == flipped_rows
    assert set(ledger["variant"]) == {"int8"}
    first = ledger.set_index("row").loc[0]
    assert first["label"] == 1 and first["direction"] == "1->0" and first["effect"] == "now wrong"
    assert first["score:reference"] == pytest.approx(0.8) and first["score:variant"] == pytest.approx(0.2)
    assert first["margin:reference"] == pytest.approx(0.3) and first["margin:variant"] == pytest.approx(-0.3)
    assert first["Group"] == "A" and first["Band"] == "x" and first["example"] == "example 0"
    negative = ledger.set_index("row").loc[1]
    assert negative["direction"] == "0->1" and negative["effect"] == "now wrong"
    assert list(ledger.columns[:3]) == ["variant", "row", "label"] and "unit" not in ledger


def test_flip_rates_per_group_are_the_counts_with_intervals_that_hold_them():
    predictions, _ = _case()
    rates = flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=predictions, bootstrap_samples=200,
                                  min_group_size=10)
    int8 = rates["variants"]["int8"]
    assert int8["overall"]["flips"] == 7 and int8["overall"]["rows"] == 60
    assert int8["overall"]["rate"]["value"] == pytest.approx(7 / 60)
    assert (int8["overall"]["gained"], int8["overall"]["lost"]) == (3, 4)  # rows 1, 3, 5 gained; 0, 2, 4, 30 lost
    assert int8["overall"]["now_wrong"] == 7 and int8["overall"]["now_right"] == 0
    a, b = int8["by_group"]["Group"]["A"], int8["by_group"]["Group"]["B"]
    assert (a["flips"], a["rows"], b["flips"], b["rows"]) == (6, 30, 1, 30)
    assert a["rate"]["value"] == pytest.approx(0.2) and b["rate"]["value"] == pytest.approx(1 / 30)
    for cell in (a, b):
        low, high = cell["rate"]["interval"]
        assert low <= cell["rate"]["value"] <= high
        wilson = _wilson(cell["flips"], cell["rows"])
        assert low <= wilson[0] + 1e-12 and high >= wilson[1] - 1e-12  # at least Wilson's width
    assert a["rate"]["interval"][0] > b["rate"]["value"]  # A's six flips are told apart from B's one
    assert int8["highest"]["Group"] == "A"
    assert "Group × Band" in int8["by_group"]
    json.dumps(rates)  # JSON-able


def test_a_group_without_flips_still_has_an_upper_bound_and_small_groups_are_not_measurable():
    predictions, _ = _case()
    rates = flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=predictions, bootstrap_samples=50,
                                  min_group_size=25)
    band = rates["variants"]["int8"]["by_group"]["Band"]
    assert all(not cell["measurable"] for cell in band.values())  # 20 rows each, fewer than 25
    assert rates["variants"]["int8"]["highest"]["Band"] is None
    none_flipped = {"keras_float": predictions["keras_float"], "int8": predictions["keras_float"]}
    cell = flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=none_flipped,
                                 bootstrap_samples=50, min_group_size=10)["variants"]["int8"]["by_group"]["Group"]["A"]
    assert cell["flips"] == 0 and cell["rate"]["value"] == 0.0
    assert flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=none_flipped, bootstrap_samples=10,
                                 min_group_size=10)["variants"]["int8"]["highest"]["Group"] is None
    assert cell["rate"]["interval"][1] == pytest.approx(_wilson(0, 30)[1]) and cell["rate"]["interval"][1] > 0.1


def test_units_are_resampled_whole_and_widen_the_interval_of_correlated_flips():
    predictions, _ = _case()
    # Rows 0-5 of A belong to one unit: their flips are one event, not six.
    units = np.array([f"u{row // 6}" for row in range(LABELS.size)])
    independent = flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=predictions,
                                        bootstrap_samples=400, min_group_size=10)
    clustered = flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=predictions, clusters=units,
                                      bootstrap_samples=400, min_group_size=10)

    def width(rates):
        low, high = rates["variants"]["int8"]["by_group"]["Group"]["A"]["rate"]["interval"]
        return high - low

    assert width(clustered) > 1.3 * width(independent)
    ledger = flip_stage.flip_ledger(labels=LABELS, groups=GROUPS, predictions=predictions, clusters=units)
    assert list(ledger.columns[:4]) == ["variant", "row", "label", "unit"] and set(ledger["unit"]) == {"u0", "u5"}


def test_no_flips_give_an_empty_ledger_with_its_columns_and_examples_are_written_as_text():
    predictions, _ = _case()
    same = {"keras_float": predictions["keras_float"], "int8": predictions["keras_float"]}
    ledger = flip_stage.flip_ledger(labels=LABELS, groups=GROUPS, predictions=same)
    assert ledger.empty and {"variant", "row", "Group", "margin:variant"} <= set(ledger.columns)
    table = pd.DataFrame({"Amount": [12.5, np.nan], "Kind": ["card", None], "Count": np.array([3, 4])})
    assert [json.loads(text) for text in flip_stage.example_texts(table)] == [
        {"Amount": 12.5, "Kind": "card", "Count": 3}, {"Amount": None, "Kind": None, "Count": 4}]
    assert flip_stage.example_texts(["a review", "another"]) == ["a review", "another"]
    assert flip_stage.example_texts(np.zeros((2, 8, 8, 1))) is None


def test_the_figures_draw_every_variant_and_the_flipped_images():
    predictions, _ = _case()
    rates = flip_stage.flip_rates(labels=LABELS, groups=GROUPS, predictions=predictions, bootstrap_samples=20,
                                  min_group_size=10)
    figure = flip_stage.flip_rate_figure(rates, "Group")
    assert len(figure.axes[0].patches) == 2  # one bar per group for the one variant
    ledger = flip_stage.flip_ledger(labels=LABELS, groups=GROUPS, predictions=predictions)
    images = np.random.default_rng(0).random((LABELS.size, 8, 8, 1))
    drawn = flip_stage.flipped_images_figure(images, ledger, "int8", limit=4)
    assert sum(1 for ax in drawn.axes if ax.images) == 4
    assert flip_stage.flipped_images_figure(images, ledger.iloc[:0], "int8") is None
