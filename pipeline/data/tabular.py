"""The generic tabular loader: a CSV file (or a DataFrame) -> `DomainData`.

Used for the embedded default data and for any user CSV. Every decision it takes is
written, in plain words, into `DataSource.notes`; every bad input raises `InputError`
naming the file, the column or value, and how to fix it.

Reading a file
  * Bytes are decoded as UTF-8 with an optional byte-order mark (`utf-8-sig`); a UTF-16
    file (with its BOM) is decoded as such; a file that is not valid UTF-8 is read as
    Latin-1 (noted).
  * The separator is detected, not assumed: each of `,` `;` tab `|` is tried on the first
    64 KiB; a separator qualifies when the header splits into two or more fields and
    (nearly) every sampled row has as many fields. Comma wins when it qualifies;
    otherwise the qualifying separator giving the most columns is used and noted. When
    none qualifies (e.g. a space-separated file, which reads as one column) that is an
    error naming the file and the separator it seems to use. With `;` as separator,
    numbers written with a decimal comma ("12,5") are understood (noted).
  * Cells are stripped of surrounding spaces; empty cells and pandas' usual NA strings
    ("NA", "NaN", "null", ...) are missing.
  * Empty file, header without rows, missing file: errors.

Columns
  * A column is numeric when its dtype is numeric, or when at least 95 % of its non-missing
    text values parse as numbers (the rest become missing, noted). Banded text such as
    "26 to 30" or "more than 69000" does not parse, so it stays categorical.
  * Dropped, with a note: identifier-like columns (every value distinct and either whole
    numbers forming a consecutive run, like a row number or PolicyNumber, or whole
    numbers in a column whose name says id/number/key/index, or text with every value
    distinct over at least 20 rows); constant columns (one value, nothing missing);
    empty unnamed columns (what a trailing separator leaves).
  * A named column with no values at all is an error (drop it or fill it in).

Label
  Must hold exactly two distinct values. 0/1 stays as is; true/false, yes/no, y/n, t/f
  map the true/yes side to 1; any other pair maps the rarer value to 1 (ties: the value
  that sorts last), noted. Rows whose label is missing are dropped, noted.

Sensitive columns (the audit's groups)
  Must exist; they are not model features unless `use_sensitive_as_features=True`
  (noted either way). Text values are the groups; missing -> "(missing)". A numeric
  column with more than 10 distinct values is banded: an age-like column (its name
  holds the word "age") into 18-25, 26-35, 36-45, 46-55, 56-65, 66+ (the first band
  starts lower when the data hold ages under 18), where 0, negative or > 120 means
  unknown -> "unknown"; other numeric columns into quartile bands "[lo, hi]" / "(lo, hi]".

Rows and splits
  `max_rows` keeps a stratified subsample (label x first sensitive column) before
  splitting. The split is 60 / 20 / 20 train / validation / test, seeded, stratified on
  label x first sensitive column (label only when some such stratum has fewer than 5
  rows). Each split is in a seeded random order. Then every group of every sensitive
  column must have at least `min_group_size` rows in the test split, else an error.

Preprocessing (fitted on train only, JSON-able, format "edgeaudit.tabular.v1")
  Numeric: median imputation, a missing-indicator input when more than 1 % of train
  values are missing, then standardisation with the train mean / std (std 0 -> 1).
  Categorical: one-hot over the train vocabulary (the 50 most frequent values), with
  "(missing)" as a value and an "(other)" slot for anything unseen. `encode_tabular`
  applies only the spec, so raw user rows can be encoded anywhere (see "how_to_use").
"""


from __future__ import annotations

