"""Reading delimited text files (CSV, TSV, ...) the way every loader does.

Used by the tabular loader, the text loader, the sensor-history loader and the image
loader's metadata join. The rules (see `pipeline.data.tabular` for the whole tabular
story):
  * Bytes are decoded as UTF-8 with an optional byte-order mark; a UTF-16 file (with its
    BOM) as UTF-16; a file that is not valid UTF-8 as Latin-1 (noted).
  * A binary file saved by mistake (a workbook, an archive, an image) is refused with a
    message saying what it looks like and how to export a CSV (`refuse_binary`).
  * The separator is detected, not assumed (`detect_delimiter`): each of `,` `;` tab `|`
    is tried on the first 64 KiB; comma wins when it qualifies.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import pandas as pd

from pipeline.data.splitting import quote_list
from pipeline.errors import InputError

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space", ":": "colon"}
SNIFF_CHARS = 65536


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame written as CSV (header, no index, '\\n' line ends)."""
    text = frame.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- reading CSV


def _guess_separator(header: str) -> str | None:
    counts = {sep: header.count(sep) for sep in (" ", ":", ",", ";", "\t", "|")}
    sep, count = max(counts.items(), key=lambda kv: kv[1])
    return sep if count > 0 else None


def detect_delimiter(text: str, source: str) -> str:
    """The column separator of delimited `text`; InputError naming the separator it seems to use."""
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
    delimiter = detect_delimiter(text, source)
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
        raise InputError(f"the file has a header ({quote_list(list(frame.columns), 6)}) but no rows",
                         fix="add one line per example below the header", source=source)
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    names = [h.strip() for h in header]
    for name in sorted({h for h in names if names.count(h) > 1}):
        notes.append(f"column name {name!r} appears {names.count(name)} times; the copies were renamed "
                     f"{name!r}.1, ... (rename them in the file to choose)")
    frame.attrs["delimiter"] = delimiter
    return frame, fingerprint, notes
