"""Run-to-failure sensor histories -> windows of the last W cycles labelled "fails within N cycles".

Used by the maintenance domain for its embedded default data (a DataFrame from
`pipeline.data.maintenance_generator.generate_histories`) and for a user's files. Every
decision is written, in plain words, into `DataSource.notes`; every bad input raises
`InputError` naming the file, the line or column, and how to fix it.

Input layouts (`detect_layout`)
  * "cmapss": the text layout of NASA's C-MAPSS turbofan files (train_FD001.txt, ...):
    space-separated, no header, 26 numbers per line: unit, cycle, 3 operating settings,
    21 sensors. Columns are named unit, cycle, setting_1..3, sensor_1..21.
  * "cmapss_folder": a folder holding train_X.txt, test_X.txt and RUL_X.txt (exactly one
    train_*.txt): train_X.txt gives the training and validation units; test_X.txt the test
    units, whose histories stop before failure; RUL_X.txt, one number per line, the true
    remaining life after each test unit's last cycle, in unit order. A test window ending
    at cycle t then has remaining life RUL + (last cycle - t). Without RUL_X.txt (or
    test_X.txt) the folder is used like its train file alone.
  * "histories_csv": a CSV (any separator `pipeline.data.tabular` detects) with a header
    holding a unit column (unit, unit_id, unit_number, machine_id, engine_id) and a cycle
    column (cycle, cycles, time_in_cycles). Numeric columns are readings: names starting
    with "setting" or "op_setting" are operating settings, the others sensors. Text columns
    with few values (make, regime, site, ...) are groups for the audit.
  Anything else is not a history ("readings_csv": the per-reading tabular path).

Cleaning (recorded decisions, in `notes`)
  * unit and cycle must be present and numeric (cycles whole numbers): else an error naming
    the line. Rows out of cycle order within a unit are sorted (noted); a repeated
    (unit, cycle) pair keeps its first row (noted, with how many repeats disagreed);
    gaps in the cycle numbers are noted (windows take consecutive recorded rows, labels
    count real cycles).
  * A reading that is not a number (text in a numeric column) or is missing is filled
    with the unit's previous reading (the next one at a unit's start; the column's median
    when a unit has none): noted with examples. In the C-MAPSS text layout every column
    must be numeric: a column where more than 5 % of the values are not numbers is an error.
  * A sensor absent from the file (a C-MAPSS line without 26 values, a test file without a
    training sensor, rows to encode without a sensor of the model) is an error.
  * A unit with fewer cycles than the window is skipped (noted); if no unit is long
    enough, an error says which --window would work.

Operating regimes and standardisation (fitted on the training units only)
  Sensor levels depend on the operating conditions, so every sensor is standardised with
  the mean and SD of its operating regime. Regimes are clusters of the operating settings:
  per setting, the sorted distinct values are cut where the gap exceeds 5 % of the
  setting's range (and, with more than 20 distinct values, 10 times the median gap); the
  combinations seen are the regimes; regimes with under 1 % of the rows join the nearest
  one; more than 12 regimes fall back to one (noted). A cycle belongs to the regime whose
  centre is nearest (settings divided by their range). Settings choose the regime and are
  not model inputs. A sensor whose SD is zero in every regime carries nothing (a constant
  sensor, or one that only tells the regimes apart): dropped, noted.

Windows and labels
  One window per unit and cycle t (t >= the unit's W-th cycle): its last W rows. Label 1
  when the unit fails within `horizon` cycles after t (remaining life <= horizon; for a
  run-to-failure history the failure is the unit's last cycle). Each window is one cycle
  of operation: an alarm on a healthy window is one false alarm.

Groups for the audit (one string column per window, the value at the window's last cycle)
  The file's text columns (make, ...) and "regime": the file's own regime column when it
  has one (the generated data do), else the settings cluster ("R1", "R2", ... by size).

Splits (units never straddle splits)
  Units are split 60 / 20 / 20 into train / validation / test, seeded, stratified by all
  group columns when every combination has at least 5 units, else by the first, else
  not at all (noted). With a C-MAPSS test file the training file's units are split
  75 / 25 into train / validation and the test file gives the test split. `max_rows`
  keeps a subsample of the windows stratified by unit and label, before splitting.

Preprocessing spec (format "edgeaudit.windows.v1", JSON-able; `encode_windows` applies it)
  window, horizon, input_shape [W, S], sensors (model input order), settings, regimes
  (name, centre, per-sensor mean and SD), settings_scale, dropped sensors with reasons,
  label definition, and how_to_use.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.tabular import frame_fingerprint, read_csv_file, refuse_binary
from pipeline.domain import DataSource, DomainData, Split
from pipeline.errors import InputError

FORMAT = "edgeaudit.windows.v1"
UNIT, CYCLE, REGIME = "unit", "cycle", "regime"
CMAPSS_SETTINGS = ("setting_1", "setting_2", "setting_3")
CMAPSS_SENSORS = tuple(f"sensor_{i}" for i in range(1, 22))
CMAPSS_COLUMNS = (UNIT, CYCLE, *CMAPSS_SETTINGS, *CMAPSS_SENSORS)
UNIT_ALIASES = ("unit", "unit_id", "unit_number", "machine_id", "engine_id")
CYCLE_ALIASES = ("cycle", "cycles", "time_in_cycles")
SETTING_PREFIXES = ("setting", "op_setting")

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
TRAIN_VALIDATION_FRACTIONS = (0.75, 0.25)   # with a separate test file
MIN_STRATUM_UNITS = 5
NUMERIC_SHARE = 0.95           # share of values that must parse for a column to be numeric
MAX_GROUP_VALUES = 20          # a text column with more distinct values is not a group
REGIME_GAP_SHARE = 0.05
REGIME_GAP_MEDIANS = 10.0
REGIME_MIN_SHARE = 0.01
MAX_REGIMES = 12
STD_FLOOR = 1e-6

HOW_TO_USE = (
    "Collect one unit's readings of its last `window` cycles, oldest first. For each cycle pick the operating "
    "regime whose `center` is nearest to the cycle's operating settings (the values of the columns in "
    "`settings`, each divided by the matching `settings_scale`, Euclidean distance; with one regime, always "
    "that one). For each sensor in `sensors`, in that order, write (reading - regime.mean[j]) / regime.std[j]. "
    "The model's only input is float32 of shape [1, window, len(sensors)] (cycles x sensors); its output is "
    "the probability that the unit fails within `horizon` cycles after the window's last cycle. A missing "
    "reading: repeat the unit's previous reading. Sensors in `dropped_sensors` are not model inputs."
)


@dataclass(frozen=True)
class SensorWindows:
    """Raw windows: what `encode_windows` takes (the `raw` of a windows `Split`).

    values:         float32 (n, W, C) raw readings, oldest cycle first.
    channels:       the C column names of the last axis (settings and sensors).
    units:          (n,) the unit of each window (text).
    end_cycles:     (n,) the cycle number of each window's last row.
    remaining_life: (n,) cycles from the window's last cycle to the failure.
    """

    values: np.ndarray
    channels: tuple[str, ...]
    units: np.ndarray
    end_cycles: np.ndarray
    remaining_life: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> "SensorWindows":
        return SensorWindows(self.values[index], self.channels, self.units[index], self.end_cycles[index],
                             self.remaining_life[index])


@dataclass(frozen=True)
class HistoryTable:
    """Histories as read: one row per unit and cycle, numeric readings, text groups."""

    frame: pd.DataFrame            # unit (text), cycle (int), settings, sensors, group columns
    settings: tuple[str, ...]
    sensors: tuple[str, ...]
    groups: tuple[str, ...]
    fingerprint: str
    notes: tuple[str, ...]
    source: str


# --------------------------------------------------------------------------- small helpers


def _quote_list(values: Sequence[Any], limit: int = 8) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def _unit_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def _short_number(value: float) -> str:
    return f"{0.0 if abs(value) < 5e-4 else value:.3g}"


def _read_text(path: Path, source: str) -> tuple[str, bytes]:
    if not path.exists():
        raise InputError("file not found", fix="check the path given with --data", source=source)
    data = path.read_bytes()
    refuse_binary(data, source, expected="a text file of sensor readings")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if not text.strip():
        raise InputError("the file is empty", fix="pass a file with one line per unit and cycle", source=source)
    return text, data


def _first_line(head: bytes) -> str:
    text = head.decode("utf-8-sig", errors="replace")
    return next((line for line in text.splitlines() if line.strip()), "")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _header_names(line: str) -> list[str]:
    separator = max((",", ";", "\t", "|"), key=line.count)
    return [name.strip().strip('"').strip().lower() for name in line.split(separator)]


def detect_layout(path: str | Path) -> str:
    """'cmapss_folder', 'cmapss', 'histories_csv' or 'readings_csv' (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        return "cmapss_folder"
    if not p.exists():
        raise InputError("file not found", fix="check the path given with --data", source=str(path))
    with open(p, "rb") as handle:
        head = handle.read(65536)
    refuse_binary(head, str(path), expected="a text file of sensor readings")
    line = _first_line(head)
    tokens = line.split()
    if len(tokens) >= 3 and all(_is_number(t) for t in tokens) and not any(s in line for s in ",;|"):
        return "cmapss"
    names = set(_header_names(line))
    if names & set(UNIT_ALIASES) and names & set(CYCLE_ALIASES):
        return "histories_csv"
    return "readings_csv"


# --------------------------------------------------------------------------- reading


def read_cmapss_text(path: str | Path, *, role: str = "history") -> tuple[pd.DataFrame, str, list[str]]:
    """A C-MAPSS text file -> (frame with CMAPSS_COLUMNS as text cells, sha256, notes)."""
    source = str(path)
    text, data = _read_text(Path(path), source)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != len(CMAPSS_COLUMNS):
            raise InputError(
                f"line {number} holds {len(tokens)} values, expected {len(CMAPSS_COLUMNS)} in the C-MAPSS layout "
                f"(unit, cycle, 3 operating settings, 21 sensors): a column is missing or extra",
                fix="give every line all 26 space-separated numbers; for another set of sensors write a CSV with "
                    "a header such as 'unit,cycle,setting_1,sensor_a,sensor_b'",
                source=source)
        rows.append(tokens + [str(number)])
    frame = pd.DataFrame(rows, columns=[*CMAPSS_COLUMNS, "_line"])
    return frame, hashlib.sha256(data).hexdigest(), [f"read {len(frame)} rows of the C-MAPSS text layout "
                                                     f"({role}: unit, cycle, 3 settings, 21 sensors)"]


def read_histories_csv(path: str | Path) -> tuple[pd.DataFrame, str, list[str]]:
    """A CSV with a header naming a unit and a cycle column -> (frame of text cells, sha256, notes)."""
    frame, fingerprint, notes = read_csv_file(path)
    renamed = {}
    lowered = {str(c).strip().lower(): c for c in frame.columns}
    for target, aliases in ((UNIT, UNIT_ALIASES), (CYCLE, CYCLE_ALIASES)):
        found = next((lowered[a] for a in aliases if a in lowered), None)
        if found is None:
            raise InputError(f"no {target} column; the columns are {_quote_list(list(frame.columns), 30)}",
                             fix=f"name the {target} column one of: {', '.join(aliases)}", source=str(path))
        if found != target:
            renamed[found] = target
    if renamed:
        frame = frame.rename(columns=renamed)
        notes.append("columns " + ", ".join(f"{a!r} -> {b!r}" for a, b in renamed.items()) + " renamed")
    frame["_line"] = (np.arange(len(frame)) + 2).astype(str)   # line 1 is the header
    return frame, fingerprint, notes


def read_remaining_life(path: str | Path, units: int) -> np.ndarray:
    """RUL_X.txt: one whole number per line, one line per test unit in unit order."""
    source = str(path)
    text, _ = _read_text(Path(path), source)
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            value = float(tokens[0])
        except ValueError:
            raise InputError(f"line {number}: {tokens[0]!r} is not a number",
                             fix="write one whole number (remaining cycles) per test unit, one per line",
                             source=source) from None
        if not value.is_integer() or value < 0:
            raise InputError(f"line {number}: {tokens[0]!r} is not a whole number of cycles >= 0",
                             fix="write one whole number (remaining cycles) per test unit, one per line",
                             source=source)
        values.append(int(value))
    if len(values) != units:
        raise InputError(f"holds {len(values)} remaining lives for {units} test units",
                         fix="write one line per unit of the test file, in unit order", source=source)
    return np.asarray(values, dtype=np.int64)


# --------------------------------------------------------------------------- cleaning


def prepare_histories(frame: pd.DataFrame, *, source: str, fingerprint: str, notes: Sequence[str] = (),
                      strict_numeric: bool = False, expect_channels: Sequence[str] | None = None) -> HistoryTable:
    """Text or numeric cells -> a clean `HistoryTable` (see "Cleaning" in the module docstring).

    strict_numeric: every column except the groups must be numbers (the C-MAPSS layout).
    expect_channels: settings and sensors that must be present (a test file must hold the
    training file's columns).
    """
    notes = list(notes)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    has_lines = "_line" in frame.columns
    lines = frame.pop("_line").to_numpy() if has_lines else (np.arange(len(frame)) + 1).astype(str)
    where = "line" if has_lines else "row"
    if len(frame) == 0:
        raise InputError("no rows", fix="pass one row per unit and cycle", source=source)
    for column in (UNIT, CYCLE):
        if column not in frame.columns:
            raise InputError(f"no {column!r} column", fix=f"add a {column!r} column", source=source)

    # unit and cycle
    unit_missing = frame[UNIT].isna() | (frame[UNIT].astype(str).str.strip() == "")
    if unit_missing.any():
        first = int(np.flatnonzero(unit_missing.to_numpy())[0])
        raise InputError(f"{where} {lines[first]}: the unit is missing",
                         fix="give every row the unit it belongs to", source=source)
    cycles = pd.to_numeric(frame[CYCLE], errors="coerce")
    bad = cycles.isna() | ~np.isfinite(cycles) | (cycles % 1 != 0)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{where} {lines[first]}: cycle {frame[CYCLE].iloc[first]!r} is not a whole number",
                         fix="number the cycles of every unit 1, 2, 3, ... (whole numbers)", source=source)
    frame[CYCLE] = cycles.astype(np.int64)
    frame[UNIT] = [_unit_text(v) for v in frame[UNIT].tolist()]

    # columns: numbers (settings, sensors) or text groups
    settings, sensors, groups = [], [], []
    for column in [c for c in frame.columns if c not in (UNIT, CYCLE)]:
        series = frame[column]
        present = series[series.notna() & (series.astype(str).str.strip() != "")]
        parsed = pd.to_numeric(series, errors="coerce")
        parsed = parsed.where(np.isfinite(parsed))
        share = float(parsed.notna().sum() / len(present)) if len(present) else 0.0
        if len(present) == 0:
            notes.append(f"dropped column {column!r}: it has no values")
            frame = frame.drop(columns=[column])
            continue
        if share >= NUMERIC_SHARE or strict_numeric:
            if share < NUMERIC_SHARE:
                examples = present[parsed.loc[present.index].isna()].astype(str).unique()[:3]
                raise InputError(
                    f"column {column!r}: {1 - share:.0%} of the readings are not numbers "
                    f"(e.g. {_quote_list(list(examples), 3)})",
                    fix="write every reading as a number ('.' as the decimal point); leave a reading empty "
                        "only when it is missing", source=source)
            unparsed = present[parsed.loc[present.index].isna()]
            if len(unparsed):
                first = frame.index.get_loc(unparsed.index[0])
                notes.append(f"column {column!r}: {len(unparsed)} readings are not numbers (e.g. "
                             f"{str(unparsed.iloc[0])!r} on {where} {lines[first]}); treated as missing")
            frame[column] = parsed.astype(np.float64)
            (settings if column.lower().startswith(SETTING_PREFIXES) else sensors).append(column)
        else:
            values = series.astype(str).str.strip()
            distinct = values[present.index].nunique()
            if distinct > MAX_GROUP_VALUES:
                examples = present[parsed.loc[present.index].isna()].astype(str).unique()[:3]
                raise InputError(
                    f"column {column!r} holds text ({_quote_list(list(examples), 3)}) in {1 - share:.0%} of its "
                    f"rows and {distinct} distinct values: it is neither a sensor (numbers) nor a group "
                    f"(a few values such as a make)",
                    fix=f"fix the readings of {column!r} so they are numbers, or delete the column", source=source)
            frame[column] = values.where(series.notna() & (values != ""), "(missing)")
            groups.append(column)
    if expect_channels is not None:
        absent = [c for c in expect_channels if c not in settings and c not in sensors]
        if absent:
            raise InputError(f"sensor column(s) {_quote_list(absent)} of the training data are missing",
                             fix="give this file the same setting and sensor columns as the training file",
                             source=source)
    if not sensors:
        raise InputError("no sensor columns (numeric columns besides unit, cycle and settings)",
                         fix="add the sensor readings, one numeric column per sensor", source=source)

    # order: units by number (or by name when they are not all numbers), cycles ascending; the
    # table, and so the split, does not depend on the order of the rows in the file
    names = list(dict.fromkeys(frame[UNIT]))
    numeric = all(_is_number(u) for u in names)
    order_of_unit = {u: i for i, u in enumerate(sorted(names, key=float if numeric else str))}
    unit_rank = frame[UNIT].map(order_of_unit).to_numpy()
    cycle_values = frame[CYCLE].to_numpy()
    sort = np.lexsort((cycle_values, unit_rank))
    if not np.array_equal(sort, np.arange(len(frame))):
        backwards = np.flatnonzero((np.diff(unit_rank) == 0) & (np.diff(cycle_values) < 0))
        detail = ""
        if backwards.size:
            i = backwards[0]
            detail = (f" (e.g. unit {frame[UNIT].iloc[i]}: cycle {cycle_values[i + 1]} on {where} {lines[i + 1]} "
                      f"after cycle {cycle_values[i]})")
        notes.append(f"rows were not in cycle order within each unit{detail}; sorted by unit and cycle")
        frame = frame.iloc[sort].reset_index(drop=True)
        lines = lines[sort]
    else:
        frame = frame.reset_index(drop=True)

    # repeated (unit, cycle) pairs
    repeated = frame.duplicated([UNIT, CYCLE], keep="first").to_numpy()
    if repeated.any():
        keys = frame.loc[repeated, [UNIT, CYCLE]]
        conflicting = int((~frame.duplicated(keep="first").to_numpy() & repeated).sum())
        notes.append(f"{int(repeated.sum())} rows repeat a (unit, cycle) pair seen before (e.g. unit "
                     f"{keys.iloc[0][UNIT]}, cycle {keys.iloc[0][CYCLE]}); kept the first row of each pair "
                     f"({conflicting} of the repeats had different readings)")
        frame = frame.loc[~repeated].reset_index(drop=True)

    # gaps
    step = frame.groupby(UNIT, sort=False)[CYCLE].diff()
    gap_units = frame.loc[step > 1, UNIT].unique()
    if gap_units.size:
        notes.append(f"{gap_units.size} units have gaps in their cycle numbers (e.g. unit {gap_units[0]}); "
                     f"windows take consecutive recorded rows and labels count real cycles")

    # missing readings
    channels = settings + sensors
    missing = frame[channels].isna()
    if missing.to_numpy().any():
        count = int(missing.to_numpy().sum())
        worst = missing.sum().sort_values(ascending=False)
        filled = frame.groupby(UNIT, sort=False)[channels].transform(lambda s: s.ffill().bfill())
        still = filled.isna()
        if still.to_numpy().any():
            filled = filled.fillna(frame[channels].median())
        frame[channels] = filled
        notes.append(f"{count} readings missing or not numbers (most in {worst.index[0]!r}: {int(worst.iloc[0])}); "
                     f"each filled with the unit's previous reading (next at a unit's start"
                     + (", the column median where a unit has none)" if still.to_numpy().any() else ")"))
    return HistoryTable(frame=frame, settings=tuple(settings), sensors=tuple(sensors), groups=tuple(groups),
                        fingerprint=fingerprint, notes=tuple(notes), source=source)


