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

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.domain import DataSource, DomainData, Split
from pipeline.errors import InputError

FORMAT = "edgeaudit.tabular.v1"
MISSING = "(missing)"
OTHER = "(other)"
UNKNOWN = "unknown"

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space", ":": "colon"}
SNIFF_CHARS = 65536

NUMERIC_PARSE_SHARE = 0.95       # share of text values that must parse for a column to be numeric
MISSING_INDICATOR_SHARE = 0.01   # above this share missing (in train), a numeric column gets an indicator
MAX_CATEGORIES = 50              # one-hot vocabulary cap per categorical column
MAX_GROUP_VALUES = 10            # a numeric sensitive column with more distinct values is banded
MIN_IDENTIFIER_ROWS = 20
MIN_CLASS_ROWS = 5               # rows of each label class needed to split
MIN_STRATUM_ROWS = 5
AGE_BAND_UPPER = (25, 35, 45, 55, 65)
AGE_MAX = 120
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)

_TRUE_WORDS = {"1", "true", "yes", "y", "t"}
_BOOLEAN_PAIRS = ({"0", "1"}, {"false", "true"}, {"no", "yes"}, {"n", "y"}, {"f", "t"})
_ID_TOKENS = {"id", "ids", "number", "num", "no", "nr", "key", "index", "idx", "uuid", "guid"}

HOW_TO_USE = (
    "Turn one raw row into one float32 vector of length n_features, in the order of "
    "feature_names, then feed it as the model's only input (shape [1, n_features], dtype "
    "float32); the output is the probability of the positive class. Go through 'columns' "
    "in order. kind 'numeric': parse the value as a number (decimal separator given by "
    "'decimal'); if it is missing or not a finite number use 'median' instead; write "
    "(value - mean) / std at indices[0]; when 'missing_indicator' is true, write 1.0 at "
    "indices[1] if the value was missing (else 0.0). kind 'categorical': take the value as "
    "text with surrounding spaces removed (a whole number written as a float, 3.0, reads "
    "'3'; missing or empty reads '(missing)'); write 1.0 at the index whose position in "
    "'categories' matches it, or at the last index (the '(other)' slot) when it is not in "
    "'categories'; every other index of the column stays 0.0. Columns not listed are "
    "ignored (the sensitive columns and the label are not model inputs unless listed)."
)


# --------------------------------------------------------------------------- small helpers


