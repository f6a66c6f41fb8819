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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.sensor_read import (  # noqa: F401 - re-exported: the readers' old home
    CMAPSS_COLUMNS,
    CMAPSS_SENSORS,
    CMAPSS_SETTINGS,
    CYCLE,
    CYCLE_ALIASES,
    MAX_GROUP_VALUES,
    NUMERIC_SHARE,
    REGIME,
    SETTING_PREFIXES,
    UNIT,
    UNIT_ALIASES,
    HistoryTable,
    detect_layout,
    histories_from_frame,
    prepare_histories,
    read_cmapss_text,
    read_histories_csv,
    read_history_path,
    read_remaining_life,
)
from pipeline.data.sensor_windows import (  # noqa: F401 - re-exported: the windows' old home
    FORMAT,
    HOW_TO_USE,
    MAX_REGIMES,
    REGIME_GAP_MEDIANS,
    REGIME_GAP_SHARE,
    REGIME_MIN_SHARE,
    STD_FLOOR,
    SensorWindows,
    assign_regimes,
    build_windows,
    encode_windows,
    fit_regimes,
    fit_window_preprocessing,
    window_feature_names,
)
from pipeline.data.splitting import (
    class_balance,
    domain_data,
    partition_bounds,
    quote_list,
    small_groups,
    stratified_partition,
    stratified_sample,
)
from pipeline.domain import DataSource, DomainData, Split
from pipeline.errors import InputError

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
TRAIN_VALIDATION_FRACTIONS = (0.75, 0.25)   # with a separate test file
MIN_STRATUM_UNITS = 5

# (windows, labels, groups) of one split
_Piece = tuple[SensorWindows, np.ndarray, pd.DataFrame]


# --------------------------------------------------------------------------- splitting


def split_units(unit_strata: pd.Series, seed: int, fractions: Sequence[float]) -> tuple[list[np.ndarray], str]:
    """Units -> one array of units per split, stratified by `unit_strata` (index = unit).

    When tiny strata leave a split empty, all units are split together (at least one per split).
    """
    rng = np.random.default_rng([seed, 3])
    units = unit_strata.index.to_numpy()
    if len(units) < len(fractions):
        raise InputError(f"only {len(units)} units are long enough; {len(fractions)} are needed so that every split "
                         f"gets whole units", fix="use more units, or a shorter --window")
    parts = stratified_partition(unit_strata.to_numpy(), fractions, rng, shuffle_parts=False)
    if all(p.size for p in parts):
        return [np.asarray(list(units[p])) for p in parts], "stratified"
    members = rng.permutation(units)
    sizes = [max(1, int(s)) for s in np.diff(partition_bounds(len(members), fractions))]
    sizes[0] = len(members) - sum(sizes[1:])
    offsets = np.cumsum([0, *sizes])
    return ([np.asarray(list(members[a:b])) for a, b in zip(offsets[:-1], offsets[1:])],
            "not stratified (too few units per group)")


def _unit_strata(groups: pd.DataFrame, units: np.ndarray) -> tuple[pd.Series, str]:
    """Each unit's stratum: all group columns when every combination has MIN_STRATUM_UNITS units,
    else the first, else none; and how, for the notes."""
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
    """Indices of a subsample of `keep` windows, stratified by unit and label (in order of first appearance)."""
    strata = pd.Series(units).astype(str) + "|" + pd.Series(labels).astype(str)
    codes, _ = pd.factorize(strata)
    return stratified_sample(codes, keep, np.random.default_rng([seed, 5]))


# --------------------------------------------------------------------------- loader steps


def _windows_by_role(train: HistoryTable, test: HistoryTable | None, test_remaining_life: np.ndarray | None,
                     window: int, notes: list[str]) -> tuple[dict[str, SensorWindows], dict[str, pd.DataFrame]]:
    """The windows and their groups of the training file (and of the test file)."""
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
    return windows_of, groups_of


