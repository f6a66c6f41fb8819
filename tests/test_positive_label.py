"""Issue 19: the `tabular` domain by its own name, and --positive-label on every modality
(the outcome's value is named; every other value is 0; a value that does not occur exits 2)."""

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main, run_config
from pipeline.data.fraud_generator import generate_transactions
from pipeline.data.images import load_images
from pipeline.data.labels import one_vs_rest
from pipeline.data.tabular import load_tabular
from pipeline.data.text import load_text
from pipeline.errors import EXIT_BAD_INPUT, InputError
from pipeline.registry import default_data_domain_names, get_domain
from tests.test_imaging_data import write_folder, write_npz


def test_one_vs_rest_names_the_mapping_and_refuses_a_value_that_is_not_there():
    labels, matched, note = one_vs_rest(["a", "b", "c", "b"], "B", what="label column 'y'", source="f.csv")
    assert labels.tolist() == [0, 1, 0, 1] and matched == "b"  # case-insensitive when unique
    assert "'b' -> 1 (2 rows, --positive-label)" in note and "'a' 1" in note and "'c' 1" in note
    with pytest.raises(InputError, match="--positive-label 'z' is not a value of label column 'y'; it holds 'b' "
                                         r"\(2\), 'a' \(1\), 'c' \(1\)") as error:
        one_vs_rest(["a", "b", "c", "b"], "z", what="label column 'y'", source="f.csv")
    assert error.value.fix and "f.csv" in str(error.value)
    with pytest.raises(InputError, match="no class 0"):
        one_vs_rest(["a", "a"], "a", what="label column 'y'", source="f.csv")


def _table(rows: int = 1500) -> pd.DataFrame:
    frame = generate_transactions(rows=rows, seed=2)
    # a three-valued outcome, as a user's table would hold it
    frame["outcome"] = np.where(frame["is_fraud"] == 1, "fraud", np.where(frame.index % 2, "ok", "review"))
    return frame.drop(columns=["is_fraud"])


def test_a_table_with_three_label_values_runs_with_the_positive_label_named(tmp_path):
    path = tmp_path / "table.csv"
    _table().to_csv(path, index=False)
    with pytest.raises(InputError, match="has 3 distinct values"):  # without it: today's error stays
        load_tabular(path, label_column="outcome", sensitive_columns=("sex",), min_group_size=5)
    data = load_tabular(path, label_column="outcome", sensitive_columns=("sex",), min_group_size=5,
                        positive_label="fraud")
    assert data.positive_class == "outcome = fraud"
    assert any("'fraud' -> 1" in note and "every other value -> 0" in note for note in data.source.notes)
    config = run_config(["tabular", "--data", str(path), "--label", "outcome", "--sensitive", "sex",
                         "--positive-label", "fraud", "--min-group-size", "5"])
    assert get_domain("tabular").load(config).positive_class == "outcome = fraud"