def _quote_list(values: Sequence[Any], limit: int = 12) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    more = len(values) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _require_column(column: str, *, role: str, option: str, available: list[str], source: str) -> None:
    """InputError naming the missing column, the columns there are, and the closest spelling."""
    if column in available:
        return
    hint = _closest(column, available)
    raise InputError(
        f"{role} column {column!r} not found; the columns are {_quote_list(available, 40)}",
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


def _category_text(value: Any) -> str:
    """The text a categorical cell reads as (see HOW_TO_USE)."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text if text else MISSING


def _category_series(series: pd.Series) -> pd.Series:
    """`_category_text` of every cell (vectorised for text and whole-number columns)."""
    if isinstance(series.dtype, pd.StringDtype):
        text = series.str.strip()
        return text.where(text.notna() & (text != ""), MISSING).astype(object)
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(str).astype(object).where(series.notna(), MISSING)
    return pd.Series([_category_text(v) for v in series.tolist()], index=series.index, dtype=object)


def _strip_text(series: pd.Series) -> pd.Series:
    """Text cells stripped of surrounding spaces, empty text -> missing; other cells as they are."""
    if isinstance(series.dtype, pd.StringDtype):
        text = series.str.strip()
        return text.where(text != "")
    if series.dtype == object:
        return series.map(lambda v: (v.strip() or np.nan) if isinstance(v, str) else v)
    return series


def _to_numeric(series: pd.Series, decimal: str = ".") -> pd.Series:
    """Numbers, with NaN for missing / unparseable / infinite values."""
    if pd.api.types.is_bool_dtype(series):
        values = series.astype(float)
    elif pd.api.types.is_numeric_dtype(series):
        values = series.astype(float)
    else:
        text = _strip_text(series)
        if decimal == ",":
            if isinstance(text.dtype, pd.StringDtype):
                text = text.str.replace(",", ".", regex=False)
            else:
                text = text.map(lambda v: v.replace(",", ".") if isinstance(v, str) else v)
        values = pd.to_numeric(text, errors="coerce").astype(float)
    return values.where(np.isfinite(values))


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _is_age_like(name: str) -> bool:
    return "age" in _tokens(name)


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame written as CSV (header, no index, '\\n' line ends)."""
    text = frame.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- reading CSV


def _guess_separator(header: str) -> str | None:
    counts = {sep: header.count(sep) for sep in (" ", ":", ",", ";", "\t", "|")}
    sep, count = max(counts.items(), key=lambda kv: kv[1])
    return sep if count > 0 else None


def _detect_delimiter(text: str, source: str) -> str:
    sample = text[:SNIFF_CHARS]
    truncated = len(text) > SNIFF_CHARS
    qualifying: list[tuple[int, str]] = []
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter)
                    if any(cell.strip() for cell in r)]
        except csv.Error:
            continue
        if truncated and len(rows) > 2:
            rows = rows[:-1]
        if not rows:
            continue
        width = len(rows[0])
        if width < 2:
            continue
        body = rows[1:] or rows
        if sum(len(r) == width for r in body) >= 0.9 * len(body):
            qualifying.append((width, delimiter))
    if any(d == "," for _, d in qualifying):
        return ","
    if qualifying:
        return max(qualifying, key=lambda wd: (wd[0], -DELIMITERS.index(wd[1])))[1]
    header = next((line for line in sample.splitlines() if line.strip()), "")
    guess = _guess_separator(header)
    if guess is not None:
        name = DELIMITER_NAMES.get(guess, repr(guess))
        problem = (f"could not find the column separator: the header line {header[:80]!r} does not split "
                   f"into the same columns as the rows with ',', ';', tab or '|'; it seems to be "
                   f"separated by {name} ({guess!r})")
        fix = ("save the file as a comma-separated CSV (';', tab and '|' are also detected), one header "
               "line naming the columns, then one line per example")
    else:
        problem = (f"found only one column ({header[:80]!r}); a dataset needs a label column and at least "
                   f"one feature column")
        fix = ("save the file as a comma-separated CSV with a header line naming the columns, e.g. "
               "'amount,channel,is_fraud' (';', tab and '|' are also detected)")
    raise InputError(problem, fix=fix, source=source)


# Signatures of binary formats people save tables in by mistake, with what to do instead.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or OpenDocument .ods workbook is one)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (Excel .xls)"),
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)
_TEXT_CONTROL = set(range(32)) - {9, 10, 12, 13}  # control bytes that text files do not hold (tab, newlines, form feed)
_BINARY_SAMPLE = 65536


