"""The generic tabular loader and the fraud data generator (no TensorFlow here)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.fraud_generator import generate_transactions
from pipeline.data.tabular import (
    FORMAT,
    MISSING,
    OTHER,
    encode_tabular,
    fit_preprocessing,
    frame_fingerprint,
    load_tabular,
)
from pipeline.errors import InputError

REAL_FILE = (Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fraud"
             / "vehicle_insurance_claims.csv")


# --------------------------------------------------------------------------- fixtures


def small_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A tiny claims-like table: numeric, banded text, categorical, label, sex, age."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(3.0, 0.8, n), 2)
    channel = rng.choice(["online", "in-store", "atm"], size=n, p=[0.5, 0.4, 0.1])
    band = rng.choice(["16 to 17", "18 to 20", "21 to 25", "26 to 30", "more than 30"], size=n)
    sex = rng.choice(["Female", "Male"], size=n)
    age = rng.integers(18, 85, size=n)
    logit = -2.0 + 0.8 * (channel == "online") + 0.02 * (amount - 20) + 0.01 * (age - 40)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    label[:10] = 1  # both classes, whatever the seed
    return pd.DataFrame({"amount": amount, "channel": channel, "band": band, "Sex": sex, "Age": age,
                         "label": label})


def write_csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv", **kwargs) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return path


def load(path_or_frame, **kwargs):
    options = {"label_column": "label", "sensitive_columns": ("Sex",), "seed": 0, "min_group_size": 5}
    options.update(kwargs)
    return load_tabular(path_or_frame, **options)


def error_of(path_or_frame, **kwargs) -> str:
    with pytest.raises(InputError) as caught:
        load(path_or_frame, **kwargs)
    text = str(caught.value)
    assert "How to fix:" in text
    return text


# --------------------------------------------------------------------------- generator


def test_generator_is_seeded_and_shaped():
    first = generate_transactions()
    assert len(first) == 24000
    pd.testing.assert_frame_equal(first, generate_transactions())
    assert not first.equals(generate_transactions(seed=1))
    assert 0.01 <= first["is_fraud"].mean() <= 0.03
    assert set(first["is_fraud"].unique()) == {0, 1}
    assert set(first["sex"].unique()) == {"female", "male"}
    assert first["age"].dtype == np.int64 and first["age"].between(18, 90).all()
    for column in ("amount", "hour", "account_age_days", "txn_last_24h", "distance_from_home_km",
                   "merchant_risk_score", "merchant_category", "channel", "card_type", "country_match", "device"):
        assert column in first.columns
    assert set(first["channel"].unique()) == {"online", "in-store", "atm"}
    assert set(first["country_match"].unique()) == {"yes", "no"}
    missing = first.isna().mean()
    assert 0.02 < missing["distance_from_home_km"] < 0.2
    assert 0.01 < missing["merchant_risk_score"] < 0.05
    assert missing.drop(["distance_from_home_km", "merchant_risk_score"]).eq(0).all()
    assert len(generate_transactions(rows=500, seed=3)) == 500


def test_generator_has_true_group_differences():
    frame = generate_transactions()
    senior, prime = frame["age"] >= 66, frame["age"].between(36, 55)
    # base rates: older customers are targeted more; men a little more than women
    assert frame.loc[senior, "is_fraud"].mean() > 1.5 * frame.loc[prime, "is_fraud"].mean()
    by_sex = frame.groupby("sex")["is_fraud"].mean()
    assert by_sex["male"] > by_sex["female"]
    # feature distributions: channel by age, spending by sex and age
    online = frame["channel"] == "online"
    assert online[frame["age"] <= 25].mean() > 2 * online[senior].mean()
    amounts = frame.groupby("sex")["amount"].median()
    assert amounts["male"] > 1.05 * amounts["female"]
    assert frame.loc[prime, "amount"].median() > frame.loc[senior, "amount"].median()


def test_generated_label_is_learnable_but_noisy():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    data = load_tabular(generate_transactions(), label_column="is_fraud", sensitive_columns=("sex", "age"), seed=0)
    spec = data.preprocessing
    model = LogisticRegression(max_iter=2000).fit(encode_tabular(spec, data.train.raw), data.train.labels)
    scores = model.predict_proba(encode_tabular(spec, data.test.raw))[:, 1]
    pr_auc = average_precision_score(data.test.labels, scores)
    base_rate = data.test.labels.mean()
    assert 5 * base_rate < pr_auc < 0.9


# --------------------------------------------------------------------------- default data through the loader


def test_default_data_through_the_loader():
    frame = generate_transactions()
    data = load_tabular(frame, label_column="is_fraud", sensitive_columns=("sex", "age"), seed=0,
                        min_group_size=20, positive_class="fraud", source_name="generated data")
    sizes = [len(data.train), len(data.validation), len(data.test)]
    assert sum(sizes) == 24000
    assert abs(sizes[0] - 14400) <= 10 and abs(sizes[1] - 4800) <= 10 and abs(sizes[2] - 4800) <= 10
    overall = frame["is_fraud"].mean()
    for split in (data.train, data.validation, data.test):
        assert split.labels.dtype == np.int64
        assert isinstance(split.raw, pd.DataFrame) and isinstance(split.raw.index, pd.RangeIndex)
        assert isinstance(split.groups.index, pd.RangeIndex)
        assert list(split.groups.columns) == ["sex", "age"]
        assert all(isinstance(v, str) for v in split.groups["age"].head(50))
        assert len(split.raw) == len(split.labels) == len(split.groups)
        assert abs(split.labels.mean() - overall) < 0.002  # stratified
    assert set(data.test.groups["age"]) == {"18-25", "26-35", "36-45", "46-55", "56-65", "66+"}
    # the sensitive columns and the label are not features
    for column in ("sex", "age", "is_fraud"):
        assert column not in data.train.raw.columns
    assert not any(name.startswith(("sex", "age=")) or name == "age" for name in data.feature_names)
    assert any("not as model features" in note for note in data.source.notes)
    # feature groups partition the encoded inputs
    indices = sorted(i for idx in data.feature_groups.values() for i in idx)
    assert indices == list(range(len(data.feature_names)))
    assert list(data.feature_groups) == list(data.train.raw.columns)
    assert "channel=online" in data.feature_names and "channel=(other)" in data.feature_names
    assert "distance_from_home_km (missing)" in data.feature_names
    assert data.source.kind == "generated" and data.source.path is None
    assert data.source.fingerprint == frame_fingerprint(frame)
    assert data.source.rows == 24000
    assert data.positive_class == "fraud" and data.label_name == "is_fraud"
    assert data.sensitive_columns == ("sex", "age")
    assert 0.01 < data.class_balance["train_positive_rate"] < 0.03


def test_preprocessing_is_json_able_and_reproducible():
    data = load_tabular(generate_transactions(rows=3000), label_column="is_fraud", sensitive_columns=("sex",),
                        seed=1)
    spec = data.preprocessing
    assert spec["format"] == FORMAT and spec["input_dtype"] == "float32"
    assert spec["feature_names"] == list(data.feature_names) and spec["n_features"] == len(data.feature_names)
    assert "how_to_use" in spec and "float32" in spec["how_to_use"]
    round_tripped = json.loads(json.dumps(spec))
    a = encode_tabular(spec, data.test.raw)
    b = encode_tabular(round_tripped, data.test.raw)
    assert a.dtype == np.float32 and a.shape == (len(data.test), len(data.feature_names))
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()
    # every one-hot column has exactly one active slot per row
    for column in spec["columns"]:
        if column["kind"] == "categorical":
            np.testing.assert_array_equal(a[:, column["indices"]].sum(axis=1), 1.0)
    # statistics come from the train split only
    amount = next(c for c in spec["columns"] if c["name"] == "amount")
    assert amount["median"] == pytest.approx(data.train.raw["amount"].median())
    assert amount["mean"] == pytest.approx(data.train.raw["amount"].mean())
    assert amount["median"] != pytest.approx(data.test.raw["amount"].median())
    train_encoded = encode_tabular(spec, data.train.raw)
    assert abs(train_encoded[:, data.feature_groups["amount"][0]].mean()) < 1e-5


def test_fit_and_encode_unseen_categories_missing_values_and_raw_rows():
    train = pd.DataFrame({
        "x": [1.0, 2.0, np.nan, 4.0, 5.0, 5.0, 5.0, 5.0],
        "c": ["a", "b", "a", None, "a", "b", "a", "a"],
        "k": [7.0] * 8,
    })
    spec = fit_preprocessing(train, {"x": "numeric", "c": "categorical", "k": "numeric"})
    assert spec["feature_names"] == ["x", "x (missing)", "c=(missing)", "c=a", "c=b", f"c={OTHER}", "k"]
    x = spec["columns"][0]
    assert x["median"] == 5.0 and x["missing_indicator"] is True
    assert spec["columns"][2]["std"] == 1.0  # constant column: std 0 -> 1
    rows = [
        {"x": "3", "c": "b", "k": 7},          # numbers as text
        {"x": None, "c": "zzz", "k": 7},        # missing number, unseen category
        {"x": float("inf"), "c": " a ", "k": 9},  # not finite -> missing; spaces stripped
    ]
    encoded = encode_tabular(spec, rows)
    mean, std = x["mean"], x["std"]
    np.testing.assert_allclose(encoded[0, :2], [(3 - mean) / std, 0.0], rtol=1e-6)
    np.testing.assert_allclose(encoded[1, :2], [(5 - mean) / std, 1.0], rtol=1e-6)
    assert encoded[1, 5] == 1.0 and encoded[1, 2:5].sum() == 0.0   # (other)
    assert encoded[2, 3] == 1.0 and encoded[2, 1] == 1.0
    assert encoded[2, 6] == 2.0
    single = encode_tabular(spec, {"x": 1, "c": None, "k": 7})
    assert single.shape == (1, 7) and single[0, 2] == 1.0           # (missing) category
    with pytest.raises(InputError, match=r"lack column\(s\) 'c'(.|\n)*How to fix"):
        encode_tabular(spec, [{"x": 1, "k": 7}])
    with pytest.raises(InputError, match="format"):
        encode_tabular({"format": "something else"}, rows)


# --------------------------------------------------------------------------- reading files


def test_file_source_fingerprint_split_and_notes(tmp_path):
    path = write_csv(tmp_path, small_frame())
    data = load(path, sensitive_columns=("Sex", "Age"))
    assert data.source.kind == "file" and data.source.path == str(path)
    assert data.source.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data.source.rows == 600
    assert len(data.train) == 360 and len(data.validation) == 120 and len(data.test) == 120
    assert data.positive_class == "label = 1"
    kinds = {c["name"]: c["kind"] for c in data.preprocessing["columns"]}
    assert kinds == {"amount": "numeric", "channel": "categorical", "band": "categorical"}
    assert "band=26 to 30" in data.feature_names
    assert set(data.test.groups["Age"]) <= {"18-25", "26-35", "36-45", "46-55", "56-65", "66+"}
    assert any("banded" in note and "'Age'" in note for note in data.source.notes)
    assert any("stratified on label x 'Sex'" in note for note in data.source.notes)
    # seeded: same seed, same split; another seed, another split
    again = load(path, sensitive_columns=("Sex", "Age"))
    pd.testing.assert_frame_equal(data.test.raw, again.test.raw)
    other = load(path, sensitive_columns=("Sex", "Age"), seed=1)
    assert not data.test.raw.equals(other.test.raw)


def test_bom_and_spaces_are_handled(tmp_path):
    frame = small_frame(200)
    path = tmp_path / "bom.csv"
    text = frame.to_csv(index=False).replace(",", ", ")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    data = load(path)
    assert "amount" in data.train.raw.columns          # not '\ufeffamount'
    assert data.train.raw["amount"].dtype.kind == "f"  # " 12.5" parsed as a number
    assert any("byte-order mark" in note for note in data.source.notes)


def test_semicolon_file_is_detected_with_decimal_commas(tmp_path):
    frame = small_frame(300)
    path = tmp_path / "semi.csv"
    frame.to_csv(path, index=False, sep=";", decimal=",")
    data = load(path)
    assert any("semicolon-separated" in note for note in data.source.notes)
    assert any("decimal comma" in note for note in data.source.notes)
    amount = next(c for c in data.preprocessing["columns"] if c["name"] == "amount")
    assert amount["kind"] == "numeric" and amount["decimal"] == ","
    assert encode_tabular(data.preprocessing, {"amount": "12,5", "channel": "atm", "band": "x", "Age": 30}).shape[0] == 1


def test_wrong_delimiter_is_an_error(tmp_path):
    path = write_csv(tmp_path, small_frame(50), sep=" ")
    text = error_of(path)
    assert str(path) in text
    assert "could not find the column separator" in text
    assert "separated by space" in text
    assert "comma-separated" in text


def test_single_column_file_is_an_error(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("label\n0\n1\n0\n")
    text = error_of(path)
    assert str(path) in text and "found only one column ('label')" in text


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    text = error_of(empty)
    assert str(empty) in text and "the file is empty" in text
    header = tmp_path / "header.csv"
    header.write_text("amount,channel,Sex,label\n")
    text = error_of(header)
    assert str(header) in text and "has a header" in text and "but no rows" in text


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    text = error_of(missing)
    assert str(missing) in text and "file not found" in text and "--data" in text


def test_ragged_rows_are_an_error(tmp_path):
    path = tmp_path / "ragged.csv"
    lines = ["a,b,label,Sex"] + ["1,2,0,F"] * 30 + ["1,2,0,F,extra,extra"] + ["1,2,1,M"] * 30
    path.write_text("\n".join(lines) + "\n")
    text = error_of(path)
    assert str(path) in text and "could not read the file as comma-separated values" in text
    assert "line 32" in text


# --------------------------------------------------------------------------- label


def test_missing_label_column(tmp_path):
    path = write_csv(tmp_path, small_frame(100))
    text = error_of(path, label_column="is_fraud")
    assert str(path) in text
    assert "label column 'is_fraud' not found" in text
    assert "'amount', 'channel', 'band', 'Sex', 'Age', 'label'" in text
    text = error_of(path, label_column="LABEL")
    assert "did you mean --label 'label'?" in text


def test_no_label_given_asks_for_label(tmp_path):
    path = write_csv(tmp_path, small_frame(100))
    text = error_of(path, label_column=None)
    assert "no label column given" in text and "--label" in text and str(path) in text


def test_non_binary_label(tmp_path):
    frame = small_frame(100)
    frame["label"] = np.arange(100) % 3
    path = write_csv(tmp_path, frame)
    text = error_of(path)
    assert str(path) in text
    assert "label column 'label' has 3 distinct values" in text
    assert "'0' (34 rows)" in text and "'2' (33 rows)" in text
    assert "map the values of 'label' to 0 and 1" in text


def test_single_valued_label(tmp_path):
    frame = small_frame(100)
    frame["label"] = 0
    text = error_of(write_csv(tmp_path, frame))
    assert "holds only one value ('0')" in text


def test_label_words_and_missing_labels(tmp_path):
    frame = small_frame(300)
    frame["label"] = np.where(frame["label"] == 1, "Yes", "No").astype(object)
    frame.loc[[5, 6, 7], "label"] = None
    data = load(write_csv(tmp_path, frame))
    kept = frame["label"].notna()
    assert data.source.rows == 297
    assert sum(len(s) for s in (data.train, data.validation, data.test)) == 297
    total_positive = sum(int(s.labels.sum()) for s in (data.train, data.validation, data.test))
    assert total_positive == int((frame.loc[kept, "label"] == "Yes").sum())
    assert data.positive_class == "label = Yes"
    assert any("dropped 3 rows whose label 'label' is missing" in note for note in data.source.notes)


def test_two_arbitrary_label_values_map_the_rarer_to_one(tmp_path):
    frame = small_frame(300)
    frame["label"] = np.where(frame["label"] == 1, "claim", "ok")
    data = load(write_csv(tmp_path, frame))
    assert data.positive_class == "label = claim"
    assert any("'claim' (the rarer value) -> 1" in note for note in data.source.notes)


# --------------------------------------------------------------------------- sensitive columns and groups


def test_unknown_sensitive_column(tmp_path):
    path = write_csv(tmp_path, small_frame(100))
    text = error_of(path, sensitive_columns=("gender",))
    assert str(path) in text and "sensitive column 'gender' not found" in text
    assert "'Sex'" in text and "--sensitive" in text
    assert "did you mean --sensitive 'Sex'?" in error_of(path, sensitive_columns=("sex",))


def test_no_sensitive_column_given(tmp_path):
    text = error_of(write_csv(tmp_path, small_frame(100)), sensitive_columns=())
    assert "no sensitive column given" in text and "--sensitive" in text


def test_group_too_small(tmp_path):
    frame = small_frame(400)
    frame.loc[:14, "Sex"] = "Other"   # 15 rows -> a handful in the test split
    path = write_csv(tmp_path, frame)
    text = error_of(path, min_group_size=20)
    assert str(path) in text
    found = re.search(r"sensitive column 'Sex': group 'Other' has (\d+) rows in the test split", text)
    assert found and int(found.group(1)) < 20
    assert "fewer than the 20 needed" in text
    assert "merge group 'Other'" in text and "lower --min-group-size (now 20)" in text
    # the count is the test split's: the same file passes with a minimum at that count
    data = load(path, min_group_size=1)
    in_test = int((data.test.groups["Sex"] == "Other").sum())
    in_train = int((data.train.groups["Sex"] == "Other").sum())
    assert in_test == int(found.group(1)) and in_train > in_test
    assert "Other" in set(load(path, min_group_size=in_test).test.groups["Sex"])
    assert f"group 'Other' has {in_test} rows in the test split" in error_of(path, min_group_size=in_test + 1)


def test_all_missing_column(tmp_path):
    frame = small_frame(100)
    frame["notes"] = np.nan
    path = write_csv(tmp_path, frame)
    data = load(path)  # a column with no values is dropped and noted, not a stop (issue 19)
    assert "notes" not in data.feature_groups
    assert "dropped column 'notes': it has no values (all 100 rows are missing)" in data.source.notes
    frame = small_frame(100)
    frame["Sex"] = None
    text = error_of(write_csv(tmp_path, frame, name="nosex.csv"))
    assert "sensitive column 'Sex' has no values" in text and "--sensitive" in text


def test_age_bands_unknown_and_missing_groups(tmp_path):
    frame = small_frame(800)
    frame.loc[:59, "Age"] = 0          # unknown
    frame.loc[60:79, "Age"] = 16       # under 18
    frame.loc[80:139, "Sex"] = None    # missing group
    data = load(write_csv(tmp_path, frame), sensitive_columns=("Sex", "Age"), min_group_size=1)
    ages = pd.concat([s.groups["Age"] for s in (data.train, data.validation, data.test)])
    assert (ages == "unknown").sum() == 60
    assert set(ages) == {"unknown", "16-25", "26-35", "36-45", "46-55", "56-65", "66+"}
    sexes = pd.concat([s.groups["Sex"] for s in (data.train, data.validation, data.test)])
    assert (sexes == MISSING).sum() == 60
    notes = " | ".join(data.source.notes)
    assert "60 rows with value 0" in notes and "20 rows aged under 18" in notes


def test_sensitive_columns_as_features_option(tmp_path):
    path = write_csv(tmp_path, small_frame(300))
    data = load(path, sensitive_columns=("Sex", "Age"), use_sensitive_as_features=True)
    assert "Age" in data.feature_names and "Sex=Male" in data.feature_names
    assert data.preprocessing["sensitive_used_as_features"] is True
    assert any("also model features" in note for note in data.source.notes)


# --------------------------------------------------------------------------- column decisions


def test_column_type_detection_and_dropped_columns(tmp_path):
    frame = small_frame(400)
    frame["score"] = frame["amount"].astype(str)
    frame.loc[:7, "score"] = "unknown"             # 2 % not numbers -> still numeric
    frame["mostly_text"] = frame["amount"].astype(str)
    frame.loc[:99, "mostly_text"] = "high"          # 25 % text -> categorical
    frame["PolicyNumber"] = np.arange(1, 401)       # identifier
    frame["claim_ref"] = [f"C{i:05d}" for i in range(400)]  # all-distinct text
    frame["constant"] = "same"
    frame["rating"] = np.tile([1, 2, 3, 4], 100)    # small whole numbers stay numeric
    data = load(write_csv(tmp_path, frame))
    kinds = {c["name"]: c["kind"] for c in data.preprocessing["columns"]}
    assert kinds["score"] == "numeric" and kinds["rating"] == "numeric"
    assert kinds["mostly_text"] == "categorical" and kinds["band"] == "categorical"
    for dropped in ("PolicyNumber", "claim_ref", "constant"):
        assert dropped not in kinds
    notes = " | ".join(data.source.notes)
    assert "dropped identifier-like column 'PolicyNumber'" in notes
    assert "dropped identifier-like column 'claim_ref'" in notes
    assert "dropped constant column 'constant'" in notes
    assert "column 'score' is numeric; 8 values that are not numbers ('unknown')" in notes
    # categorical vocabulary is capped
    capped = load(write_csv(tmp_path, frame, name="capped.csv"), max_categories=20)
    text_col = next(c for c in capped.preprocessing["columns"] if c["name"] == "mostly_text")
    assert len(text_col["categories"]) == 20


def test_max_rows_keeps_a_stratified_subsample(tmp_path):
    frame = small_frame(2000)
    data = load(write_csv(tmp_path, frame), max_rows=500)
    assert data.source.rows == 500
    assert sum(len(s) for s in (data.train, data.validation, data.test)) == 500
    rate = np.concatenate([s.labels for s in (data.train, data.validation, data.test)]).mean()
    assert abs(rate - frame["label"].mean()) < 0.01
    assert any("kept a stratified subsample of 500 of 2000 rows" in note for note in data.source.notes)


def test_frame_input_errors_name_the_source():
    frame = small_frame(100)
    with pytest.raises(InputError) as caught:
        load_tabular(frame, label_column="nope", sensitive_columns=("Sex",), source_name="the default data")
    assert str(caught.value).startswith("the default data: label column 'nope' not found")


# --------------------------------------------------------------------------- the real file


def test_real_vehicle_claims_file():
    if not REAL_FILE.exists():
        pytest.skip(f"{REAL_FILE} is not here")
    data = load_tabular(REAL_FILE, label_column="FraudFound_P", sensitive_columns=("Sex", "Age"), seed=0,
                        min_group_size=20)
    assert data.source.rows == 15420
    assert data.positive_class == "FraudFound_P = 1"
    assert "PolicyNumber" not in data.feature_groups
    kinds = {c["name"]: c["kind"] for c in data.preprocessing["columns"]}
    assert kinds["VehiclePrice"] == "categorical" and kinds["AgeOfPolicyHolder"] == "categorical"
    assert kinds["Deductible"] == "numeric"
    groups = data.test.groups
    assert set(groups["Sex"]) == {"Female", "Male"}
    assert "unknown" in set(groups["Age"])
    notes = " | ".join(data.source.notes)
    assert "320 rows with value 0" in notes and "dropped identifier-like column 'PolicyNumber'" in notes
    encoded = encode_tabular(data.preprocessing, data.test.raw)
    assert encoded.shape == (len(data.test), len(data.feature_names)) and np.isfinite(encoded).all()


def test_labels_written_as_floats_and_duplicate_names(tmp_path):
    frame = small_frame(300)
    frame["label"] = frame["label"].astype(float)     # "0.0" / "1.0" in the file
    frame["dup"] = 1.5
    path = write_csv(tmp_path, frame)
    path.write_text(path.read_text().replace("dup", "amount", 1))
    data = load(path)
    assert data.positive_class == "label = 1"
    assert any("0/1, 1 = positive" in note for note in data.source.notes)
    assert any("column name 'amount' appears 2 times" in note for note in data.source.notes)


def test_an_identifier_column_is_dropped_also_when_subsampling(tmp_path):
    """A row number is consecutive in the file but not in a subsample: judge it on every row."""
    from pipeline.data.fraud_generator import generate_transactions
    from pipeline.data.tabular import load_tabular

    frame = generate_transactions(rows=3000, seed=3)
    frame.insert(0, "row_number", range(1, len(frame) + 1))
    path = tmp_path / "with_ids.csv"
    frame.to_csv(path, index=False)
    data = load_tabular(str(path), label_column="is_fraud", sensitive_columns=("sex",), seed=0, min_group_size=5,
                        max_rows=1000)
    assert not any(name.startswith("row_number") for name in data.feature_names)
    assert any("dropped identifier-like column 'row_number'" in note for note in data.source.notes)


@pytest.mark.parametrize("content, expected", [
    (bytes(np.random.default_rng(0).integers(0, 256, 2_000_000, dtype=np.uint8)), "binary data, not text"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"xl/workbook.xml" * 100, "a ZIP archive (an Excel .xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "an old Microsoft Office file (Excel .xls)"),
    (b"PAR1" + b"\x15\x04" * 300, "a Parquet file"),
    (b"\x1f\x8b\x08\x00" + b"\x01" * 300, "a gzip-compressed file"),
    (b"amount,label\n" + b"1\x00\x00\x00,0\n" * 50, "binary data, not text (it holds NUL bytes)"),
])
def test_a_binary_file_is_not_text_whatever_separator_it_seems_to_have(tmp_path, content, expected):
    path = tmp_path / "transactions.csv"
    path.write_bytes(content)
    text = error_of(path)
    assert str(path) in text and "is not a text file" in text and expected in text, text
    assert "separated" not in text and "Save as / Export" in text


def test_utf16_with_its_byte_order_mark_is_still_text(tmp_path):
    path = tmp_path / "utf16.csv"
    rows = "".join(f"{i},{'card' if i % 2 else 'web'},{'F' if i % 3 else 'M'},{int(i % 7 == 0)}\n" for i in range(400))
    path.write_bytes(("amount,channel,Sex,label\n" + rows).encode("utf-16"))
    data = load_tabular(path, label_column="label", sensitive_columns=["Sex"], seed=0, min_group_size=5)
    assert data.source.rows == 400


def _customers(units: int = 400, seed: int = 0) -> pd.DataFrame:
    """Card holders with 1 to 11 transactions each, sharing a risk that moves their fraud rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(units):
        sex, risk = rng.choice(["female", "male"]), rng.normal()
        for _ in range(int(rng.integers(1, 12))):
            rows.append({"customer": f"C{unit:04d}", "sex": sex, "amount": rng.normal() + risk,
                         "fraud": int(rng.random() < 0.1 + 0.15 * (risk > 1))})
    return pd.DataFrame(rows)