def _requested_groups(train: HistoryTable, sensitive_columns: Sequence[str]) -> tuple[list[str], bool]:
    """(the audit's group columns, whether 'regime' is derived from the settings): the file's text
    columns plus 'regime' (the file's own, else the settings cluster)."""
    group_columns = list(train.groups)
    derive_regime = REGIME not in group_columns
    available = group_columns + ([REGIME] if derive_regime else [])
    requested = list(dict.fromkeys(str(c) for c in sensitive_columns)) or available
    unknown = [c for c in requested if c not in available]
    if unknown:
        raise InputError(f"group column(s) {quote_list(unknown, 8)} not found; the groups these histories have are "
                         f"{quote_list(available, 8)}",
                         fix="pass --sensitive with some of those (text columns of a CSV, or 'regime', which is "
                             "derived from the operating settings when the file has no regime column)",
                         source=train.source)
    return requested, derive_regime


def _split_by_unit(windows: SensorWindows, labels: np.ndarray, groups: pd.DataFrame, test_piece: _Piece | None,
                   seed: int, notes: list[str]) -> dict[str, _Piece]:
    """Train / validation (/ test) pieces, every unit's windows in one split; the test file's
    windows are the test split when there is one."""
    strata, how = _unit_strata(groups, windows.units)
    fractions = SPLIT_FRACTIONS if test_piece is None else TRAIN_VALIDATION_FRACTIONS
    unit_parts, fallback = split_units(strata, seed, fractions)
    how = how if fallback == "stratified" else fallback
    names = ("train", "validation", "test") if test_piece is None else ("train", "validation")
    notes.append(f"units split {' / '.join(f'{f:.0%}' for f in fractions)} into {' / '.join(names)} "
                 f"({', '.join(f'{len(p)}' for p in unit_parts)} units), {how}; no unit is in two splits"
                 + ("" if test_piece is None else "; the test file's units are the test split"))
    index_of = {name: np.flatnonzero(np.isin(windows.units, part)) for name, part in zip(names, unit_parts)}
    pieces = {name: (windows.subset(idx), labels[idx], groups.iloc[idx].reset_index(drop=True))
              for name, idx in index_of.items()}
    if test_piece is not None:
        pieces["test"] = test_piece
    return pieces


def _subsample_pieces(pieces: dict[str, _Piece], max_rows: int, rows_before: int, seed: int,
                      notes: list[str]) -> None:
    """Every split keeps its share of `max_rows` windows, stratified by unit and label (in place)."""
    kept = 0
    for name, (w, y, g) in list(pieces.items()):
        share = int(round(max_rows * len(w) / rows_before))
        if share < len(w):
            chosen = _subsample(w.units, y, max(share, 2), seed)
            pieces[name] = (w.subset(chosen), y[chosen], g.iloc[chosen].reset_index(drop=True))
        kept += len(pieces[name][0])
    notes.append(f"kept a subsample of {kept} of {rows_before} windows (--max-rows {max_rows}), stratified by "
                 f"unit and label; every unit keeps its share")


def _fit_on_train_units(train: HistoryTable, train_units: set, *, window: int, horizon: int,
                        notes: list[str]) -> dict:
    """The windows spec, fitted on the training units' rows only."""
    train_rows = HistoryTable(frame=train.frame[train.frame[UNIT].isin(train_units)], settings=train.settings,
                              sensors=train.sensors, groups=train.groups, fingerprint=train.fingerprint,
                              notes=(), source=train.source)
    spec, spec_notes = fit_window_preprocessing(train_rows, window=window, horizon=horizon)
    notes.extend(spec_notes)
    return spec