# --------------------------------------------------------------------------- regimes


def _setting_levels(values: np.ndarray) -> np.ndarray:
    """Cut points between the levels of one setting (see the module docstring)."""
    distinct = np.unique(values)
    if distinct.size < 2:
        return np.zeros(0)
    gaps = np.diff(distinct)
    span = distinct[-1] - distinct[0]
    cut = gaps > REGIME_GAP_SHARE * span
    if distinct.size > 20:
        cut &= gaps > REGIME_GAP_MEDIANS * np.median(gaps)
    return (distinct[:-1][cut] + distinct[1:][cut]) / 2.0


def fit_regimes(settings: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Operating regimes of settings rows [n, k] -> (centres [r, k], scale [k], notes)."""
    settings = np.asarray(settings, dtype=np.float64)
    n, k = settings.shape
    if k == 0 or n == 0:
        return np.zeros((1, k)), np.ones(k), ["no operating settings: one regime"]
    span = settings.max(axis=0) - settings.min(axis=0)
    scale = np.where(span > 0, span, 1.0)
    codes = np.zeros((n, k), dtype=np.int64)
    for j in range(k):
        codes[:, j] = np.searchsorted(_setting_levels(settings[:, j]), settings[:, j])
    keys, labels, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    labels = labels.reshape(-1)
    centres = np.stack([settings[labels == r].mean(axis=0) for r in range(len(keys))])
    big = counts >= REGIME_MIN_SHARE * n
    notes = []
    if not big.all():
        notes.append(f"{int((~big).sum())} small clusters of operating settings (under {REGIME_MIN_SHARE:.0%} of "
                     f"the rows) joined the nearest regime")
        centres = centres[big]
        labels = _nearest(settings / scale, centres / scale)
        centres = np.stack([settings[labels == r].mean(axis=0) for r in range(len(centres))])
    if len(centres) > MAX_REGIMES:
        notes.append(f"the operating settings form {len(centres)} clusters, more than {MAX_REGIMES}: sensors are "
                     f"standardised over all cycles as one regime")
        return settings.mean(axis=0, keepdims=True), scale, notes
    labels = _nearest(settings / scale, centres / scale)
    sizes = np.bincount(labels, minlength=len(centres))
    centres = centres[np.argsort(-sizes, kind="stable")]
    return centres, scale, notes


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    if len(centres) == 1 or points.shape[-1] == 0:
        return np.zeros(points.shape[:-1], dtype=np.int64)
    distance = ((points[..., None, :] - centres) ** 2).sum(axis=-1)
    return np.argmin(distance, axis=-1)


def assign_regimes(spec: dict, settings: np.ndarray) -> np.ndarray:
    """Regime index of every cycle: settings [..., k] -> int [...] (nearest centre)."""
    centres = np.asarray([r["center"] for r in spec["regimes"]], dtype=np.float64)
    scale = np.asarray(spec["settings_scale"], dtype=np.float64)
    return _nearest(np.asarray(settings, dtype=np.float64) / scale, centres / scale) if scale.size else \
        np.zeros(np.asarray(settings).shape[:-1], dtype=np.int64)


# --------------------------------------------------------------------------- windows


def build_windows(table: HistoryTable, window: int, *, final_remaining_life: dict[str, int] | None = None
                  ) -> tuple[SensorWindows, pd.DataFrame, list[str]]:
    """Every window of `window` consecutive rows of every unit long enough.

    Returns (windows, their groups: one text column per group column and 'regime_cluster'
    is not included, notes). final_remaining_life: unit -> cycles left after its last row
    (test files); default 0 (run to failure).
    """
    frame = table.frame
    channels = (*table.settings, *table.sensors)
    values = frame[list(channels)].to_numpy(dtype=np.float32)
    units = frame[UNIT].to_numpy()
    cycles = frame[CYCLE].to_numpy()
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    ends = np.r_[starts[1:], len(frame)]
    pieces, unit_ids, end_cycles, remaining, group_rows = [], [], [], [], []
    short = []
    for start, end in zip(starts, ends):
        length = end - start
        if length < window:
            short.append((units[start], int(length)))
            continue
        block = np.lib.stride_tricks.sliding_window_view(values[start:end], (window, len(channels)))[:, 0]
        pieces.append(block)
        last = np.arange(start + window - 1, end)
        offset = 0 if final_remaining_life is None else int(final_remaining_life[units[start]])
        unit_ids.append(np.full(last.size, units[start], dtype=object))
        end_cycles.append(cycles[last])
        remaining.append(cycles[end - 1] - cycles[last] + offset)
        group_rows.append(last)
    notes = []
    if short:
        shown = ", ".join(f"unit {u} ({n} cycles)" for u, n in short[:5])
        notes.append(f"skipped {len(short)} unit(s) with fewer than {window} cycles, the window length: {shown}"
                     + (", ..." if len(short) > 5 else ""))
    if not pieces:
        longest = max(n for _, n in short)
        raise InputError(f"no unit has at least {window} cycles, the window length (the longest has {longest})",
                         fix=f"pass --window {longest} or less, or use longer histories", source=table.source)
    rows = np.concatenate(group_rows)
    windows = SensorWindows(values=np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32),
                            channels=tuple(channels), units=np.concatenate(unit_ids).astype(str),
                            end_cycles=np.concatenate(end_cycles).astype(np.int64),
                            remaining_life=np.concatenate(remaining).astype(np.int64))
    groups = frame.loc[rows, list(table.groups)].reset_index(drop=True).astype(str)
    return windows, groups, notes


# --------------------------------------------------------------------------- preprocessing


def fit_window_preprocessing(train: HistoryTable, *, window: int, horizon: int) -> tuple[dict, list[str]]:
    """Regimes and per-regime sensor statistics from the training units' rows."""
    frame = train.frame
    settings = frame[list(train.settings)].to_numpy(dtype=np.float64)
    centres, scale, notes = fit_regimes(settings)
    spec_regimes = {"regimes": [{"center": c.tolist()} for c in centres], "settings_scale": scale.tolist()}
    which = assign_regimes(spec_regimes, settings)
    sensors = list(train.sensors)
    readings = frame[sensors].to_numpy(dtype=np.float64)
    means = np.stack([readings[which == r].mean(axis=0) for r in range(len(centres))])
    stds = np.stack([readings[which == r].std(axis=0) for r in range(len(centres))])
    constant_everywhere = np.ptp(readings, axis=0) <= STD_FLOOR * np.maximum(1.0, np.abs(readings).max(axis=0))
    constant_within = (stds <= STD_FLOOR * np.maximum(1.0, np.abs(means))).all(axis=0)
    dropped = {}
    for j, name in enumerate(sensors):
        if constant_everywhere[j]:
            dropped[name] = f"constant ({readings[0, j]:g} in every training row)"
        elif constant_within[j]:
            dropped[name] = "constant within every operating regime: it only tells the regimes apart"
    kept = [j for j, name in enumerate(sensors) if name not in dropped]
    if not kept:
        raise InputError("every sensor is constant (within each operating regime) in the training units",
                         fix="use histories whose sensors change over the units' lives", source=train.source)
    if dropped:
        notes.append(f"dropped {len(dropped)} sensors that carry no information: "
                     + "; ".join(f"{n}: {why}" for n, why in dropped.items()))
    regimes = []
    for r, centre in enumerate(centres):
        std = np.where(stds[r, kept] > STD_FLOOR * np.maximum(1.0, np.abs(means[r, kept])), stds[r, kept], 1.0)
        regimes.append({"name": f"R{r + 1}", "center": [float(v) for v in centre],
                        "train_rows": int((which == r).sum()),
                        "mean": [float(v) for v in means[r, kept]], "std": [float(v) for v in std]})
    if len(regimes) > 1:
        described = [f"{r['name']}: " + ", ".join(f"{name}≈{_short_number(value)}"
                                                  for name, value in zip(train.settings, r["center"]))
                     + f", {r['train_rows']} training rows" for r in regimes]
        notes.append(f"{len(regimes)} operating regimes found in the settings (" + "; ".join(described)
                     + "); every sensor is standardised with its regime's train mean and SD")
    else:
        notes.append("one operating regime: every sensor is standardised with its train mean and SD")
    if train.settings:
        notes.append(f"operating settings {_quote_list(train.settings)} choose the regime; they are not model inputs")
    kept_names = [sensors[j] for j in kept]
    spec = {
        "format": FORMAT,
        "input_dtype": "float32",
        "window": int(window),
        "horizon": int(horizon),
        "input_shape": [int(window), len(kept_names)],
        "sensors": kept_names,
        "settings": list(train.settings),
        "settings_scale": [float(v) for v in scale],
        "regimes": regimes,
        "dropped_sensors": dropped,
        "label": {"definition": f"1 when the unit fails within {horizon} cycles after the window's last cycle "
                                f"(remaining life <= {horizon})", "positive_class": f"failure within {horizon} cycles"},
        "how_to_use": HOW_TO_USE,
    }
    json.dumps(spec)
    return spec, notes


def encode_windows(spec: dict, windows: SensorWindows | np.ndarray) -> np.ndarray:
    """Raw windows -> float32 (n, W, S) model inputs, using only the spec.

    `windows`: a SensorWindows (channels found by name), or an array (n, W, C) whose C
    channels are the spec's settings followed by its sensors, in that order.
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise InputError(f"the preprocessing spec has format {found!r}, expected {FORMAT!r}",
                         fix="use the preprocessing.json written beside the model by the same EdgeAudit run")
    settings, sensors = list(spec["settings"]), list(spec["sensors"])
    if isinstance(windows, SensorWindows):
        absent = [c for c in settings + sensors if c not in windows.channels]
        if absent:
            raise InputError(f"the windows to encode lack sensor/setting column(s) {_quote_list(absent)}",
                             fix=f"supply every column the model was trained on: {_quote_list(settings + sensors, 40)}")
        position = {c: i for i, c in enumerate(windows.channels)}
        values = windows.values
        setting_values = values[..., [position[c] for c in settings]]
        sensor_values = values[..., [position[c] for c in sensors]]
    else:
        values = np.asarray(windows, dtype=np.float32)
        expected = len(settings) + len(sensors)
        if values.ndim != 3 or values.shape[2] != expected:
            raise InputError(f"windows of shape {values.shape}, expected (n, window, {expected}): the settings "
                             f"{settings} then the sensors {sensors}",
                             fix="pass a SensorWindows, or an array with those channels in that order")
        setting_values, sensor_values = values[..., :len(settings)], values[..., len(settings):]
    if values.shape[1] != spec["window"]:
        raise InputError(f"windows of {values.shape[1]} cycles, the model takes {spec['window']}",
                         fix=f"give the model the last {spec['window']} cycles of a unit")
    which = assign_regimes(spec, setting_values)
    means = np.asarray([r["mean"] for r in spec["regimes"]], dtype=np.float32)
    stds = np.asarray([r["std"] for r in spec["regimes"]], dtype=np.float32)
    out = (sensor_values.astype(np.float32) - means[which]) / stds[which]
    if not np.isfinite(out).all():
        raise InputError("some readings are not finite numbers (NaN or infinite)",
                         fix="fill missing readings with the unit's previous reading before encoding")
    return np.ascontiguousarray(out, dtype=np.float32)


def window_feature_names(sensors: Sequence[str], window: int) -> tuple[list[str], dict[str, list[int]]]:
    """Names of the flattened (W, S) inputs (C order) and each sensor's indices."""
    names = [f"{sensor} @ t-{window - 1 - t}" for t in range(window) for sensor in sensors]
    groups = {sensor: [t * len(sensors) + j for t in range(window)] for j, sensor in enumerate(sensors)}
    return names, groups


# --------------------------------------------------------------------------- splitting


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    cuts = [int(math.floor(sum(fractions[:i + 1]) * n + 0.5)) for i in range(len(fractions))]
    return [b - a for a, b in zip([0, *cuts[:-1]], cuts)]


def split_units(unit_strata: pd.Series, seed: int, fractions: Sequence[float]) -> tuple[list[np.ndarray], str]:
    """Units -> one array of units per split, stratified by `unit_strata` (index = unit)."""
    rng = np.random.default_rng([seed, 3])
    units = unit_strata.index.to_numpy()
    if len(units) < len(fractions):
        raise InputError(f"only {len(units)} units are long enough; {len(fractions)} are needed so that every split "
                         f"gets whole units", fix="use more units, or a shorter --window")
    parts: list[list] = [[] for _ in fractions]
    for stratum in sorted(unit_strata.unique()):
        members = rng.permutation(units[(unit_strata == stratum).to_numpy()])
        offset = 0
        for i, size in enumerate(_allocate(len(members), fractions)):
            parts[i].extend(members[offset:offset + size])
            offset += size
    if any(not p for p in parts):   # tiny strata left a split empty: split all units together
        members = rng.permutation(units)
        sizes = [max(1, s) for s in _allocate(len(members), fractions)]
        sizes[0] = len(members) - sum(sizes[1:])
        offsets = np.cumsum([0, *sizes])
        parts = [list(members[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        return [np.asarray(p) for p in parts], "not stratified (too few units per group)"
    return [np.asarray(p) for p in parts], "stratified"


def _unit_strata(groups: pd.DataFrame, units: np.ndarray) -> tuple[pd.Series, str]:
    per_unit = groups.assign(_unit=units).groupby("_unit", sort=False).first()
    if per_unit.shape[1] == 0:
        return pd.Series("all", index=per_unit.index), "not stratified (no group columns)"
    candidates = [list(per_unit.columns)] + ([[per_unit.columns[0]]] if per_unit.shape[1] > 1 else [])
    for columns in candidates:
        strata = per_unit[columns].astype(str).agg(" | ".join, axis=1)
        if strata.value_counts().min() >= MIN_STRATUM_UNITS:
            return strata, f"stratified by {' x '.join(columns)}"
    return pd.Series("all", index=per_unit.index), "not stratified (fewer than 5 units in some group)"


def _subsample(units: np.ndarray, labels: np.ndarray, keep: int, seed: int) -> np.ndarray:
    """Indices of a subsample of `keep` windows, stratified by unit and label (largest remainder)."""
    strata = pd.Series(units).astype(str) + "|" + pd.Series(labels).astype(str)
    codes, uniques = pd.factorize(strata)
    sizes = np.bincount(codes)
    quotas = keep * sizes / sizes.sum()
    take = np.floor(quotas).astype(np.int64)
    rest = keep - int(take.sum())
    order = np.lexsort((np.arange(sizes.size), -(quotas - take)))
    take[order[:rest]] += 1
    rng = np.random.default_rng([seed, 5])
    chosen = [rng.choice(np.flatnonzero(codes == i), size=min(int(take[i]), int(sizes[i])), replace=False)
              for i in range(sizes.size) if take[i]]
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------- the loader


def load_histories(
    train: HistoryTable,
    *,
    window: int,
    horizon: int,
    sensitive_columns: Sequence[str] = (),
    seed: int = 0,
    max_rows: int | None = None,
    min_group_size: int = 20,
    test: HistoryTable | None = None,
    test_remaining_life: np.ndarray | None = None,
    kind: str = "file",
    path: str | None = None,
    description: str | None = None,
) -> DomainData:
    """Histories -> windows -> unit-wise train / validation / test `DomainData` (see the module docstring)."""
    if window < 2 or horizon < 1:
        raise InputError(f"window {window} and horizon {horizon}: the window needs at least 2 cycles and the "
                         f"horizon at least 1", fix="pass --window 2 or more and --horizon 1 or more")
    notes = list(train.notes)
    frames = {"train": train} if test is None else {"train": train, "test": test}
    windows_of, groups_of = {}, {}
    for role, table in frames.items():
        remaining = None
        if role == "test" and test_remaining_life is not None:
            units_in_order = list(dict.fromkeys(table.frame[UNIT]))
            remaining = dict(zip(units_in_order, (int(v) for v in test_remaining_life)))
        windows_of[role], groups_of[role], window_notes = build_windows(table, window, final_remaining_life=remaining)
        notes.extend(f"{role} file: {n}" if test is not None else n for n in window_notes)
        if test is not None and role == "test":
            notes.extend(f"test file: {n}" for n in table.notes)

    # groups: the file's text columns plus 'regime' (the file's own, else the settings cluster)
    group_columns = list(train.groups)
    derive_regime = REGIME not in group_columns
    available = group_columns + ([REGIME] if derive_regime else [])
    requested = list(dict.fromkeys(str(c) for c in sensitive_columns)) or available
    unknown = [c for c in requested if c not in available]
    if unknown:
        raise InputError(f"group column(s) {_quote_list(unknown)} not found; the groups these histories have are "
                         f"{_quote_list(available)}",
                         fix="pass --sensitive with some of those (text columns of a CSV, or 'regime', which is "
                             "derived from the operating settings when the file has no regime column)",
                         source=train.source)

    labels_of = {role: (w.remaining_life <= horizon).astype(np.int64) for role, w in windows_of.items()}
    all_windows = windows_of["train"]
    all_labels = labels_of["train"]
    all_groups = groups_of["train"]
    rows_before = len(all_windows) + (len(windows_of["test"]) if test is not None else 0)

    # split by unit (before any subsampling, so the split does not depend on --max-rows)
    strata, how = _unit_strata(all_groups, all_windows.units)
    fractions = SPLIT_FRACTIONS if test is None else TRAIN_VALIDATION_FRACTIONS
    unit_parts, fallback = split_units(strata, seed, fractions)
    how = how if fallback == "stratified" else fallback
    names = ("train", "validation", "test") if test is None else ("train", "validation")
    notes.append(f"units split {' / '.join(f'{f:.0%}' for f in fractions)} into {' / '.join(names)} "
                 f"({', '.join(f'{len(p)}' for p in unit_parts)} units), {how}; no unit is in two splits"
                 + ("" if test is None else "; the test file's units are the test split"))
    index_of = {name: np.flatnonzero(np.isin(all_windows.units, part)) for name, part in zip(names, unit_parts)}
    pieces = {name: (all_windows.subset(idx), all_labels[idx], all_groups.iloc[idx].reset_index(drop=True))
              for name, idx in index_of.items()}
    if test is not None:
        pieces["test"] = (windows_of["test"], labels_of["test"], groups_of["test"])

    if max_rows is not None and rows_before > max_rows:
        kept = 0
        for name, (w, y, g) in list(pieces.items()):
            share = int(round(max_rows * len(w) / rows_before))
            if share < len(w):
                chosen = _subsample(w.units, y, max(share, 2), seed)
                pieces[name] = (w.subset(chosen), y[chosen], g.iloc[chosen].reset_index(drop=True))
            kept += len(pieces[name][0])
        notes.append(f"kept a subsample of {kept} of {rows_before} windows (--max-rows {max_rows}), stratified by "
                     f"unit and label; every unit keeps its share")

    # preprocessing from the training units' rows only
    train_units = set(pieces["train"][0].units.tolist())
    train_rows = HistoryTable(frame=train.frame[train.frame[UNIT].isin(train_units)], settings=train.settings,
                              sensors=train.sensors, groups=train.groups, fingerprint=train.fingerprint,
                              notes=(), source=train.source)
    spec, spec_notes = fit_window_preprocessing(train_rows, window=window, horizon=horizon)
    notes.extend(spec_notes)
    spec["groups"] = requested

    splits = []
    for name in ("train", "validation", "test"):
        w, y, g = pieces[name]
        if derive_regime:
            last = w.values[:, -1, [w.channels.index(c) for c in spec["settings"]]]
            names_of = np.asarray([r["name"] for r in spec["regimes"]], dtype=object)
            g = g.assign(**{REGIME: names_of[assign_regimes(spec, last)]})
        positives = int(y.sum())
        if positives == 0 or positives == len(y):
            which = "no window ends within" if positives == 0 else "every window ends within"
            raise InputError(f"in the {name} split {which} {horizon} cycles of a failure, so it holds one class only",
                             fix="change --horizon (the label is 'fails within --horizon cycles'), or use more "
                                 "or longer run-to-failure histories", source=train.source)
        splits.append(Split(raw=w, labels=y.astype(np.int64),
                            groups=g[requested].astype(str).reset_index(drop=True),
                            clusters=np.asarray(w.units).astype(str)))  # a unit's windows are correlated
    train_split, validation_split, test_split = splits
    for column in requested:
        counts = test_split.groups[column].value_counts()
        small = counts[counts < min_group_size]
        if len(small):
            listed = ", ".join(f"{g!r} has {n} test windows" for g, n in small.items())
            notes.append(f"group column {column!r}: {listed}"
                         + f", fewer than --min-group-size {min_group_size}: the audit reports it as not measurable")

    feature_names, feature_groups = window_feature_names(spec["sensors"], window)
    units_total = train.frame[UNIT].nunique() + (test.frame[UNIT].nunique() if test is not None else 0)
    cycles_total = len(train.frame) + (len(test.frame) if test is not None else 0)
    describe = description or (f"{Path(path).name if path else 'histories'}: {units_total} units, "
                               f"{cycles_total} cycles")
    describe += f"; windows of {window} cycles labelled 'fails within {horizon} cycles'"
    fingerprint = train.fingerprint if test is None else hashlib.sha256(
        (train.fingerprint + test.fingerprint + json.dumps(
            None if test_remaining_life is None else [int(v) for v in test_remaining_life])).encode()).hexdigest()
    source = DataSource(kind=kind, description=describe, path=path, fingerprint=fingerprint, rows=rows_before,
                        notes=tuple(notes))
    class_balance = {
        "positive_rate": float(np.concatenate([s.labels for s in splits]).mean()),
        **{f"{n}_rows": len(s) for n, s in zip(("train", "validation", "test"), splits)},
        **{f"{n}_positive_rate": float(s.labels.mean()) for n, s in zip(("train", "validation", "test"), splits)},
        **{f"{n}_units": int(np.unique(s.raw.units).size) for n, s in zip(("train", "validation", "test"), splits)},
    }
    return DomainData(
        train=train_split, validation=validation_split, test=test_split,
        preprocessing=spec,
        feature_names=tuple(feature_names),
        feature_groups=feature_groups,
        sensitive_columns=tuple(requested),
        label_name=f"fails_within_{horizon}_cycles",
        positive_class=f"failure within {horizon} cycles",
        source=source,
        class_balance=class_balance,
    )


# --------------------------------------------------------------------------- entry points


def histories_from_frame(frame: pd.DataFrame, *, source: str) -> HistoryTable:
    """A DataFrame of histories (e.g. the generated default data) -> HistoryTable."""
    return prepare_histories(frame, source=source, fingerprint=frame_fingerprint(frame))


def read_history_path(path: str | Path) -> tuple[HistoryTable, HistoryTable | None, np.ndarray | None]:
    """A history file or C-MAPSS folder -> (train table, test table or None, test remaining life or None)."""
    p = Path(path)
    layout = detect_layout(p)
    if layout == "cmapss_folder":
        trains = sorted(p.glob("train_*.txt"))
        if len(trains) != 1:
            found = ", ".join(t.name for t in trains) or "none"
            raise InputError(f"the folder holds {len(trains)} train_*.txt files ({found}); expected exactly one",
                             fix="pass one train_X.txt file with --data, or a folder holding one "
                                 "train_X.txt (with test_X.txt and RUL_X.txt beside it)", source=str(path))
        suffix = trains[0].name[len("train_"):]
        frame, fingerprint, notes = read_cmapss_text(trains[0], role="training units")
        train = prepare_histories(frame, source=str(trains[0]), fingerprint=fingerprint, notes=notes,
                                  strict_numeric=True)
        test_path, rul_path = p / f"test_{suffix}", p / f"RUL_{suffix}"
        if not (test_path.exists() and rul_path.exists()):
            missing = [q.name for q in (test_path, rul_path) if not q.exists()]
            train = _with_notes(train, [f"{', '.join(missing)} not found beside {trains[0].name}: the training "
                                        f"file's units are split into train / validation / test"])
            return train, None, None
        frame, fingerprint, notes = read_cmapss_text(test_path, role="test units")
        test = prepare_histories(frame, source=str(test_path), fingerprint=fingerprint, notes=notes,
                                 strict_numeric=True, expect_channels=(*train.settings, *train.sensors))
        remaining = read_remaining_life(rul_path, test.frame[UNIT].nunique())
        train = _with_notes(train, [f"test units from {test_path.name}, their true remaining life from "
                                    f"{rul_path.name}"])
        return train, test, remaining
    if layout == "cmapss":
        frame, fingerprint, notes = read_cmapss_text(p)
        return prepare_histories(frame, source=str(p), fingerprint=fingerprint, notes=notes,
                                 strict_numeric=True), None, None
    if layout == "histories_csv":
        frame, fingerprint, notes = read_histories_csv(p)
        return prepare_histories(frame, source=str(p), fingerprint=fingerprint, notes=notes), None, None
    raise InputError("not a history file: no unit and cycle columns, and not the C-MAPSS text layout",
                     fix="pass a C-MAPSS text file (26 space-separated numbers per line), a folder with "
                         "train_X.txt / test_X.txt / RUL_X.txt, or a CSV with unit and cycle columns",
                     source=str(path))


def _with_notes(table: HistoryTable, notes: list[str]) -> HistoryTable:
    return HistoryTable(frame=table.frame, settings=table.settings, sensors=table.sensors, groups=table.groups,
                        fingerprint=table.fingerprint, notes=(*table.notes, *notes), source=table.source)