def test_the_tabular_domain_needs_a_table_and_run_all_leaves_it_out(tmp_path, capsys):
    assert "tabular" not in default_data_domain_names() and "fraud" in default_data_domain_names()
    assert main(["run", "tabular", "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "the tabular domain has no default data" in capsys.readouterr().err
    path = tmp_path / "table.csv"
    _table(800).to_csv(path, index=False)
    code = main(["run", "tabular", "--data", str(path), "--label", "outcome", "--sensitive", "sex",
                 "--positive-label", "chargeback", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "--positive-label 'chargeback' is not a value of label column 'outcome'" in err
    assert "'ok'" in err and "'review'" in err and "'fraud'" in err  # the values found
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("manifest.json"))


def test_texts_labelled_fresh_or_rotten(tmp_path):
    frame = pd.DataFrame({"review": [f"{'a lovely' if i % 2 else 'a dull'} film number {i}" for i in range(300)],
                          "verdict": ["fresh" if i % 2 else "rotten" for i in range(300)]})
    path = tmp_path / "reviews.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match="not a sentiment label"):
        load_text(path, text_column="review", label_column="verdict", min_group_size=5)
    data = load_text(path, text_column="review", label_column="verdict", min_group_size=5, positive_label="fresh")
    assert data.positive_class == "label 'fresh'"
    assert int(data.train.labels.sum() + data.validation.labels.sum() + data.test.labels.sum()) == 150
    with pytest.raises(InputError, match="'fresh' \\(150\\), 'rotten' \\(150\\)"):
        load_text(path, text_column="review", label_column="verdict", min_group_size=5, positive_label="ripe")


def test_images_in_several_class_folders_and_npz_classes(tmp_path):
    root = tmp_path / "lesions"
    write_folder(root, {"melanoma": 60, "nevus": 60, "keratosis": 40})
    with pytest.raises(InputError, match="expected exactly two"):
        load_images(root, min_group_size=5)
    data = load_images(root, min_group_size=5, positive_label="melanoma")
    assert data.positive_class == "melanoma"
    assert any("'melanoma' -> 1" in note for note in data.source.notes)
    with pytest.raises(InputError, match="not a value of the class subfolders"):
        load_images(root, min_group_size=5, positive_label="basal")
    npz = write_npz(tmp_path / "classes.npz", classes=3)
    data = load_images(npz, min_group_size=5, positive_label="2")
    assert data.positive_class.startswith("class 2")


def test_a_label_the_tool_makes_refuses_a_positive_label(tmp_path):
    with pytest.raises(InputError, match="--positive-label applies to a per-reading table"):
        get_domain("maintenance").load(run_config(["maintenance", "--positive-label", "1"]))
    with pytest.raises(InputError, match="apply to your own images"):
        get_domain("imaging").load(run_config(["imaging", "--positive-label", "1"]))


def test_a_column_that_alone_separates_the_label_is_named_and_drop_removes_it(tmp_path, capsys):
    frame = _table(1500)
    outcome = (frame["outcome"] == "fraud").astype(int)
    frame["chargeback_filed"] = np.where(outcome == 1, "yes", "no")  # known only after the outcome
    frame["settled_amount"] = outcome * 100.0 + np.arange(len(frame)) % 7  # numeric, as separating
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    data = load_tabular(path, label_column="outcome", sensitive_columns=("sex",), min_group_size=5,
                        positive_label="fraud")
    named = " | ".join(data.source.warnings)
    assert "'chargeback_filed' alone separates the label" in named and "'settled_amount'" in named
    assert "--drop 'chargeback_filed'" in named and all("ROC-AUC 1.000" in w for w in data.source.warnings)
    assert not any("'amount'" in w for w in data.source.warnings)  # an honest feature is not named
    kept = load_tabular(path, label_column="outcome", sensitive_columns=("sex",), min_group_size=5,
                        positive_label="fraud", drop_columns=("chargeback_filed", "settled_amount"))
    assert kept.source.warnings == () and "chargeback_filed" not in kept.feature_groups
    assert any("(--drop)" in note for note in kept.source.notes)
    with pytest.raises(InputError, match="--drop names column\\(s\\) 'refund'"):
        load_tabular(path, label_column="outcome", sensitive_columns=("sex",), drop_columns=("refund",))
    with pytest.raises(InputError, match="the sentiment domain does not read tables"):
        run_config(["sentiment", "--drop", "x"])
    config = run_config(["tabular", "--data", str(path), "--label", "outcome", "--sensitive", "sex",
                         "--positive-label", "fraud", "--drop", "settled_amount"])
    assert config.drop_columns == ("settled_amount",)


def test_band_names_in_scientific_notation_order_and_join_by_value():
    from pipeline.data.splitting import joined_band
    from pipeline.data.tabular_columns import band_order, group_column

    incomes = pd.Series(np.linspace(0.9e6, 3e6, 400) + 0.37)
    groups, _ = group_column(incomes, "income")
    order = band_order(incomes, "income", groups)
    assert order[0].startswith("[900000") and order[-1].endswith("3e+06]")  # lowest first, by value
    assert joined_band(order[0], order[1]) == "[900000, 1.95e+06]"
    assert joined_band("[1e-05, 2.5e-05]", "(2.5e-05, 5e-05]") == "[1e-05, 5e-05]"
    assert joined_band("18-25", "26-35") == "18-35" and joined_band("56-65", "66+") == "56+"


def test_options_that_need_ones_own_data_are_refused_with_all_and_role_columns_cannot_be_dropped(tmp_path, capsys):
    for option in (["--positive-label", "1"], ["--drop", "amount"]):
        assert main(["run", "all", *option, "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
        assert f"{option[0]} cannot be used with 'all'" in capsys.readouterr().err
    path = tmp_path / "table.csv"
    frame = _table(800)
    frame["customer"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match="--drop names the label column 'outcome'"):
        load_tabular(path, label_column="outcome", sensitive_columns=("sex",), drop_columns=("outcome",))
    with pytest.raises(InputError, match="cluster column 'customer' has no values"):
        load_tabular(path, label_column="outcome", sensitive_columns=("sex",), positive_label="fraud",
                     cluster_column="customer", min_group_size=5)
