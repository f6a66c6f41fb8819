"""Reading run-to-failure sensor histories and cleaning them into a `HistoryTable`.

The layouts (`detect_layout`): the C-MAPSS text layout, a C-MAPSS folder (train / test /
RUL files), a histories CSV with unit and cycle columns. `prepare_histories` applies the
cleaning rules (see "Cleaning" in `pipeline.data.sensor_histories`) as named steps.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.delimited_files import frame_fingerprint, read_csv_file, refuse_binary
from pipeline.data.splitting import quote_list
from pipeline.errors import InputError

UNIT, CYCLE, REGIME = "unit", "cycle", "regime"
CMAPSS_SETTINGS = ("setting_1", "setting_2", "setting_3")
CMAPSS_SENSORS = tuple(f"sensor_{i}" for i in range(1, 22))
CMAPSS_COLUMNS = (UNIT, CYCLE, *CMAPSS_SETTINGS, *CMAPSS_SENSORS)
UNIT_ALIASES = ("unit", "unit_id", "unit_number", "machine_id", "engine_id")
CYCLE_ALIASES = ("cycle", "cycles", "time_in_cycles")
SETTING_PREFIXES = ("setting", "op_setting")
NUMERIC_SHARE = 0.95           # share of values that must parse for a column to be numeric
MAX_GROUP_VALUES = 20          # a text column with more distinct values is not a group


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


def _unit_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


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
            raise InputError(f"no {target} column; the columns are {quote_list(list(frame.columns), 30)}",
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


def _check_units_and_cycles(frame: pd.DataFrame, lines: np.ndarray, where: str, source: str) -> None:
    """Every row has a unit and a whole-number cycle; units become text, cycles int64 (in place)."""
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


def _classify_columns(frame: pd.DataFrame, lines: np.ndarray, where: str, strict_numeric: bool, source: str,
                      notes: list[str]) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    """(frame, settings, sensors, groups): numeric columns parsed (settings by their name, the
    others sensors), text columns with few values kept as groups, empty columns dropped."""
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
                    f"(e.g. {quote_list(list(examples), 3)})",
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
                    f"column {column!r} holds text ({quote_list(list(examples), 3)}) in {1 - share:.0%} of its "
                    f"rows and {distinct} distinct values: it is neither a sensor (numbers) nor a group "
                    f"(a few values such as a make)",
                    fix=f"fix the readings of {column!r} so they are numbers, or delete the column", source=source)
            frame[column] = values.where(series.notna() & (values != ""), "(missing)")
            groups.append(column)
    return frame, settings, sensors, groups


def _sort_rows(frame: pd.DataFrame, lines: np.ndarray, where: str, notes: list[str]
               ) -> tuple[pd.DataFrame, np.ndarray]:
    """Units by number (or by name when they are not all numbers), cycles ascending: the table,
    and so the split, does not depend on the order of the rows in the file."""
    names = list(dict.fromkeys(frame[UNIT]))
    numeric = all(_is_number(u) for u in names)
    order_of_unit = {u: i for i, u in enumerate(sorted(names, key=float if numeric else str))}
    unit_rank = frame[UNIT].map(order_of_unit).to_numpy()
    cycle_values = frame[CYCLE].to_numpy()
    sort = np.lexsort((cycle_values, unit_rank))
    if np.array_equal(sort, np.arange(len(frame))):
        return frame.reset_index(drop=True), lines
    backwards = np.flatnonzero((np.diff(unit_rank) == 0) & (np.diff(cycle_values) < 0))
    detail = ""
    if backwards.size:
        i = backwards[0]
        detail = (f" (e.g. unit {frame[UNIT].iloc[i]}: cycle {cycle_values[i + 1]} on {where} {lines[i + 1]} "
                  f"after cycle {cycle_values[i]})")
    notes.append(f"rows were not in cycle order within each unit{detail}; sorted by unit and cycle")
    return frame.iloc[sort].reset_index(drop=True), lines[sort]


def _drop_repeats(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The first row of each repeated (unit, cycle) pair (noted, with how many repeats disagreed)."""
    repeated = frame.duplicated([UNIT, CYCLE], keep="first").to_numpy()
    if not repeated.any():
        return frame
    keys = frame.loc[repeated, [UNIT, CYCLE]]
    conflicting = int((~frame.duplicated(keep="first").to_numpy() & repeated).sum())
    notes.append(f"{int(repeated.sum())} rows repeat a (unit, cycle) pair seen before (e.g. unit "
                 f"{keys.iloc[0][UNIT]}, cycle {keys.iloc[0][CYCLE]}); kept the first row of each pair "
                 f"({conflicting} of the repeats had different readings)")
    return frame.loc[~repeated].reset_index(drop=True)


def _fill_missing(frame: pd.DataFrame, channels: list[str], notes: list[str]) -> None:
    """Missing readings filled with the unit's previous reading (next at a unit's start, the
    column median where a unit has none), in place, noted."""
    missing = frame[channels].isna()
    if not missing.to_numpy().any():
        return
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
    _check_units_and_cycles(frame, lines, where, source)
    frame, settings, sensors, groups = _classify_columns(frame, lines, where, strict_numeric, source, notes)
    if expect_channels is not None:
        absent = [c for c in expect_channels if c not in settings and c not in sensors]
        if absent:
            raise InputError(f"sensor column(s) {quote_list(absent, 8)} of the training data are missing",
                             fix="give this file the same setting and sensor columns as the training file",
                             source=source)
    if not sensors:
        raise InputError("no sensor columns (numeric columns besides unit, cycle and settings)",
                         fix="add the sensor readings, one numeric column per sensor", source=source)
    frame, lines = _sort_rows(frame, lines, where, notes)
    frame = _drop_repeats(frame, notes)
    step = frame.groupby(UNIT, sort=False)[CYCLE].diff()
    gap_units = frame.loc[step > 1, UNIT].unique()
    if gap_units.size:
        notes.append(f"{gap_units.size} units have gaps in their cycle numbers (e.g. unit {gap_units[0]}); "
                     f"windows take consecutive recorded rows and labels count real cycles")
    _fill_missing(frame, settings + sensors, notes)
    return HistoryTable(frame=frame, settings=tuple(settings), sensors=tuple(sensors), groups=tuple(groups),
                        fingerprint=fingerprint, notes=tuple(notes), source=source)


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