import json
import os
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.delimited_files import (  # noqa: F401 - re-exported: the reading rules' old home
    DELIMITER_NAMES,
    DELIMITERS,
    SNIFF_CHARS,
    detect_delimiter,
    frame_fingerprint,
    read_csv_file,
    refuse_binary,
)
from pipeline.data.leaks import leak_warning, likely_leaks
from pipeline.data.splitting import (
    SPLIT_FRACTIONS,
    class_balance,
    domain_data,
    merge_small_bands,
    merge_small_categories,
    label_group_strata,
    make_splits,
    quote_list,
    require_measurable_groups,
    split_by_cluster,
    stratified_partition,
    stratified_sample,
)
from pipeline.data.tabular_columns import (  # noqa: F401 - MISSING, UNKNOWN re-exported
    MISSING,
    UNKNOWN,
    band_order,
    binary_label,
    clean_columns,
    drop_empty_columns,
    drop_named_columns,
    category_series,
    category_text,
    column_kind,
    group_column,
    identifier_reason,
    require_column,
    strip_text,
    to_numeric,
)
from pipeline.data.tabular_preprocessing import (  # noqa: F401 - re-exported: the spec's old home
    FORMAT,
    HOW_TO_USE,
    MAX_CATEGORIES,
    OTHER,
    encode_tabular,
    feature_groups_of,
    fit_preprocessing,
)
from pipeline.domain import DataSource, DomainData
from pipeline.errors import InputError

MIN_CLASS_ROWS = 5               # rows of each label class needed to split
MIN_STRATUM_ROWS = 5


@dataclass
class _Rows:
    """The rows being loaded: the frame, its 0/1 labels, one group series per sensitive column
    (RangeIndex, aligned with the frame) and each row's unit (or None)."""

    frame: pd.DataFrame
    labels: np.ndarray
    groups: dict[str, pd.Series]
    clusters: np.ndarray | None
    # column -> its bands, lowest first, where the tool banded it (decided on every row, before any subsample)
    bands: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def subset(self, keep: np.ndarray) -> "_Rows":
        return _Rows(frame=self.frame.iloc[keep].reset_index(drop=True), labels=self.labels[keep],
                     groups={c: g.iloc[keep].reset_index(drop=True) for c, g in self.groups.items()},
                     clusters=None if self.clusters is None else self.clusters[keep], bands=self.bands)


# --------------------------------------------------------------------------- reading and checking


def _read(data: pd.DataFrame | str | os.PathLike, source_name: str | None, notes: list[str]
          ) -> tuple[pd.DataFrame, str, str, str | None, str]:
    """(frame, source, fingerprint, path or None, delimiter) of a DataFrame or a CSV path."""
    if isinstance(data, pd.DataFrame):
        source = source_name or "the data frame"
        frame = data.copy()
        frame.columns = [str(c) for c in frame.columns]
        if len(frame) == 0 or frame.shape[1] == 0:
            raise InputError("the data has no rows", fix="pass a table with one row per example", source=source)
        return frame, source, frame_fingerprint(data), None, ","
    frame, fingerprint, read_notes = read_csv_file(data)
    notes.extend(read_notes)
    return frame, str(data), fingerprint, str(data), frame.attrs.get("delimiter", ",")


def _check_roles(available: list[str], label_column: str | None, sensitive_columns: Sequence[str],
                 cluster_column: str | None, source: str) -> list[str]:
    """The sensitive columns (deduplicated) once the label, sensitive and cluster columns exist and differ."""
    if label_column is None:
        raise InputError(f"no label column given; the columns are {quote_list(available, 40)}",
                         fix="pass --label COLUMN naming the binary outcome to predict (e.g. --label is_fraud)",
                         source=source)
    require_column(label_column, role="label", option="--label", available=available, source=source)
    sensitive = list(dict.fromkeys(str(c) for c in sensitive_columns))
    if not sensitive:
        raise InputError(f"no sensitive column given; the columns are {quote_list(available, 40)}",
                         fix="pass --sensitive COLUMN (one or more, e.g. --sensitive sex age) naming the groups "
                             "to audit",
                         source=source)
    for column in sensitive:
        require_column(column, role="sensitive", option="--sensitive", available=available, source=source)
        if column == label_column:
            raise InputError(f"column {column!r} is both the label and a sensitive column",
                             fix="pass a different column with --sensitive", source=source)
    if cluster_column is not None:
        require_column(cluster_column, role="cluster", option="--cluster-column", available=available, source=source)
        if cluster_column == label_column or cluster_column in sensitive:
            raise InputError(f"column {cluster_column!r} is both the cluster column and the "
                             f"{'label' if cluster_column == label_column else 'a sensitive column'}",
                             fix="pass --cluster-column naming the unit of each row (e.g. a customer or patient id)",
                             source=source)
    return sensitive