def refuse_binary(data: bytes, source: str, *, expected: str = "a CSV file") -> None:
    """Raise InputError when `data` is not text (a workbook, an archive, an image, any binary).

    Looks at the first 64 KiB: a known binary signature, a NUL byte, or more than 1 % control
    bytes means binary. A UTF-16 file with its byte-order mark is text (it holds NUL bytes).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return
    head = data[:_BINARY_SAMPLE]
    kind = next((name for signature, name in _BINARY_SIGNATURES if head.startswith(signature)), None)
    if kind is None:
        controls = sum(1 for byte in head if byte in _TEXT_CONTROL)
        if b"\x00" not in head and controls <= 0.01 * len(head):
            return
        kind = "binary data, not text" + (" (it holds NUL bytes)" if b"\x00" in head else " (it holds control bytes)")
    raise InputError(f"is not a text file: it looks like {kind}",
                     fix=f"pass {expected} (plain text): export the table from the program that made it, e.g. "
                         "Save as / Export → CSV UTF-8 in a spreadsheet, or pandas' DataFrame.to_csv",
                     source=source)


def read_csv_file(path: str | os.PathLike) -> tuple[pd.DataFrame, str, list[str]]:
    """Read a user CSV as text cells. Returns (frame, sha256 of the file bytes, notes)."""
    source = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", fix="check the path given with --data", source=source)
    if p.is_dir():
        raise InputError("is a folder, not a CSV file", fix="pass the path of a .csv file with --data",
                         source=source)
    data = p.read_bytes()
    fingerprint = hashlib.sha256(data).hexdigest()
    notes: list[str] = []
    if not data.strip():
        raise InputError("the file is empty (no header, no rows)",
                         fix="pass a CSV file with a header line naming the columns and one line per example",
                         source=source)
    refuse_binary(data, source)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
        notes.append("the file is UTF-16 (byte-order mark found); decoded as UTF-16")
    else:
        try:
            text = data.decode("utf-8-sig")
            if data.startswith(b"\xef\xbb\xbf"):
                notes.append("the file starts with a UTF-8 byte-order mark; it was skipped")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
            notes.append("the file is not valid UTF-8; it was read as Latin-1")
    if not text.strip():
        raise InputError("the file is empty (no header, no rows)",
                         fix="pass a CSV file with a header line naming the columns and one line per example",
                         source=source)
    delimiter = _detect_delimiter(text, source)
    if delimiter != ",":
        notes.append(f"the file is {DELIMITER_NAMES[delimiter]}-separated ({delimiter!r}), "
                     f"detected automatically")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, skipinitialspace=True,
                            skip_blank_lines=True, keep_default_na=True)
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise InputError(
            f"could not read the file as {DELIMITER_NAMES[delimiter]}-separated values: {detail}",
            fix=f"give every line as many fields as the header; quote values that contain "
                f"{delimiter!r} with double quotes",
            source=source) from None
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty (no header, no rows)",
                         fix="pass a CSV file with a header line naming the columns and one line per example",
                         source=source) from None
    if len(frame) == 0:
        raise InputError(f"the file has a header ({_quote_list(list(frame.columns), 6)}) but no rows",
                         fix="add one line per example below the header", source=source)
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    names = [h.strip() for h in header]
    for name in sorted({h for h in names if names.count(h) > 1}):
        notes.append(f"column name {name!r} appears {names.count(name)} times; the copies were renamed "
                     f"{name!r}.1, ... (rename them in the file to choose)")
    frame.attrs["delimiter"] = delimiter
    return frame, fingerprint, notes


# --------------------------------------------------------------------------- label and groups


def _binary_label(series: pd.Series, column: str, source: str) -> tuple[np.ndarray, str, str]:
    """0/1 labels (rows with a missing label already removed), the value meaning 1, a note."""
    numbers = _to_numeric(series)
    if numbers.notna().all() and not pd.api.types.is_bool_dtype(series):
        texts = _category_series(numbers)   # "1.0" and "1" are the same label
    else:
        texts = _category_series(series)
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


def _group_column(series: pd.Series, column: str) -> tuple[pd.Series, list[str]]:
    """One string group per row, banding continuous columns."""
    numbers = _to_numeric(series)
    missing = _strip_text(series).isna()
    present = int((~missing).sum())
    numeric = present > 0 and (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
                               or numbers.notna().sum() >= NUMERIC_PARSE_SHARE * present)
    notes: list[str] = []
    if numeric and numbers[~missing].nunique() > MAX_GROUP_VALUES:
        # a few unparseable values in a numeric column count as missing
        missing = missing | numbers.isna()
        if _is_age_like(column):
            out, notes = _age_bands(numbers, missing, column)
        else:
            out, notes = _quantile_bands(numbers, missing, column)
    else:
        out = _category_series(series)
    n_missing = int((out == MISSING).sum())
    if n_missing:
        notes.append(f"sensitive column {column!r}: {n_missing} rows without a value -> group {MISSING!r}")
    return out.astype(str).reset_index(drop=True), notes


# --------------------------------------------------------------------------- columns


def _column_kind(series: pd.Series, decimal_comma: bool) -> tuple[str, str, int]:
    """('numeric' | 'categorical', decimal separator, count of text values that did not parse)."""
    if pd.api.types.is_bool_dtype(series):
        return "categorical", ".", 0
    if pd.api.types.is_numeric_dtype(series):
        return "numeric", ".", 0
    present = series[series.notna()]
    if len(present) == 0:
        return "categorical", ".", 0
    for decimal in ((".", ",") if decimal_comma else (".",)):
        parsed = int(_to_numeric(present, decimal).notna().sum())
        if parsed >= NUMERIC_PARSE_SHARE * len(present):
            return "numeric", decimal, len(present) - parsed
    return "categorical", ".", 0


def _identifier_reason(name: str, series: pd.Series, kind: str, decimal: str) -> str | None:
    present = series[series.notna()]
    n = len(present)
    if n < MIN_IDENTIFIER_ROWS or n != len(series):
        return None
    if kind == "numeric":
        numbers = _to_numeric(present, decimal)
        if numbers.isna().any() or not np.all(np.mod(numbers.to_numpy(), 1.0) == 0.0):
            return None
        if numbers.nunique() != n:
            return None
        lo, hi = numbers.min(), numbers.max()
        if hi - lo + 1 == n:
            return f"its values are the distinct whole numbers {_fmt(lo)}..{_fmt(hi)}, one per row"
        if _ID_TOKENS & set(_tokens(name)):
            return "its values are distinct whole numbers and its name says it is an identifier"
        return None
    texts = _category_series(present)
    if texts.nunique() == n:
        return f"its {n} values are all different text, so they cannot generalise"
    return None


# --------------------------------------------------------------------------- splitting


def _allocation(total: int, sizes: np.ndarray) -> np.ndarray:
    """Largest-remainder apportionment of `total` over strata of `sizes`."""
    quotas = total * sizes / sizes.sum()
    base = np.floor(quotas).astype(np.int64)
    rest = total - int(base.sum())
    order = np.lexsort((np.arange(sizes.size), -(quotas - base)))
    base[order[:rest]] += 1
    return np.minimum(base, sizes)


def _stratified_subsample(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    keys, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    take = _allocation(k, sizes)
    chosen = []
    for i in range(keys.size):
        members = np.flatnonzero(inverse == i)
        chosen.append(rng.choice(members, size=take[i], replace=False))
    return np.sort(np.concatenate(chosen))


def _stratified_split(strata: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys, inverse = np.unique(strata, return_inverse=True)
    parts: tuple[list, list, list] = ([], [], [])
    cut_train = SPLIT_FRACTIONS[0]
    cut_val = SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]
    for i in range(keys.size):
        members = rng.permutation(np.flatnonzero(inverse == i))
        n = members.size
        n_train = int(math.floor(cut_train * n + 0.5))
        n_val = int(math.floor(cut_val * n + 0.5)) - n_train
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train:n_train + n_val])
        parts[2].append(members[n_train + n_val:])
    return tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore[return-value]


def _split_by_cluster(clusters: np.ndarray, labels: np.ndarray, group: pd.Series,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 / 20 / 20 of the units (all rows of a unit in one split), stratified by whether a unit
    holds a positive row and by its most common group when every such stratum is big enough."""
    frame = pd.DataFrame({"unit": clusters, "label": labels, "group": group.astype(str).to_numpy()})
    per_unit = frame.groupby("unit", sort=True).agg(label=("label", "max"),
                                                   group=("group", lambda g: g.value_counts().index[0]))
    strata = _strata(per_unit["label"].to_numpy(), per_unit["group"])
    if np.unique(strata, return_counts=True)[1].min() < MIN_STRATUM_ROWS:
        strata = _strata(per_unit["label"].to_numpy(), None)
    unit_parts = _stratified_split(strata, rng)
    row_unit = pd.Categorical(clusters, categories=per_unit.index).codes
    parts = []
    for units in unit_parts:
        rows = np.flatnonzero(np.isin(row_unit, units))
        parts.append(rng.permutation(rows).astype(np.int64))
    return tuple(parts)  # type: ignore[return-value]


