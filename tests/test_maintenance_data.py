"""Maintenance data: the AI4I-rule generator, run-to-failure histories, and the C-MAPSS-layout loader.

Everything runs on tiny generated histories (a few dozen units with short lives).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.data import sensor_histories as sh
from pipeline.data.maintenance_generator import (
    AI4I_COLUMNS,
    AI4I_FAILURE_MODES,
    CMAPSS_COLUMNS,
    OVERSTRAIN_LIMIT,
    generate_ai4i_readings,
    generate_cmapss_split,
    generate_histories,
    to_cmapss_text,
)
from pipeline.errors import InputError

WINDOW, HORIZON = 10, 8


@pytest.fixture(scope="module")
def tiny_histories() -> pd.DataFrame:
    return generate_histories(24, seed=2, life_scale=0.25)


def _load(frame: pd.DataFrame, **options) -> object:
    table = sh.histories_from_frame(frame, source="tiny histories")
    settings = {"window": WINDOW, "horizon": HORIZON, "seed": 0, "min_group_size": 1, **options}
    return sh.load_histories(table, **settings)


def _history(units: int = 6, cycles: int = 20, seed: int = 0) -> pd.DataFrame:
    """A hand-made history: one setting, three sensors (one drifting), 0-based noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(1, units + 1):
        for cycle in range(1, cycles + 1):
            rows.append({"unit": unit, "cycle": cycle, "setting_1": 0.0, "sensor_a": cycle + rng.normal(0, 0.1),
                         "sensor_b": rng.normal(5, 1), "sensor_c": 7.0, "make": "A" if unit % 2 else "B"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- generators


def test_ai4i_readings_follow_the_published_rules():
    frame = generate_ai4i_readings(3000, seed=1)
    assert tuple(frame.columns) == AI4I_COLUMNS
    air, process = frame["Air temperature [K]"], frame["Process temperature [K]"]
    speed, torque, wear = frame["Rotational speed [rpm]"], frame["Torque [Nm]"], frame["Tool wear [min]"]
    power = torque * speed * 2 * math.pi / 60
    np.testing.assert_array_equal(frame["HDF"], ((process - air < 8.6) & (speed < 1380)).astype(int))
    np.testing.assert_array_equal(frame["PWF"], ((power < 3500) | (power > 9000)).astype(int))
    np.testing.assert_array_equal(frame["OSF"], (wear * torque > frame["Type"].map(OVERSTRAIN_LIMIT)).astype(int))
    np.testing.assert_array_equal(frame["Machine failure"], frame[list(AI4I_FAILURE_MODES)].max(axis=1))
    assert (frame.loc[frame["TWF"] == 1, "Tool wear [min]"] >= 200).all() and wear.max() <= 245
    assert (torque > 0).all() and np.corrcoef(torque, speed)[0, 1] < -0.8
    assert abs(air.std() - 2) < 0.1 and abs((process - air).mean() - 10) < 0.2
    shares = frame["Type"].value_counts(normalize=True)
    assert abs(shares["L"] - 0.5) < 0.04 and abs(shares["H"] - 0.2) < 0.04
    assert 0.01 < frame["Machine failure"].mean() < 0.08
    assert frame.equals(generate_ai4i_readings(3000, seed=1))
    assert not frame.equals(generate_ai4i_readings(3000, seed=2))


def test_histories_run_to_failure_with_makes_and_regimes(tiny_histories):
    frame = tiny_histories
    assert tuple(frame.columns) == (*CMAPSS_COLUMNS, "make", "regime")
    for _, unit in frame.groupby("unit"):
        assert (unit["cycle"].to_numpy() == np.arange(1, len(unit) + 1)).all()
        assert unit["make"].nunique() == 1 and unit["regime"].nunique() == 1
    for sensor in ("sensor_16", "sensor_18", "sensor_19"):
        assert frame[sensor].nunique() == 1
    # sensor_4 (a temperature) rises towards the failure in most units
    rises = frame.groupby("unit")["sensor_4"].agg(lambda s: s.iloc[-5:].mean() > s.iloc[:5].mean())
    assert rises.mean() > 0.8
    assert frame.equals(generate_histories(24, seed=2, life_scale=0.25))


# --------------------------------------------------------------------------- windows, labels, splits


def test_windows_labels_and_unit_wise_split(tiny_histories):
    data = _load(tiny_histories)
    lives = tiny_histories.groupby("unit").size()
    assert data.source.rows == int((lives - WINDOW + 1).clip(lower=0).sum())
    units = [set(s.raw.units) for s in (data.train, data.validation, data.test)]
    assert not (units[0] & units[1] or units[0] & units[2] or units[1] & units[2])
    for split in (data.train, data.validation, data.test):
        np.testing.assert_array_equal(split.labels, (split.raw.remaining_life <= HORIZON).astype(int))
        assert split.raw.values.shape[1:] == (WINDOW, 24)
        assert list(split.groups.columns) == ["make", "regime"]
        # the audit resamples whole units: each window carries its unit
        np.testing.assert_array_equal(split.clusters, np.asarray(split.raw.units).astype(str))
    # a window's last row is its end cycle; remaining life counts to the unit's last cycle
    raw = data.test.raw
    i = int(np.argmax(raw.remaining_life))
    unit = tiny_histories[tiny_histories["unit"] == int(raw.units[i])]
    assert raw.remaining_life[i] == unit["cycle"].max() - raw.end_cycles[i]
    row = unit[unit["cycle"] == raw.end_cycles[i]]
    assert raw.values[i, -1, raw.channels.index("sensor_4")] == pytest.approx(float(row["sensor_4"].iloc[0]))
    assert data.sensitive_columns == ("make", "regime") and data.label_name == f"fails_within_{HORIZON}_cycles"
    assert any("no unit is in two splits" in n for n in data.source.notes)


def test_preprocessing_drops_uninformative_sensors_and_standardises_per_regime(tiny_histories):
    data = _load(tiny_histories)
    spec = json.loads(json.dumps(data.preprocessing))
    assert spec["format"] == sh.FORMAT and spec["window"] == WINDOW and spec["horizon"] == HORIZON
    assert {"sensor_16", "sensor_18", "sensor_19"} <= set(spec["dropped_sensors"])
    assert "only tells the regimes apart" in spec["dropped_sensors"]["sensor_1"]
    assert len(spec["regimes"]) == tiny_histories["regime"].nunique()
    assert spec["input_shape"] == [WINDOW, len(spec["sensors"])] and "how_to_use" in spec
    encoded = sh.encode_windows(spec, data.train.raw)
    assert encoded.dtype == np.float32 and encoded.shape == (len(data.train), WINDOW, len(spec["sensors"]))
    # train rows of every regime are standardised (mean ~0, SD ~1 over the last cycles of the windows)
    regime = data.train.groups["regime"].to_numpy()
    for name in set(regime):
        last = encoded[regime == name, -1, :]
        assert np.abs(last.mean(axis=0)).max() < 0.6 and 0.5 < last.std(axis=0).mean() < 1.5
    # an array with the spec's channels (settings, then sensors) encodes the same
    position = [data.train.raw.channels.index(c) for c in spec["settings"] + spec["sensors"]]
    np.testing.assert_allclose(sh.encode_windows(spec, data.train.raw.values[..., position]), encoded, atol=1e-6)
    assert len(data.feature_names) == WINDOW * len(spec["sensors"])
    assert data.feature_names[-1] == f"{spec['sensors'][-1]} @ t-0"


def test_max_rows_keeps_every_unit(tiny_histories):
    full, small = _load(tiny_histories), _load(tiny_histories, max_rows=300)
    assert sum(map(len, (small.train, small.validation, small.test))) <= 310
    for a, b in zip((full.train, full.validation, full.test), (small.train, small.validation, small.test)):
        assert set(a.raw.units) == set(b.raw.units)
    assert any("subsample" in n for n in small.source.notes)


def test_regimes_from_settings():
    rng = np.random.default_rng(0)
    noise_only = np.c_[rng.normal(0, 0.002, 5000).round(4), rng.normal(0, 0.0003, 5000).round(4), np.full(5000, 100.0)]
    centres, _, _ = sh.fit_regimes(noise_only)
    assert len(centres) == 1
    conditions = np.array([[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100],
                           [42, 0.84, 100]])
    picks = rng.integers(0, 6, 6000)
    six = conditions[picks] + np.c_[rng.normal(0, 0.003, 6000), rng.normal(0, 0.0003, 6000), np.zeros(6000)]
    centres, scale, notes = sh.fit_regimes(six)
    assert len(centres) == 6
    spec = {"regimes": [{"center": c.tolist()} for c in centres], "settings_scale": scale.tolist()}
    found = sh.assign_regimes(spec, six)
    assert pd.crosstab(found, picks).gt(0).sum(axis=1).eq(1).all()   # one condition per regime


# --------------------------------------------------------------------------- C-MAPSS files


def test_cmapss_text_file_is_detected_and_windowed(tmp_path, tiny_histories):
    path = tmp_path / "train_FD900.txt"
    path.write_text(to_cmapss_text(tiny_histories))
    assert sh.detect_layout(path) == "cmapss"
    train, test, remaining = sh.read_history_path(path)
    assert test is None and remaining is None
    assert train.settings == sh.CMAPSS_SETTINGS and train.sensors == sh.CMAPSS_SENSORS and train.groups == ()
    data = sh.load_histories(train, window=WINDOW, horizon=HORIZON, min_group_size=1, path=str(path))
    assert data.sensitive_columns == ("regime",)
    # the regimes derived from the settings are the generator's regimes, one to one
    frame = tiny_histories.set_index(["unit", "cycle"])
    true = frame.loc[list(zip(data.train.raw.units.astype(int), data.train.raw.end_cycles)), "regime"].to_numpy()
    assert pd.crosstab(data.train.groups["regime"].to_numpy(), true).gt(0).sum(axis=1).eq(1).all()
    assert data.source.fingerprint and data.source.path == str(path)


def test_cmapss_folder_with_test_units_and_remaining_life(tmp_path):
    train, test, remaining = generate_cmapss_split(16, test_units=8, seed=4, life_scale=0.25, min_test_cycles=WINDOW)
    (tmp_path / "train_X.txt").write_text(to_cmapss_text(train))
    (tmp_path / "test_X.txt").write_text(to_cmapss_text(test))
    (tmp_path / "RUL_X.txt").write_text("".join(f"{r}\n" for r in remaining))
    assert sh.detect_layout(tmp_path) == "cmapss_folder"
    train_table, test_table, rul = sh.read_history_path(tmp_path)
    np.testing.assert_array_equal(rul, remaining)
    data = sh.load_histories(train_table, test=test_table, test_remaining_life=rul, window=WINDOW,
                             horizon=HORIZON + 20, min_group_size=1)
    raw = data.test.raw
    for unit, cut in test.groupby("unit")["cycle"].max().items():
        last = (raw.units == str(unit)) & (raw.end_cycles == cut)
        if last.any():   # units shorter than the window are skipped
            assert raw.remaining_life[last][0] == remaining[unit - 1]
    assert set(raw.units) <= set(test["unit"].astype(str))
    assert any("RUL_X.txt" in n for n in data.source.notes)
    (tmp_path / "RUL_X.txt").unlink()
    assert sh.read_history_path(tmp_path)[1] is None   # without RUL: the train file alone


# --------------------------------------------------------------------------- bad input


def test_unsorted_cycles_are_sorted_with_a_note():
    frame = _history()
    shuffled = frame.sample(frac=1.0, random_state=0)
    sorted_data, shuffled_data = _load(frame, sensitive_columns=("make",)), _load(shuffled, sensitive_columns=("make",))
    np.testing.assert_array_equal(sorted_data.test.raw.values, shuffled_data.test.raw.values)
    assert any("not in cycle order" in n and "sorted" in n for n in shuffled_data.source.notes)


def test_duplicate_unit_cycle_rows_keep_the_first():
    frame = _history()
    repeat = frame.iloc[[3, 4]].copy()
    repeat.loc[:, "sensor_b"] = 99.0
    table = sh.histories_from_frame(pd.concat([frame, repeat, frame.iloc[[5]]]), source="dup")
    assert len(table.frame) == len(frame) and (table.frame["sensor_b"] != 99.0).all()
    note = next(n for n in table.notes if "repeat a (unit, cycle) pair" in n)
    assert "3 rows" in note and "2 of the repeats had different readings" in note


def test_short_units_are_skipped_and_too_short_everywhere_is_an_error():
    frame = _history(units=8)
    frame = frame[~((frame["unit"] == 2) & (frame["cycle"] > 5))]
    data = _load(frame, sensitive_columns=("make",))
    assert any("skipped 1 unit(s) with fewer than 10 cycles" in n and "unit 2 (5 cycles)" in n
               for n in data.source.notes)
    with pytest.raises(InputError, match=r"no unit has at least 30 cycles(.|\n)*--window 20 or less"):
        _load(_history(), window=30)


def test_constant_sensor_is_dropped_and_missing_sensors_are_errors(tmp_path, tiny_histories):
    data = _load(_history(), sensitive_columns=("make",))
    assert "sensor_c" in data.preprocessing["dropped_sensors"] and "sensor_c" not in data.preprocessing["sensors"]
    # a C-MAPSS line without all 26 columns
    lines = to_cmapss_text(tiny_histories.head(40)).splitlines()
    lines[7] = " ".join(lines[7].split()[:-1])
    path = tmp_path / "train_short.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 8 holds 25 values, expected 26(.|\n)*How to fix"):
        sh.read_history_path(path)
    # rows to encode without a sensor of the model
    raw = data.test.raw
    keep = [i for i, c in enumerate(raw.channels) if c != "sensor_a"]
    without = sh.SensorWindows(raw.values[..., keep], tuple(raw.channels[i] for i in keep), raw.units,
                               raw.end_cycles, raw.remaining_life)
    with pytest.raises(InputError, match=r"lack sensor/setting column\(s\) 'sensor_a'"):
        sh.encode_windows(data.preprocessing, without)
    # a test file without a training sensor
    train = sh.histories_from_frame(_history(), source="train")
    with pytest.raises(InputError, match=r"sensor column\(s\) 'sensor_b' of the training data are missing"):
        sh.prepare_histories(_history().drop(columns=["sensor_b"]), source="test.txt", fingerprint="x",
                             expect_channels=(*train.settings, *train.sensors))


def test_non_numeric_readings(tmp_path, tiny_histories):
    frame = _history().astype({"sensor_b": object})
    frame.loc[[4, 30], "sensor_b"] = "n/a?"
    path = tmp_path / "histories.csv"
    frame.to_csv(path, index=False)
    assert sh.detect_layout(path) == "histories_csv"
    table, _, _ = sh.read_history_path(path)
    assert table.frame["sensor_b"].notna().all() and table.groups == ("make",)
    assert any("2 readings are not numbers (e.g. 'n/a?' on line 6)" in n for n in table.notes)
    assert any("filled with the unit's previous reading" in n for n in table.notes)
    # a cycle that is not a whole number names the line
    frame = _history()
    frame["cycle"] = frame["cycle"].astype(object)
    frame.loc[2, "cycle"] = "3.5"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"line 4: cycle '3.5' is not a whole number"):
        sh.read_history_path(path)
    # the C-MAPSS layout must be numbers throughout
    lines = to_cmapss_text(tiny_histories.head(60)).splitlines()
    lines = [" ".join(t if i != 9 else "bad" for i, t in enumerate(line.split())) for line in lines]
    text_path = tmp_path / "train_bad.txt"
    text_path.write_text("\n".join(lines) + "\n")
    assert sh.detect_layout(text_path) == "readings_csv"   # not all numbers on the first line: not C-MAPSS
    lines[0] = " ".join(to_cmapss_text(tiny_histories.head(1)).split())
    text_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"column 'sensor_5': \d+% of the readings are not numbers"):
        sh.read_history_path(text_path)


def test_unknown_group_and_one_class_splits_are_errors(tiny_histories):
    with pytest.raises(InputError, match=r"group column\(s\) 'site' not found(.|\n)*'make', 'regime'"):
        _load(tiny_histories, sensitive_columns=("site",))
    with pytest.raises(InputError, match=r"every window ends within 500 cycles(.|\n)*--horizon"):
        _load(tiny_histories, horizon=500)


def test_a_binary_file_is_refused_as_not_text(tmp_path):
    path = tmp_path / "train_FD001.txt"
    path.write_bytes(b"\x00\x01\x02" * 5000)
    with pytest.raises(InputError, match=r"is not a text file(.|\n)*How to fix") as error:
        sh.read_history_path(path)
    assert str(path) in str(error.value)