def _read_rows(frame: pd.DataFrame, label_column: str, sensitive: list[str], cluster_column: str | None,
               source: str, notes: list[str], positive_label: str | None = None) -> tuple[_Rows, str]:
    """Rows without a label dropped; labels, units and groups (banded on all rows, so band names do
    not depend on a subsample). Returns the rows and the label value meaning 1."""
    label_missing = frame[label_column].isna().to_numpy(dtype=bool)
    if label_missing.any():
        frame = frame.loc[~label_missing].reset_index(drop=True)
        notes.append(f"dropped {int(label_missing.sum())} rows whose label {label_column!r} is missing")
    else:
        frame = frame.reset_index(drop=True)
    labels, positive_value, label_note = binary_label(frame[label_column], label_column, source, positive_label)
    notes.append(label_note)
    clusters = None
    if cluster_column is not None:
        missing = frame[cluster_column].isna()
        if missing.any():
            raise InputError(f"cluster column {cluster_column!r} is empty in {int(missing.sum())} of {len(frame)} "
                             f"rows (the first at data row {int(np.flatnonzero(missing)[0]) + 1})",
                             fix="fill in every row's unit (customer, patient, machine), or drop those rows",
                             source=source)
        clusters = category_series(frame[cluster_column]).astype(str).to_numpy(dtype=object)
    groups, bands = {}, {}
    for column in sensitive:
        groups[column], group_notes = group_column(frame[column], column)
        notes.extend(group_notes)
        order = band_order(frame[column], column, groups[column])
        if order is not None:
            bands[column] = order
    return _Rows(frame=frame, labels=labels, groups=groups, clusters=clusters, bands=bands), positive_value


def _heal_groups(rows: _Rows, test_index: np.ndarray, min_group_size: int, merge_small_groups: bool,
                 notes: list[str]) -> _Rows:
    """Groups the tool made never stop a run: a band too small in the test split merges with its
    neighbour. The user's own categories (and a banded column's "unknown" / "(missing)") do so only
    with --merge-small-groups (into "other")."""
    groups = dict(rows.groups)
    for column, values in groups.items():
        merged: list[str] = []
        if column in rows.bands:
            values, merged = merge_small_bands(values, test_index, min_group_size, rows.bands[column], column)
        if merge_small_groups:
            values, more = merge_small_categories(values, test_index, min_group_size, column)
            merged += more
        groups[column] = values
        notes.extend(merged)
    return dataclasses.replace(rows, groups=groups)


def _unmeasured_tool_groups(rows: _Rows, test_index: np.ndarray, min_group_size: int,
                            notes: list[str]) -> dict[str, list[str]]:
    """A banded column's "unknown" / "(missing)" group is the tool's too: when too small it does not stop
    the run (merging it into an age band would misplace people); the audit reports it as not
    measurable and leaves it out of the disparities. Returns column -> such groups, noted."""
    exempt: dict[str, list[str]] = {}
    for column in rows.bands:
        counts = rows.groups[column].iloc[test_index].value_counts()
        small = [group for group in (UNKNOWN, MISSING) if 0 < counts.get(group, 0) < min_group_size]
        if small:
            exempt[column] = small
            notes.append(f"group column {column!r}: " + ", ".join(f"{g!r} has {int(counts[g])} test rows" for g in small)
                         + f", fewer than --min-group-size {min_group_size}: reported but not measured, and left out "
                           "of the disparities")
    return exempt


def _identifier_columns(frame: pd.DataFrame, skip: set[str], delimiter: str) -> dict[str, str]:
    """Identifier-like column -> why, judged on every row: a subsample breaks a consecutive run."""
    identifiers = {}
    for column in frame.columns:
        if column not in skip:
            col_kind, decimal, _ = column_kind(frame[column], decimal_comma=(delimiter == ";"))
            reason = identifier_reason(column, frame[column], col_kind, decimal)
            if reason:
                identifiers[column] = reason
    return identifiers