def test_a_cluster_column_keeps_each_unit_in_one_split_and_out_of_the_features():
    frame = _customers()
    data = load_tabular(frame, label_column="fraud", sensitive_columns=["sex"], cluster_column="customer")
    units = [set(split.clusters) for split in (data.train, data.validation, data.test)]
    assert not (units[0] & units[1]) and not (units[0] & units[2]) and not (units[1] & units[2])
    assert set().union(*units) == set(frame["customer"])
    assert sum(len(split.labels) for split in (data.train, data.validation, data.test)) == len(frame)
    assert data.feature_names == ("amount",)  # the id is neither a feature nor silently dropped as one
    assert any("rows grouped into 400 units by 'customer'" in note for note in data.source.notes)
    # Without it, every row is its own unit and a customer's rows land in every split.
    plain = load_tabular(frame.drop(columns="customer"), label_column="fraud", sensitive_columns=["sex"])
    assert plain.test.clusters is None


@pytest.mark.parametrize("change, expected", [
    (lambda f: f.assign(customer=f["customer"].mask(f.index % 50 == 3)), "cluster column 'customer' is empty in"),
    (lambda f: f.rename(columns={"customer": "client"}), "cluster column 'customer' not found"),
])
def test_a_bad_cluster_column_is_refused_naming_it(change, expected):
    with pytest.raises(InputError, match=expected):
        load_tabular(change(_customers(60)), label_column="fraud", sensitive_columns=["sex"],
                     cluster_column="customer", min_group_size=5)



