"""Tabular cells and columns: parsing, column kinds, identifiers, the binary label, audit groups.

The rules every tabular table follows (see `pipeline.data.tabular` for the whole story):
a column is numeric when at least 95 % of its text values parse as numbers; identifier-like
columns are recognised (`identifier_reason`); the label must hold exactly two values
(`binary_label`); a sensitive column becomes one text group per row, a continuous one
banded by age or by quartiles (`group_column`). The image loader's metadata join uses the
same label and group rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.splitting import quote_list
from pipeline.errors import InputError

MISSING = "(missing)"
UNKNOWN = "unknown"
NUMERIC_PARSE_SHARE = 0.95       # share of text values that must parse for a column to be numeric
MAX_GROUP_VALUES = 10            # a numeric sensitive column with more distinct values is banded
AGE_MIN_VALUES = 3               # an age column with more distinct values is banded too
MIN_IDENTIFIER_ROWS = 20
AGE_BAND_UPPER = (25, 35, 45, 55, 65)
AGE_MAX = 120

_TRUE_WORDS = {"1", "true", "yes", "y", "t"}
_BOOLEAN_PAIRS = ({"0", "1"}, {"false", "true"}, {"no", "yes"}, {"n", "y"}, {"f", "t"})
_ID_TOKENS = {"id", "ids", "number", "num", "no", "nr", "key", "index", "idx", "uuid", "guid"}


# --------------------------------------------------------------------------- cells


def require_column(column: str, *, role: str, option: str, available: list[str], source: str) -> None:
    """InputError naming the missing column, the columns there are, and the closest spelling."""
    if column in available:
        return
    hint = _closest(column, available)
    raise InputError(
        f"{role} column {column!r} not found; the columns are {quote_list(available, 40)}",
        fix=(f"did you mean {option} {hint!r}? (names are case-sensitive)" if hint
             else f"pass {option} with a column from the list, spelled exactly"),
        source=source)


def _closest(name: str, columns: Sequence[str]) -> str | None:
    lowered = {c.lower().strip(): c for c in columns}
    return lowered.get(name.lower().strip())


def _fmt(x: float) -> str:
    return f"{x:g}" if not float(x).is_integer() else str(int(x))


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def category_text(value: Any) -> str:
    """The text a categorical cell reads as (see the spec's HOW_TO_USE in `tabular_preprocessing`)."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text if text else MISSING


def category_series(series: pd.Series) -> pd.Series:
    """`category_text` of every cell (vectorised for text and whole-number columns)."""
    if isinstance(series.dtype, pd.StringDtype):
        text = series.str.strip()
        return text.where(text.notna() & (text != ""), MISSING).astype(object)
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(str).astype(object).where(series.notna(), MISSING)
    return pd.Series([category_text(v) for v in series.tolist()], index=series.index, dtype=object)


def strip_text(series: pd.Series) -> pd.Series:
    """Text cells stripped of surrounding spaces, empty text -> missing; other cells as they are."""
    if isinstance(series.dtype, pd.StringDtype):
        text = series.str.strip()
        return text.where(text != "")
    if series.dtype == object:
        return series.map(lambda v: (v.strip() or np.nan) if isinstance(v, str) else v)
    return series


def to_numeric(series: pd.Series, decimal: str = ".") -> pd.Series:
    """Numbers, with NaN for missing / unparseable / infinite values."""
    if pd.api.types.is_bool_dtype(series):
        values = series.astype(float)
    elif pd.api.types.is_numeric_dtype(series):
        values = series.astype(float)
    else:
        text = strip_text(series)
        if decimal == ",":
            if isinstance(text.dtype, pd.StringDtype):
                text = text.str.replace(",", ".", regex=False)
            else:
                text = text.map(lambda v: v.replace(",", ".") if isinstance(v, str) else v)
        values = pd.to_numeric(text, errors="coerce").astype(float)
    return values.where(np.isfinite(values))


def name_tokens(name: str) -> list[str]:
    """The lower-case words of a column name: "AgeOfPolicyHolder" and "age_of_policy" -> age, of, ..."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _is_age_like(name: str) -> bool:
    return "age" in name_tokens(name)


# --------------------------------------------------------------------------- label and groups


def binary_label(series: pd.Series, column: str, source: str, positive_label: str | None = None
                 ) -> tuple[np.ndarray, str, str]:
    """0/1 labels (rows with a missing label already removed), the value meaning 1, a note.
    positive_label (--positive-label): that value -> 1, every other -> 0, for any number of values."""
    numbers = to_numeric(series)
    numeric = bool(numbers.notna().all() and not pd.api.types.is_bool_dtype(series))
    texts = category_series(numbers) if numeric else category_series(series)  # "1.0" and "1": one label
    if positive_label is not None:
        from pipeline.data.labels import one_vs_rest

        wanted = str(positive_label)
        as_number = to_numeric(pd.Series([wanted]))
        if numeric and as_number.notna().all():
            wanted = category_series(as_number).iloc[0]  # "1" names 1.0 as well
        return one_vs_rest(texts.tolist(), wanted, what=f"label column {column!r}", source=source)
    counts = texts.value_counts()
    values = sorted(counts.index.tolist(), key=lambda v: (-counts[v], v))
    if len(values) > 2:
        shown = ", ".join(f"{v!r} ({counts[v]} rows)" for v in values[:8])
        more = f", ... ({len(values) - 8} more)" if len(values) > 8 else ""
        raise InputError(
            f"label column {column!r} has {len(values)} distinct values ({shown}{more}); "
            f"expected exactly two (e.g. 0/1, yes/no)",
            fix=f"pass a binary column with --label, or map the values of {column!r} to 0 and 1 "
                f"(1 = the outcome to detect) in the file",
            source=source)
    if len(values) < 2:
        raise InputError(
            f"label column {column!r} holds only one value ({values[0]!r}); a classifier needs both classes",
            fix=f"use a file whose {column!r} column holds both classes (e.g. 0 and 1), or pass another --label",
            source=source)
    lowered = {v.lower() for v in values}
    if lowered in _BOOLEAN_PAIRS:
        positive = next(v for v in values if v.lower() in _TRUE_WORDS)
        if lowered == {"0", "1"}:
            note = f"label {column!r}: 0/1, 1 = positive"
        else:
            note = f"label {column!r}: {positive!r} -> 1, the other value -> 0"
    else:
        a, b = values  # a is the more frequent (ties: alphabetical first)
        if counts[a] == counts[b]:
            positive = max(a, b)
            why = "both values are equally frequent, so the one sorting last"
        else:
            positive = b
            why = "the rarer value"
        note = (f"label {column!r} holds {a!r} ({counts[a]} rows) and {b!r} ({counts[b]} rows); "
                f"{positive!r} ({why}) -> 1")
    labels = (texts == positive).to_numpy(dtype=np.int64)
    return labels, positive, note


def _age_bands(values: pd.Series, missing: pd.Series, column: str) -> tuple[pd.Series, list[str]]:
    valid = values.notna() & (values > 0) & (values <= AGE_MAX)
    youngest = int(math.floor(values[valid].min())) if valid.any() else 18
    lower = min(18, youngest)
    edges = [lower - 1, *AGE_BAND_UPPER]
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        labels.append(f"{lo + 1}-{hi}")
    labels.append(f"{AGE_BAND_UPPER[-1] + 1}+")
    out = pd.Series(UNKNOWN, index=values.index, dtype=object)
    floors = np.floor(values.where(valid, 0.0).to_numpy())
    band = np.searchsorted(np.asarray(AGE_BAND_UPPER, dtype=float), floors, side="left")
    out[valid.to_numpy()] = np.asarray(labels, dtype=object)[band[valid.to_numpy()]]
    out[missing.to_numpy()] = MISSING
    zero = int((values == 0).sum())
    odd = int((~valid & ~missing).sum()) - zero
    notes = [f"sensitive column {column!r} is a continuous age: banded into {', '.join(labels)}"]
    if lower < 18:
        under = int((valid & (values < 18)).sum())
        notes.append(f"sensitive column {column!r}: {under} rows aged under 18 fall in band {labels[0]!r}")
    if zero:
        notes.append(f"sensitive column {column!r}: {zero} rows with value 0 read as an unknown age "
                     f"-> group {UNKNOWN!r}")
    if odd:
        notes.append(f"sensitive column {column!r}: {odd} rows with a negative age or one above {AGE_MAX} "
                     f"read as unknown -> group {UNKNOWN!r}")
    return out, notes


def _quantile_bands(values: pd.Series, missing: pd.Series, column: str) -> tuple[pd.Series, list[str]]:
    present = values[~missing]
    edges = np.unique(np.quantile(present.to_numpy(), [0.0, 0.25, 0.5, 0.75, 1.0]))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0]])
    labels = [f"[{_fmt(edges[0])}, {_fmt(edges[1])}]"]
    labels += [f"({_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(edges[1:-1], edges[2:])]
    band = np.searchsorted(edges[1:-1], present.to_numpy(), side="left")
    out = pd.Series(MISSING, index=values.index, dtype=object)
    out[~missing.to_numpy()] = np.asarray(labels, dtype=object)[band]
    return out, [f"sensitive column {column!r} is continuous: banded into quartiles {', '.join(labels)}"]


def _banded(series: pd.Series, column: str) -> bool:
    """Whether group_column bands this column: numeric with more than MAX_GROUP_VALUES values, or an
    age with more than AGE_MIN_VALUES (ages 30, 40, 45, ... are bands to be, not groups)."""
    numbers = to_numeric(series)
    missing = strip_text(series).isna()
    present = int((~missing).sum())
    numeric = present > 0 and (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
                               or numbers.notna().sum() >= NUMERIC_PARSE_SHARE * present)
    distinct = numbers[~missing].nunique() if numeric else 0
    return bool(numeric and (distinct > MAX_GROUP_VALUES or (_is_age_like(column) and distinct > AGE_MIN_VALUES)))


def band_order(series: pd.Series, column: str, groups: pd.Series) -> list[str] | None:
    """The bands group_column made of `series` (its result `groups`), lowest first; None when it kept
    the column's own categories (those are the user's groups, not the tool's)."""
    if not _banded(series, column):
        return None
    from pipeline.data.splitting import band_bounds

    names = [name for name in pd.unique(groups) if name not in (MISSING, UNKNOWN)]

    def lower(name: str) -> float:
        bounds = band_bounds(name)
        return float(bounds[1]) if bounds else math.inf
    return sorted(names, key=lower)


def group_column(series: pd.Series, column: str) -> tuple[pd.Series, list[str]]:
    """One string group per row, banding continuous columns (and ages, see `_banded`)."""
    numbers = to_numeric(series)
    missing = strip_text(series).isna()
    notes: list[str] = []
    if _banded(series, column):
        # a few unparseable values in a numeric column count as missing
        missing = missing | numbers.isna()
        if _is_age_like(column):
            out, notes = _age_bands(numbers, missing, column)
        else:
            out, notes = _quantile_bands(numbers, missing, column)
    else:
        out = category_series(series)
    n_missing = int((out == MISSING).sum())
    if n_missing:
        notes.append(f"sensitive column {column!r}: {n_missing} rows without a value -> group {MISSING!r}")
    return out.astype(str).reset_index(drop=True), notes


# --------------------------------------------------------------------------- columns


def column_kind(series: pd.Series, decimal_comma: bool) -> tuple[str, str, int]:
    """('numeric' | 'categorical', decimal separator, count of text values that did not parse)."""
    if pd.api.types.is_bool_dtype(series):
        return "categorical", ".", 0
    if pd.api.types.is_numeric_dtype(series):
        return "numeric", ".", 0
    present = series[series.notna()]
    if len(present) == 0:
        return "categorical", ".", 0
    for decimal in ((".", ",") if decimal_comma else (".",)):
        parsed = int(to_numeric(present, decimal).notna().sum())
        if parsed >= NUMERIC_PARSE_SHARE * len(present):
            return "numeric", decimal, len(present) - parsed
    return "categorical", ".", 0


def identifier_reason(name: str, series: pd.Series, kind: str, decimal: str) -> str | None:
    """Why a column looks like a row identifier (to be dropped), or None when it does not."""
    present = series[series.notna()]
    n = len(present)
    if n < MIN_IDENTIFIER_ROWS or n != len(series):
        return None
    if kind == "numeric":
        numbers = to_numeric(present, decimal)
        if numbers.isna().any() or not np.all(np.mod(numbers.to_numpy(), 1.0) == 0.0):
            return None
        if numbers.nunique() != n:
            return None
        lo, hi = numbers.min(), numbers.max()
        if hi - lo + 1 == n:
            return f"its values are the distinct whole numbers {_fmt(lo)}..{_fmt(hi)}, one per row"
        if _ID_TOKENS & set(name_tokens(name)):
            return "its values are distinct whole numbers and its name says it is an identifier"
        return None
    texts = category_series(present)
    if texts.nunique() == n:
        return f"its {n} values are all different text, so they cannot generalise"
    return None


# --------------------------------------------------------------------------- cleaning a table


def clean_columns(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Names and text cells stripped of surrounding spaces; empty unnamed columns (trailing separators) dropped."""
    stripped = [c.strip() for c in frame.columns]
    if stripped != list(frame.columns):
        notes.append("column names were stripped of surrounding spaces")
        frame.columns = stripped
    for column in list(frame.columns):
        frame[column] = strip_text(frame[column])
    for column in [c for c in frame.columns if c.startswith("Unnamed: ") or c == ""]:
        if frame[column].isna().all():
            frame = frame.drop(columns=[column])
            notes.append(f"dropped column {column!r}: no name and no values (a trailing separator?)")
    return frame


def drop_named_columns(frame: pd.DataFrame, drop: Sequence[str], source: str, notes: list[str]) -> pd.DataFrame:
    """The columns named with --drop removed (noted); InputError naming the columns when one is not there."""
    if not drop:
        return frame
    missing = [column for column in drop if column not in frame.columns]
    if missing:
        raise InputError(f"--drop names column(s) {quote_list(missing)} that the file does not have",
                         fix=f"name columns of the file (it has {quote_list(list(frame.columns), 20)})", source=source)
    notes.append(f"dropped column(s) {quote_list(list(drop))} (--drop)")
    return frame.drop(columns=list(drop))


def drop_empty_columns(frame: pd.DataFrame, label_column: str, sensitive: list[str], source: str,
                       notes: list[str], cluster_column: str | None = None) -> pd.DataFrame:
    """A column with no values at all is dropped and noted; the label or a sensitive column with none is
    an InputError (the run cannot do without it)."""
    for column in list(frame.columns):
        if frame[column].isna().all():
            if column == label_column or column in sensitive or column == cluster_column:
                role, fix = (("label column", "fill in the label, or pass another column with --label")
                             if column == label_column else
                             ("sensitive column", "fill in the groups, or pass another column with --sensitive")
                             if column in sensitive else
                             ("cluster column", "fill in each row's unit, or pass another --cluster-column"))
                raise InputError(f"{role} {column!r} has no values: all {len(frame)} rows are missing", fix=fix,
                                 source=source)
            frame = frame.drop(columns=[column])
            notes.append(f"dropped column {column!r}: it has no values (all {len(frame)} rows are missing)")
    return frame