def _window_splits(pieces: dict[str, _Piece], spec: dict, *, derive_regime: bool, requested: list[str],
                   horizon: int, source: str) -> list[Split]:
    """One `Split` per piece: 'regime' derived at each window's last cycle when needed; a split
    holding one class only is an error. A unit's windows are correlated: clusters = units."""
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
                                 "or longer run-to-failure histories", source=source)
        splits.append(Split(raw=w, labels=y.astype(np.int64),
                            groups=g[requested].astype(str).reset_index(drop=True),
                            clusters=np.asarray(w.units).astype(str)))
    return splits


def _history_source(train: HistoryTable, test: HistoryTable | None, test_remaining_life: np.ndarray | None, *,
                    window: int, horizon: int, kind: str, path: str | None, description: str | None,
                    rows: int, notes: list[str]) -> DataSource:
    units_total = train.frame[UNIT].nunique() + (test.frame[UNIT].nunique() if test is not None else 0)
    cycles_total = len(train.frame) + (len(test.frame) if test is not None else 0)
    describe = description or (f"{Path(path).name if path else 'histories'}: {units_total} units, "
                               f"{cycles_total} cycles")
    describe += f"; windows of {window} cycles labelled 'fails within {horizon} cycles'"
    fingerprint = train.fingerprint if test is None else hashlib.sha256(
        (train.fingerprint + test.fingerprint + json.dumps(
            None if test_remaining_life is None else [int(v) for v in test_remaining_life])).encode()).hexdigest()
    return DataSource(kind=kind, description=describe, path=path, fingerprint=fingerprint, rows=rows,
                      notes=tuple(notes))


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
    """Histories -> windows -> unit-wise train / validation / test `DomainData` (see the module docstring).

    The steps: cut windows, choose the groups, split by unit (before any subsampling, so the
    split does not depend on --max-rows), subsample, fit the spec on the training units,
    build the splits, note the small test groups, assemble.
    """
    if window < 2 or horizon < 1:
        raise InputError(f"window {window} and horizon {horizon}: the window needs at least 2 cycles and the "
                         f"horizon at least 1", fix="pass --window 2 or more and --horizon 1 or more")
    notes = list(train.notes)
    windows_of, groups_of = _windows_by_role(train, test, test_remaining_life, window, notes)
    requested, derive_regime = _requested_groups(train, sensitive_columns)
    labels_of = {role: (w.remaining_life <= horizon).astype(np.int64) for role, w in windows_of.items()}
    rows_before = len(windows_of["train"]) + (len(windows_of["test"]) if test is not None else 0)
    test_piece = None if test is None else (windows_of["test"], labels_of["test"], groups_of["test"])
    pieces = _split_by_unit(windows_of["train"], labels_of["train"], groups_of["train"], test_piece, seed, notes)
    if max_rows is not None and rows_before > max_rows:
        _subsample_pieces(pieces, max_rows, rows_before, seed, notes)
    spec = _fit_on_train_units(train, set(pieces["train"][0].units.tolist()), window=window, horizon=horizon,
                               notes=notes)
    spec["groups"] = requested
    splits = _window_splits(pieces, spec, derive_regime=derive_regime, requested=requested, horizon=horizon,
                            source=train.source)
    for column in requested:
        small = small_groups(splits[2].groups[column], min_group_size)
        if small:
            listed = ", ".join(f"{g!r} has {n} test windows" for g, n in small)
            notes.append(f"group column {column!r}: {listed}"
                         + f", fewer than --min-group-size {min_group_size}: the audit reports it as not measurable")

    feature_names, feature_groups = window_feature_names(spec["sensors"], window)
    data_source = _history_source(train, test, test_remaining_life, window=window, horizon=horizon, kind=kind,
                                  path=path, description=description, rows=rows_before, notes=notes)
    balance = class_balance(splits, positive_rate=float(np.concatenate([s.labels for s in splits]).mean()),
                            units=True)
    return domain_data(splits, preprocessing=spec, feature_names=feature_names, feature_groups=feature_groups,
                       sensitive_columns=requested, label_name=f"fails_within_{horizon}_cycles",
                       positive_class=f"failure within {horizon} cycles", source=data_source, balance=balance)