def test_a_band_the_tool_made_that_is_too_small_merges_with_its_neighbour(tmp_path):
    frame = small_frame(600)
    frame.loc[frame["Age"] >= 66, "Age"] = 60  # few people over 65 ...
    frame.loc[frame.index[:12], "Age"] = 70    # ... 12 of them: under 5 per test split
    data = load(frame, sensitive_columns=("Age",), min_group_size=8)  # 66+ holds 5 test rows
    bands = set(data.test.groups["Age"])
    assert "66+" not in bands and "56+" in bands  # merged with 56-65 into one band, named for both
    assert any("band '66+' had" in note and "merged with its neighbour '56-65' into '56+'" in note
               for note in data.source.notes)


def test_the_users_own_small_groups_stop_unless_merge_small_groups(tmp_path):
    frame = small_frame(600)
    index = np.arange(600)
    small = np.select([index < 12, index < 24, index < 36], ["islands", "coast", "hills"], default="")
    frame["region"] = np.where(small != "", small, np.where(index % 2, "north", "south"))
    assert "has 2 rows in the test split" in error_of(frame, sensitive_columns=("region",))
    data = load(frame, sensitive_columns=("region",), merge_small_groups=True)
    assert {"north", "south", "other"} <= set(data.test.groups["region"])
    merged = [note for note in data.source.notes if "merged into 'other' (--merge-small-groups)" in note]
    assert len(merged) == 1 and "'coast'" in merged[0] and "'hills'" in merged[0]
    assert (data.test.groups["region"].value_counts() >= 5).all()  # every group now measurable


def test_a_small_unknown_age_group_is_reported_not_measured_and_does_not_stop_the_run():
    frame = small_frame(600)
    frame.loc[frame.index[:15], "Age"] = 0  # "unknown" ages: the tool's group, too small to measure
    data = load(frame, sensitive_columns=("Age",), min_group_size=8)
    assert 0 < (data.test.groups["Age"] == "unknown").sum() < 8
    assert any("'unknown' has" in note and "reported but not measured" in note for note in data.source.notes)