def _strata(labels: np.ndarray, group: pd.Series | None) -> np.ndarray:
    if group is None:
        return labels.astype(str).astype(object)
    return (pd.Series(labels).astype(str) + "|" + group.astype(str)).to_numpy(dtype=object)


# --------------------------------------------------------------------------- preprocessing


def fit_preprocessing(train: pd.DataFrame, kinds: Mapping[str, str], *, decimals: Mapping[str, str] | None = None,
                      max_categories: int = MAX_CATEGORIES, extra: Mapping[str, Any] | None = None) -> dict:
    """Fit the JSON-able spec on the train rows only. `kinds`: column -> 'numeric' | 'categorical'."""
    decimals = dict(decimals or {})
    columns: list[dict] = []
    feature_names: list[str] = []
    for name, kind in kinds.items():
        series = train[name]
        start = len(feature_names)
        if kind == "numeric":
            decimal = decimals.get(name, ".")
            values = _to_numeric(series, decimal)
            missing_share = float(values.isna().mean()) if len(values) else 0.0
            median = float(values.median()) if values.notna().any() else 0.0
            filled = values.fillna(median).to_numpy(dtype=np.float64)
            mean = float(filled.mean()) if filled.size else 0.0
            std = float(filled.std()) if filled.size else 1.0
            if not std > 1e-12 or not math.isfinite(std):
                std = 1.0
            indicator = missing_share > MISSING_INDICATOR_SHARE
            feature_names.append(name)
            if indicator:
                feature_names.append(f"{name} (missing)")
            columns.append({
                "name": name, "kind": "numeric", "decimal": decimal,
                "median": median, "mean": mean, "std": std,
                "missing_indicator": bool(indicator),
                "train_missing_share": round(missing_share, 6),
                "indices": list(range(start, len(feature_names))),
            })
        elif kind == "categorical":
            counts = _category_series(series).value_counts()
            ranked = sorted(counts.index.tolist(), key=lambda v: (-counts[v], v))
            kept = sorted(ranked[:max_categories])
            feature_names.extend(f"{name}={value}" for value in kept)
            feature_names.append(f"{name}={OTHER}")
            columns.append({
                "name": name, "kind": "categorical", "categories": kept,
                "missing_value": MISSING, "other_value": OTHER,
                "categories_in_train": len(ranked),
                "indices": list(range(start, len(feature_names))),
            })
        else:
            raise ValueError(f"unknown column kind {kind!r} for column {name!r}")
    spec = {
        "format": FORMAT,
        "input_dtype": "float32",
        "n_features": len(feature_names),
        "feature_names": feature_names,
        "columns": columns,
        "how_to_use": HOW_TO_USE,
    }
    if extra:
        spec.update(extra)
    return spec