def _require_both_classes(labels: np.ndarray, label_column: str, positive_value: str, source: str) -> None:
    positives = int(labels.sum())
    for value, count in ((1, positives), (0, labels.size - positives)):
        if count < MIN_CLASS_ROWS:
            raise InputError(
                f"label column {label_column!r} has only {count} rows of class {value} "
                f"({positive_value if value == 1 else 'the other value'}); at least {MIN_CLASS_ROWS} are needed "
                f"to split into train, validation and test",
                fix="use more rows (raise or drop --max-rows) or a file with more examples of both classes",
                source=source)


# --------------------------------------------------------------------------- features


def _feature_kinds(frame: pd.DataFrame, candidates: list[str], identifiers: dict[str, str], delimiter: str,
                   notes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(column -> 'numeric' | 'categorical', numeric column -> decimal separator) of the feature columns.

    Identifier-like and constant columns are dropped (noted); numeric columns read as text
    are parsed in `frame`, in place.
    """
    kinds: dict[str, str] = {}
    decimals: dict[str, str] = {}
    for column in candidates:
        series = frame[column]
        if column in identifiers:
            notes.append(f"dropped identifier-like column {column!r}: {identifiers[column]}")
            continue
        col_kind, decimal, unparsed = column_kind(series, decimal_comma=(delimiter == ";"))
        present = series[series.notna()]
        if present.size == len(series) and category_series(present).nunique() == 1:
            notes.append(f"dropped constant column {column!r}: every row holds {category_text(present.iloc[0])!r}")
            continue
        kinds[column] = col_kind
        if col_kind == "numeric":
            decimals[column] = decimal
            if decimal == ",":
                notes.append(f"column {column!r}: numbers with a decimal comma")
            if unparsed:
                examples = category_series(present[to_numeric(present, decimal).isna()]).unique()[:3]
                notes.append(f"column {column!r} is numeric; {unparsed} values that are not numbers "
                             f"({quote_list(list(examples), 3)}) are treated as missing")
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                frame[column] = to_numeric(series, decimal)
    return kinds, decimals


def _choose_features(rows: _Rows, label_column: str, sensitive: list[str], cluster_column: str | None,
                     identifiers: dict[str, str], use_sensitive_as_features: bool, delimiter: str, source: str,
                     notes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The feature columns' kinds and decimal separators; InputError when none is left."""
    frame = rows.frame
    if use_sensitive_as_features:
        notes.append(f"sensitive columns {quote_list(sensitive)} are also model features "
                     f"(use_sensitive_as_features)")
        candidates = [c for c in frame.columns if c != label_column and c != cluster_column]
    else:
        notes.append(f"sensitive columns {quote_list(sensitive)} are used for the audit only, "
                     f"not as model features")
        candidates = [c for c in frame.columns if c != label_column and c not in sensitive and c != cluster_column]
    kinds, decimals = _feature_kinds(frame, candidates, identifiers, delimiter, notes)
    if not kinds:
        raise InputError(
            f"no feature columns are left besides the label {label_column!r} and the sensitive columns "
            f"{quote_list(sensitive)}",
            fix="add feature columns to the file (the sensitive columns are not used as features)",
            source=source)
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    notes.append(f"{len(numeric)} numeric feature columns ({quote_list(numeric, 40)}), "
                 f"{len(categorical)} categorical ({quote_list(categorical, 40)})")
    return kinds, decimals


def _note_preprocessing(spec: dict, notes: list[str]) -> None:
    for column in spec["columns"]:
        if column["kind"] == "numeric" and column["missing_indicator"]:
            notes.append(f"column {column['name']!r}: {column['train_missing_share']:.1%} missing in train -> "
                         f"median imputation plus a missing-value indicator input")
        elif column["kind"] == "numeric" and column["train_missing_share"] > 0:
            notes.append(f"column {column['name']!r}: {column['train_missing_share']:.1%} missing in train -> "
                         f"median imputation")
        elif column["kind"] == "categorical" and column["categories_in_train"] > len(column["categories"]):
            notes.append(f"column {column['name']!r}: {column['categories_in_train']} values in train; kept the "
                         f"{len(column['categories'])} most frequent, the rest read as {OTHER!r}")
    notes.append(f"preprocessing fitted on the train split only: {spec['n_features']} encoded inputs")


# --------------------------------------------------------------------------- subsample and split


def _subsample(rows: _Rows, max_rows: int, seed: int, first_column: str, notes: list[str]) -> _Rows:
    """A stratified subsample (label x first sensitive column) of at most `max_rows` rows."""
    strata = label_group_strata(rows.labels, rows.groups[first_column])
    keep = stratified_sample(strata, int(max_rows), np.random.default_rng([seed, 1]))
    notes.append(f"kept a stratified subsample of {keep.size} of {len(rows.frame)} rows (--max-rows {max_rows}), "
                 f"stratified on label x {first_column!r}")
    return rows.subset(keep)


def _split(rows: _Rows, seed: int, first_column: str, cluster_column: str | None, source: str,
           notes: list[str]) -> list[np.ndarray]:
    """60 / 20 / 20 train / validation / test indices: stratified on label x first sensitive column
    (the label alone when some such stratum has fewer than MIN_STRATUM_ROWS rows), or by whole units."""
    labels, clusters = rows.labels, rows.clusters
    strata = label_group_strata(labels, rows.groups[first_column])
    _, stratum_sizes = np.unique(strata, return_counts=True)
    if stratum_sizes.min() >= MIN_STRATUM_ROWS:
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified on label x {first_column!r}")
    else:
        strata = label_group_strata(labels, None)
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified on the label (some "
                     f"label x {first_column!r} combinations have fewer than {MIN_STRATUM_ROWS} rows)")
    if clusters is None:
        return stratified_partition(strata, SPLIT_FRACTIONS, np.random.default_rng([seed, 2]))
    parts = split_by_cluster(clusters, labels, np.random.default_rng([seed, 2]))
    notes[-1] = notes[-1].replace("split 60/20/20", "split 60/20/20 by unit")
    sizes = pd.Series(clusters).value_counts()
    notes.append(f"rows grouped into {sizes.size:,} units by {cluster_column!r} (1 to {int(sizes.max()):,} rows "
                 f"each): a unit's rows stay in one split, are not a feature, and the audit resamples "
                 f"whole units")
    for name, index in zip(("train", "validation", "test"), parts):
        held = int(labels[index].sum())
        if held == 0 or held == index.size:
            raise InputError(
                f"splitting by {cluster_column!r} leaves the {name} split with one class only "
                f"({index.size} rows from {np.unique(clusters[index]).size} units)",
                fix="use data with more units holding each class, or leave out --cluster-column",
                source=source)
    return parts


# --------------------------------------------------------------------------- the loader


def load_tabular(
    data: pd.DataFrame | str | os.PathLike,
    *,
    label_column: str | None,
    sensitive_columns: Sequence[str],
    seed: int = 0,
    min_group_size: int = 20,
    max_rows: int | None = None,
    use_sensitive_as_features: bool = False,
    positive_class: str | None = None,
    kind: str | None = None,
    description: str | None = None,
    source_name: str | None = None,
    max_categories: int = MAX_CATEGORIES,
    cluster_column: str | None = None,
    positive_label: str | None = None,
    drop_columns: Sequence[str] = (),
    merge_small_groups: bool = False,
) -> DomainData:
    """Load a CSV path or a DataFrame into train / validation / test `DomainData`.

    data: a CSV path, or a DataFrame (generated data; source_name names it in errors).
    label_column: the outcome; positive_label (--positive-label) names its value meaning 1, every
    other 0, else it must hold two values. sensitive_columns: the audit's groups (at least one),
    each measurable (min_group_size test rows): bands the tool made merge with a neighbour when
    too small, the user's categories only with merge_small_groups (into "other"). cluster_column:
    each row's unit, kept whole in one split and resampled whole by the audit. drop_columns
    (--drop) are removed first; a column with no values is dropped. positive_class / kind /
    description: for humans and `DataSource`. Every decision is noted; input columns that alone
    separate the label on train are named as likely leaks (DataSource.warnings).
    """
    notes: list[str] = []
    frame, source, fingerprint, path, delimiter = _read(data, source_name, notes)
    kind = kind or ("generated" if path is None else "file")
    notes.insert(0, f"read {len(frame)} rows and {frame.shape[1]} columns")
    frame = clean_columns(frame, notes)
    for role, names in (("label column", [label_column]), ("sensitive column", list(sensitive_columns)),
                        ("cluster column", [cluster_column])):
        dropped = [name for name in names if name is not None and name in drop_columns]
        if dropped:
            raise InputError(f"--drop names the {role} {dropped[0]!r}", fix=f"leave {dropped[0]!r} out of --drop",
                             source=source)
    frame = drop_named_columns(frame, drop_columns, source, notes)
    sensitive = _check_roles(list(frame.columns), label_column, sensitive_columns, cluster_column, source)
    frame = drop_empty_columns(frame, label_column, sensitive, source, notes, cluster_column)
    rows, positive_value = _read_rows(frame, label_column, sensitive, cluster_column, source, notes, positive_label)
    identifiers = _identifier_columns(rows.frame, {label_column, *sensitive, cluster_column}, delimiter)
    if max_rows is not None and len(rows.frame) > max_rows:
        rows = _subsample(rows, max_rows, seed, sensitive[0], notes)
    _require_both_classes(rows.labels, label_column, positive_value, source)
    kinds, decimals = _choose_features(rows, label_column, sensitive, cluster_column, identifiers,
                                       use_sensitive_as_features, delimiter, source, notes)
    parts = _split(rows, seed, sensitive[0], cluster_column, source, notes)
    rows = _heal_groups(rows, parts[2], min_group_size, merge_small_groups, notes)
    warnings = tuple(leak_warning(column, auc) for column, auc in likely_leaks(rows.frame, rows.labels, kinds, parts[0]))
    require_measurable_groups(
        rows.groups, parts[2], min_group_size, column_role="sensitive column", unit="rows",
        remedy=lambda group: f"pass --merge-small-groups to merge it into 'other', merge group {group!r} into "
                             f"a neighbouring group or drop its rows in the file, use more rows",
        max_rows=max_rows, source=source, exempt=_unmeasured_tool_groups(rows, parts[2], min_group_size, notes))

    raw = rows.frame[list(kinds)]
    splits = make_splits(parts, raw_of=lambda index: raw.iloc[index].reset_index(drop=True), labels=rows.labels,
                         groups=rows.groups, clusters=rows.clusters)
    positive_text = positive_class or f"{label_column} = {positive_value}"
    spec = fit_preprocessing(
        splits[0].raw, kinds, decimals=decimals, max_categories=max_categories,
        extra={
            "label": {"column": label_column, "positive_value": positive_value, "positive_class": positive_text},
            "sensitive_columns": sensitive,
            "sensitive_used_as_features": bool(use_sensitive_as_features),
        })
    _note_preprocessing(spec, notes)
    json.dumps(spec)  # must be JSON-able

    count = len(rows.frame)
    describe = description or (
        f"{Path(path).name}: {count} rows, label {label_column!r}" if path else f"{count} rows, label {label_column!r}")
    data_source = DataSource(kind=kind, description=describe, path=path, fingerprint=fingerprint, rows=count,
                             notes=tuple(notes), warnings=warnings)
    balance = class_balance(splits, positive_rate=float(rows.labels.mean()), positives=int(rows.labels.sum()))
    return domain_data(splits, preprocessing=spec, feature_names=spec["feature_names"],
                       feature_groups=feature_groups_of(spec),
                       sensitive_columns=sensitive, label_name=label_column, positive_class=positive_text,
                       source=data_source, balance=balance)