def _rows_frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, Mapping):
        return pd.DataFrame([dict(rows)])
    if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
        return pd.DataFrame(list(rows))
    raise TypeError(f"expected a DataFrame, a mapping or a list of mappings, got {type(rows).__name__}")


def encode_tabular(preprocessing: dict, frame: Any) -> np.ndarray:
    """Raw rows (DataFrame, one mapping or a list of mappings) -> float32 (rows, n_features).

    Uses nothing but the spec: unseen categories go to the "(other)" slot, missing or
    unparseable numbers to the train median (and the missing indicator)."""
    if not isinstance(preprocessing, Mapping) or preprocessing.get("format") != FORMAT:
        found = preprocessing.get("format") if isinstance(preprocessing, Mapping) else type(preprocessing).__name__
        raise InputError(f"the preprocessing spec has format {found!r}, expected {FORMAT!r}",
                         fix="use the preprocessing.json written beside the model by the same EdgeAudit run")
    rows = _rows_frame(frame)
    wanted = [c["name"] for c in preprocessing["columns"]]
    absent = [c for c in wanted if c not in rows.columns]
    if absent:
        raise InputError(f"the rows to encode lack column(s) {_quote_list(absent)}",
                         fix=f"supply every column the model was trained on: {_quote_list(wanted, 40)}")
    out = np.zeros((len(rows), int(preprocessing["n_features"])), dtype=np.float32)
    for column in preprocessing["columns"]:
        series = rows[column["name"]]
        idx = column["indices"]
        if column["kind"] == "numeric":
            values = _to_numeric(series, column.get("decimal", "."))
            missing = values.isna().to_numpy()
            filled = values.fillna(column["median"]).to_numpy(dtype=np.float64)
            out[:, idx[0]] = ((filled - column["mean"]) / column["std"]).astype(np.float32)
            if column["missing_indicator"]:
                out[:, idx[1]] = missing.astype(np.float32)
        else:
            position = {value: i for i, value in enumerate(column["categories"])}
            other = len(idx) - 1
            slots = _category_series(series).map(position).fillna(other).to_numpy(dtype=np.int64)
            out[np.arange(len(rows)), np.asarray(idx, dtype=np.int64)[slots]] = 1.0
    return out


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
) -> DomainData:
    """Load a CSV path or a DataFrame into train / validation / test `DomainData`.

    data:               a CSV path, or a DataFrame (the generated default data).
    label_column:       the binary outcome; None -> InputError asking for --label.
    sensitive_columns:  the audit's group columns (at least one).
    seed:               subsampling and splitting.
    min_group_size:     every group of every sensitive column needs this many test rows.
    max_rows:           keep a stratified subsample of at most this many rows first.
    cluster_column:     the unit each row belongs to (one customer, one patient): never a
                        feature; the split keeps a unit's rows on one side, and the audit
                        resamples whole units (Split.clusters).
    positive_class:     what label 1 means, for humans (default: "<label> = <value>").
    kind / description: for `DataSource` (default kind: "file" for a path, "generated"
                        for a frame). source_name: how errors name a frame (paths name
                        themselves). Notes list every decision taken.
    """
    notes: list[str] = []
    if isinstance(data, pd.DataFrame):
        source = source_name or "the data frame"
        frame = data.copy()
        frame.columns = [str(c) for c in frame.columns]
        fingerprint = frame_fingerprint(data)
        path = None
        delimiter = ","
        if len(frame) == 0 or frame.shape[1] == 0:
            raise InputError("the data has no rows", fix="pass a table with one row per example", source=source)
    else:
        source = str(data)
        frame, fingerprint, read_notes = read_csv_file(data)
        notes.extend(read_notes)
        path = str(data)
        delimiter = frame.attrs.get("delimiter", ",")
    rows_read = len(frame)
    kind = kind or ("generated" if path is None else "file")
    notes.insert(0, f"read {rows_read} rows and {frame.shape[1]} columns")

    # column names: strip surrounding spaces; drop empty unnamed columns (trailing separators)
    stripped = [c.strip() for c in frame.columns]
    if stripped != list(frame.columns):
        notes.append("column names were stripped of surrounding spaces")
        frame.columns = stripped
    for column in list(frame.columns):
        frame[column] = _strip_text(frame[column])
    for column in [c for c in frame.columns if c.startswith("Unnamed: ") or c == ""]:
        if frame[column].isna().all():
            frame = frame.drop(columns=[column])
            notes.append(f"dropped column {column!r}: no name and no values (a trailing separator?)")
    available = list(frame.columns)

    # label and sensitive columns exist
    if label_column is None:
        raise InputError(f"no label column given; the columns are {_quote_list(available, 40)}",
                         fix="pass --label COLUMN naming the binary outcome to predict (e.g. --label is_fraud)",
                         source=source)
    _require_column(label_column, role="label", option="--label", available=available, source=source)
    sensitive = list(dict.fromkeys(str(c) for c in sensitive_columns))
    if not sensitive:
        raise InputError(f"no sensitive column given; the columns are {_quote_list(available, 40)}",
                         fix="pass --sensitive COLUMN (one or more, e.g. --sensitive sex age) naming the groups "
                             "to audit",
                         source=source)
    for column in sensitive:
        _require_column(column, role="sensitive", option="--sensitive", available=available, source=source)
        if column == label_column:
            raise InputError(f"column {column!r} is both the label and a sensitive column",
                             fix="pass a different column with --sensitive", source=source)
    if cluster_column is not None:
        _require_column(cluster_column, role="cluster", option="--cluster-column", available=available, source=source)
        if cluster_column == label_column or cluster_column in sensitive:
            raise InputError(f"column {cluster_column!r} is both the cluster column and the "
                             f"{'label' if cluster_column == label_column else 'a sensitive column'}",
                             fix="pass --cluster-column naming the unit of each row (e.g. a customer or patient id)",
                             source=source)

    # all-missing columns
    for column in frame.columns:
        if frame[column].isna().all():
            role = ("label column" if column == label_column
                    else "sensitive column" if column in sensitive else "column")
            fix = {"label column": "fill in the label, or pass another column with --label",
                   "sensitive column": "fill in the groups, or pass another column with --sensitive"
                   }.get(role, f"delete column {column!r} from the file, or fill in its values")
            raise InputError(f"{role} {column!r} has no values: all {len(frame)} rows are missing", fix=fix,
                             source=source)

    # label
    label_missing = frame[label_column].isna().to_numpy(dtype=bool)
    if label_missing.any():
        frame = frame.loc[~label_missing].reset_index(drop=True)
        notes.append(f"dropped {int(label_missing.sum())} rows whose label {label_column!r} is missing")
    else:
        frame = frame.reset_index(drop=True)
    labels, positive_value, label_note = _binary_label(frame[label_column], label_column, source)
    notes.append(label_note)
    clusters = None
    if cluster_column is not None:
        missing = frame[cluster_column].isna()
        if missing.any():
            raise InputError(f"cluster column {cluster_column!r} is empty in {int(missing.sum())} of {len(frame)} "
                             f"rows (the first at data row {int(np.flatnonzero(missing)[0]) + 1})",
                             fix="fill in every row's unit (customer, patient, machine), or drop those rows",
                             source=source)
        clusters = _category_series(frame[cluster_column]).astype(str).to_numpy(dtype=object)

    # groups (banded on all rows, so band names do not depend on the subsample)
    groups = {}
    for column in sensitive:
        groups[column], group_notes = _group_column(frame[column], column)
        notes.extend(group_notes)
    first_group = groups[sensitive[0]]

    # identifier-like columns, judged on every row: a subsample breaks a consecutive run
    identifiers = {}
    for column in frame.columns:
        if column != label_column and column not in sensitive and column != cluster_column:
            col_kind, decimal, _ = _column_kind(frame[column], decimal_comma=(delimiter == ";"))
            reason = _identifier_reason(column, frame[column], col_kind, decimal)
            if reason:
                identifiers[column] = reason

    # subsample
    if max_rows is not None and len(frame) > max_rows:
        strata = _strata(labels, first_group)
        keep = _stratified_subsample(strata, int(max_rows), np.random.default_rng([seed, 1]))
        notes.append(f"kept a stratified subsample of {keep.size} of {len(frame)} rows (--max-rows {max_rows}), "
                     f"stratified on label x {sensitive[0]!r}")
        frame = frame.iloc[keep].reset_index(drop=True)
        labels = labels[keep]
        groups = {c: g.iloc[keep].reset_index(drop=True) for c, g in groups.items()}
        first_group = groups[sensitive[0]]
        clusters = None if clusters is None else clusters[keep]
    positives = int(labels.sum())
    for value, count in ((1, positives), (0, labels.size - positives)):
        if count < MIN_CLASS_ROWS:
            raise InputError(
                f"label column {label_column!r} has only {count} rows of class {value} "
                f"({positive_value if value == 1 else 'the other value'}); at least {MIN_CLASS_ROWS} are needed "
                f"to split into train, validation and test",
                fix="use more rows (raise or drop --max-rows) or a file with more examples of both classes",
                source=source)

    # feature columns
    if use_sensitive_as_features:
        notes.append(f"sensitive columns {_quote_list(sensitive)} are also model features "
                     f"(use_sensitive_as_features)")
        candidates = [c for c in frame.columns if c != label_column and c != cluster_column]
    else:
        notes.append(f"sensitive columns {_quote_list(sensitive)} are used for the audit only, "
                     f"not as model features")
        candidates = [c for c in frame.columns if c != label_column and c not in sensitive and c != cluster_column]
    kinds: dict[str, str] = {}
    decimals: dict[str, str] = {}
    for column in candidates:
        series = frame[column]
        if column in identifiers:
            notes.append(f"dropped identifier-like column {column!r}: {identifiers[column]}")
            continue
        col_kind, decimal, unparsed = _column_kind(series, decimal_comma=(delimiter == ";"))
        present = series[series.notna()]
        if present.size == len(series) and _category_series(present).nunique() == 1:
            notes.append(f"dropped constant column {column!r}: every row holds {_category_text(present.iloc[0])!r}")
            continue
        kinds[column] = col_kind
        if col_kind == "numeric":
            decimals[column] = decimal
            if decimal == ",":
                notes.append(f"column {column!r}: numbers with a decimal comma")
            if unparsed:
                examples = _category_series(present[_to_numeric(present, decimal).isna()]).unique()[:3]
                notes.append(f"column {column!r} is numeric; {unparsed} values that are not numbers "
                             f"({_quote_list(list(examples), 3)}) are treated as missing")
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                frame[column] = _to_numeric(series, decimal)
    if not kinds:
        raise InputError(
            f"no feature columns are left besides the label {label_column!r} and the sensitive columns "
            f"{_quote_list(sensitive)}",
            fix="add feature columns to the file (the sensitive columns are not used as features)",
            source=source)
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    notes.append(f"{len(numeric)} numeric feature columns ({_quote_list(numeric, 40)}), "
                 f"{len(categorical)} categorical ({_quote_list(categorical, 40)})")

    # split
    strata = _strata(labels, first_group)
    _, stratum_sizes = np.unique(strata, return_counts=True)
    if stratum_sizes.min() >= MIN_STRATUM_ROWS:
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified on label x {sensitive[0]!r}")
    else:
        strata = _strata(labels, None)
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified on the label (some "
                     f"label x {sensitive[0]!r} combinations have fewer than {MIN_STRATUM_ROWS} rows)")
    if clusters is None:
        parts = _stratified_split(strata, np.random.default_rng([seed, 2]))
    else:
        parts = _split_by_cluster(clusters, labels, first_group, rng=np.random.default_rng([seed, 2]))
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

    # group sizes in the test split
    test_index = parts[2]
    for column in sensitive:
        counts = groups[column].iloc[test_index].value_counts()
        small = [(g, int(counts.get(g, 0))) for g in sorted(groups[column].unique())
                 if counts.get(g, 0) < min_group_size]
        if small:
            listed = ", ".join(f"{g!r} has {n} rows" for g, n in small)
            raise InputError(
                f"sensitive column {column!r}: group {listed} in the test split, fewer than the "
                f"{min_group_size} needed to measure it (--min-group-size)",
                fix=(f"merge group {small[0][0]!r} into a neighbouring group or drop its rows in the file, "
                     f"use more rows" + (" (raise --max-rows)" if max_rows is not None else "")
                     + f", or lower --min-group-size (now {min_group_size})"),
                source=source)

    # raw features, preprocessing (train only)
    raw = frame[list(kinds)]
    splits = []
    for index in parts:
        split_raw = raw.iloc[index].reset_index(drop=True)
        split_groups = pd.DataFrame({c: groups[c].iloc[index].to_numpy(dtype=object) for c in sensitive}).astype(str)
        splits.append(Split(raw=split_raw, labels=labels[index].astype(np.int64), groups=split_groups,
                            clusters=None if clusters is None else clusters[index].astype(str)))
    train, validation, test = splits
    positive_text = positive_class or f"{label_column} = {positive_value}"
    spec = fit_preprocessing(
        train.raw, kinds, decimals=decimals, max_categories=max_categories,
        extra={
            "label": {"column": label_column, "positive_value": positive_value, "positive_class": positive_text},
            "sensitive_columns": sensitive,
            "sensitive_used_as_features": bool(use_sensitive_as_features),
        })
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
    json.dumps(spec)  # must be JSON-able

    feature_groups = {c["name"]: list(c["indices"]) for c in spec["columns"]}
    rows = len(frame)
    describe = description or (
        f"{Path(path).name}: {rows} rows, label {label_column!r}" if path else f"{rows} rows, label {label_column!r}")
    data_source = DataSource(kind=kind, description=describe, path=path, fingerprint=fingerprint, rows=rows,
                             notes=tuple(notes))
    class_balance = {
        "positive_rate": float(labels.mean()),
        "positives": positives,
        **{f"{name}_rows": len(s) for name, s in zip(("train", "validation", "test"), splits)},
        **{f"{name}_positive_rate": float(s.labels.mean()) for name, s in zip(("train", "validation", "test"), splits)},
    }
    return DomainData(
        train=train, validation=validation, test=test,
        preprocessing=spec,
        feature_names=tuple(spec["feature_names"]),
        feature_groups=feature_groups,
        sensitive_columns=tuple(sensitive),
        label_name=label_column,
        positive_class=positive_text,
        source=data_source,
        class_balance=class_balance,
    )
