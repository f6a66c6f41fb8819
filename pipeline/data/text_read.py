"""Reading labelled texts: delimited files, GLUE / SST-2 and aclImdb folder layouts, labels.

A source becomes a `TextSource`: one or more `TextPart`s (a file or folder each, with a
role: "pool" is split three ways, "train" into train and validation, "test" is the test
split), the sha256 fingerprint, and notes. See `pipeline.data.text` for every rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.delimited_files import DELIMITER_NAMES, detect_delimiter, refuse_binary
from pipeline.data.splitting import quote_list
from pipeline.data.text_tokenizer import as_text
from pipeline.errors import InputError

TEXT_COLUMN_NAMES = ("text", "sentence", "review", "content", "comment", "body", "tweet", "document", "message")
LABEL_COLUMN_NAMES = ("label", "sentiment", "polarity", "labels", "class", "target", "rating_label")
POSITIVE_WORDS = ("1", "1.0", "+1", "+", "pos", "positive", "good", "true", "yes")
NEGATIVE_WORDS = ("0", "0.0", "-1", "-1.0", "-", "neg", "negative", "bad", "false", "no")


def plural(count: int, word: str) -> str:
    """The count and the word, plural when needed: "1 file", "2,000 files"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------- reading


def decode_bytes(data: bytes) -> tuple[str, str | None]:
    """Bytes -> (text, a note when the decoding was not plain UTF-8)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "UTF-16 (byte-order mark found)"
    try:
        text = data.decode("utf-8-sig")
        return text, ("a UTF-8 byte-order mark was skipped" if data.startswith(b"\xef\xbb\xbf") else None)
    except UnicodeDecodeError:
        pass
    replaced = data.decode("utf-8", errors="replace")
    bad = replaced.count("\ufffd")
    valid_multibyte = sum(1 for ch in replaced if ord(ch) > 127 and ch != "\ufffd")
    if valid_multibyte:
        return replaced, (f"not valid UTF-8: {plural(bad, 'invalid byte sequence')} replaced by U+FFFD "
                          f"(the rest is UTF-8)")
    return data.decode("cp1252", errors="replace"), ("not valid UTF-8 and no UTF-8 multi-byte character in it: "
                                                     "read as Windows-1252")


def _read_rows(text: str, delimiter: str, source: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of delimited text; every row must have as many fields as the header."""
    attempts = [csv.QUOTE_NONE, csv.QUOTE_MINIMAL] if delimiter == "\t" else [csv.QUOTE_MINIMAL]
    problem = None
    for quoting in attempts:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
        header: list[str] | None = None
        rows: list[list[str]] = []
        problem = None
        try:
            for fields in reader:
                if not any(cell.strip() for cell in fields):
                    continue
                if header is None:
                    header = [h.strip() for h in fields]
                    continue
                if len(fields) != len(header):
                    if len(fields) == len(header) + 1 and not fields[-1].strip():
                        fields = fields[:-1]   # a trailing separator
                    else:
                        problem = (reader.line_num, len(fields), len(header))
                        break
                rows.append(fields)
        except csv.Error as error:
            problem = (reader.line_num, str(error), len(header or []))
        if problem is None:
            return header or [], rows
    line, fields, width = problem  # type: ignore[misc]
    name = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    detail = f"has {fields} fields" if isinstance(fields, int) else f"could not be read ({fields})"
    raise InputError(
        f"line {line} {detail}; the header has {width} ({name}-separated)",
        fix=f"give every line as many fields as the header; in a CSV, put texts that contain {delimiter!r} "
            f"or line breaks in double quotes",
        source=source)


def read_text_table(path: str | os.PathLike) -> tuple[pd.DataFrame, str, list[str]]:
    """A delimited file as a frame of text cells (no NA conversion). -> (frame, sha256, notes)."""
    source = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", fix="check the path given with --data", source=source)
    data = p.read_bytes()
    fingerprint = hashlib.sha256(data).hexdigest()
    empty = InputError("the file is empty (no header, no rows)",
                       fix="pass a file with a header line naming the columns (e.g. 'text,label') and one line "
                           "per text", source=source)
    if not data.strip():
        raise empty
    refuse_binary(data, source, expected="a delimited text file with a text and a label column")
    text, decoding = decode_bytes(data)
    notes = [f"{p.name}: {decoding}"] if decoding else []
    if not text.strip():
        raise empty
    delimiter = detect_delimiter(text, source)
    if delimiter != ",":
        notes.append(f"{p.name}: {DELIMITER_NAMES[delimiter]}-separated, detected automatically")
    header, rows = _read_rows(text, delimiter, source)
    if not rows:
        raise InputError(f"the file has a header ({quote_list(header, 6)}) but no rows",
                         fix="add one line per text below the header", source=source)
    names, seen = [], Counter()
    for name in header:
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    return frame, fingerprint, notes


def find_column(frame: pd.DataFrame, wanted: str) -> str | None:
    """The column named `wanted`, else the one whose name matches it ignoring case and spaces."""
    if wanted in frame.columns:
        return wanted
    lowered = {str(c).strip().lower(): c for c in frame.columns}
    return lowered.get(wanted.strip().lower())


def _is_free_text(series: pd.Series) -> bool:
    values = [v for v in series.tolist()[:2000] if isinstance(v, str) and v.strip()]
    if not values:
        return False
    numeric = sum(1 for v in values if re.fullmatch(r"\s*[-+]?\d+(\.\d+)?\s*", v))
    if numeric > 0.5 * len(values):
        return False
    spaced = sum(1 for v in values if " " in v.strip())
    return spaced >= 0.3 * len(values) or len(set(values)) > 0.5 * len(values)


def _text_column(frame: pd.DataFrame, wanted: str | None, label: str | None, source: str,
                 *, name_given_for_other_file: bool = False) -> tuple[str, str | None]:
    """(column name, note) of the text column."""
    columns = [str(c) for c in frame.columns]
    if wanted and not name_given_for_other_file:
        found = find_column(frame, wanted)
        if found is None:
            raise InputError(f"no text column {wanted!r}; the columns are {quote_list(columns, 30)}",
                             fix="pass the name of the column holding the texts with --text-column", source=source)
        return found, (None if found == wanted else f"text column {wanted!r} matched {found!r}")
    if wanted:
        found = find_column(frame, wanted)
        if found is not None:
            return found, None
    for name in TEXT_COLUMN_NAMES:
        found = find_column(frame, name)
        if found is not None and found != label:
            return found, f"text column {found!r} (found by its name)"
    candidates = [c for c in frame.columns if c != label and _is_free_text(frame[c])]
    if len(candidates) == 1:
        return candidates[0], f"text column {candidates[0]!r} (the only column of free text)"
    if not candidates:
        raise InputError(f"no column of text found among {quote_list(columns, 30)}",
                         fix="pass the name of the column holding the texts with --text-column", source=source)
    raise InputError(f"several columns could hold the texts: {quote_list(candidates)}",
                     fix="choose one with --text-column", source=source)


def _label_column(frame: pd.DataFrame, wanted: str | None, source: str) -> str:
    columns = [str(c) for c in frame.columns]
    if wanted:
        found = find_column(frame, wanted)
        if found is None:
            raise InputError(f"no label column {wanted!r}; the columns are {quote_list(columns, 30)}",
                             fix="pass the name of the column holding the sentiment labels with --label",
                             source=source)
        return found
    for name in LABEL_COLUMN_NAMES:
        found = find_column(frame, name)
        if found is not None:
            return found
    raise InputError(f"no label column found among {quote_list(columns, 30)} (looked for "
                     f"{quote_list(LABEL_COLUMN_NAMES)})",
                     fix="pass the name of the column holding the sentiment labels with --label", source=source)


# --------------------------------------------------------------------------- sources


@dataclass
class TextPart:
    """Texts of one source file (or folder) and their raw labels, before cleaning."""

    name: str                       # how notes and errors name it
    role: str                       # "pool" (split three ways) | "train" (train + validation) | "test"
    texts: list[str]
    labels: list[str | None]
    extra: pd.DataFrame | None = None   # other columns (for --sensitive columns of the file)
    label_column: str = "label"
    text_column: str = "text"


@dataclass
class TextSource:
    """What `read_source` found: the parts, the sha256 of what was read, the path (None for a
    frame), and the layout ("file", "frame", "train/dev files", "aclImdb folders")."""

    parts: list[TextPart]
    fingerprint: str
    path: str | None
    notes: list[str] = field(default_factory=list)
    layout: str = "file"


def _part_from_frame(frame: pd.DataFrame, *, name: str, role: str, text_column: str | None,
                     label_column: str | None, source: str, notes: list[str],
                     other_file: bool = False) -> TextPart:
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise InputError("the data has no rows", fix="pass a table with one text per row", source=source)
    label = _label_column(frame, label_column, source)
    text, note = _text_column(frame, text_column, label, source, name_given_for_other_file=other_file)
    if text == label:
        raise InputError(f"the text column and the label column are both {text!r}",
                         fix="pass different columns with --text-column and --label", source=source)
    if note:
        notes.append(f"{name}: {note}")
    extra = frame.drop(columns=[text, label])
    return TextPart(name=name, role=role, texts=[as_text(v) for v in frame[text].tolist()],
                 labels=[None if as_text(v).strip() == "" else as_text(v) for v in frame[label].tolist()],
                 extra=extra.reset_index(drop=True), label_column=label, text_column=text)


_LAYOUT_FILES = ("train", "dev", "test")
_TABLE_SUFFIXES = (".tsv", ".csv", ".txt")


def _layout_file(folder: Path, stem: str) -> Path | None:
    for suffix in _TABLE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _read_review_folder(folder: Path, notes: list[str], hasher) -> tuple[list[str], list[str]]:
    """aclImdb-style pos/ and neg/ of .txt files -> (texts, raw labels "pos"/"neg")."""
    texts, labels = [], []
    decoded = Counter()
    for label in ("pos", "neg"):
        files = sorted((folder / label).glob("*.txt"))
        for file in files:
            data = file.read_bytes()
            hasher.update(f"{label}/{file.name}\0".encode())
            hasher.update(data)
            text, decoding = decode_bytes(data)
            if decoding:
                decoded[decoding.split(":")[0]] += 1
            texts.append(text)
            labels.append(label)
    for what, count in decoded.items():
        notes.append(f"{folder.name}/: {plural(count, 'file')} {what}")
    return texts, labels


def read_source(data: Any, *, text_column: str | None, label_column: str | None, source_name: str | None,
                 notes: list[str]) -> TextSource:
    """A DataFrame, a delimited file, or a folder layout (GLUE / SST-2, aclImdb) -> `TextSource`."""
    if isinstance(data, pd.DataFrame):
        source = source_name or "the data frame"
        frame = data.copy()
        text = frame.to_csv(index=False, lineterminator="\n")
        part = _part_from_frame(frame, name=source, role="pool", text_column=text_column,
                                label_column=label_column, source=source, notes=notes)
        return TextSource([part], hashlib.sha256(text.encode("utf-8")).hexdigest(), None, layout="frame")

    path = Path(data)
    source = str(data)
    if not path.exists():
        raise InputError("file or folder not found", fix="check the path given with --data", source=source)
    folder = path if path.is_dir() else None
    if folder is None and path.stem.lower() == "train" and (_layout_file(path.parent, "dev")
                                                            or _layout_file(path.parent, "test")):
        folder = path.parent
        notes.append(f"{path.name} has a held-out file beside it: reading the folder {str(folder)!r} as a "
                     f"train / dev layout")
    if folder is not None:
        train_file = _layout_file(folder, "train")
        held_out = _layout_file(folder, "dev") or _layout_file(folder, "test")
        if train_file and held_out:
            return _read_layout(train_file, held_out, text_column=text_column, label_column=label_column,
                                notes=notes)
        if (folder / "pos").is_dir() and (folder / "neg").is_dir():
            return _read_imdb(folder, [(folder, "pool")], notes)
        if all((folder / s / c).is_dir() for s in ("train", "test") for c in ("pos", "neg")):
            return _read_imdb(folder, [(folder / "train", "train"), (folder / "test", "test")], notes)
        raise InputError(
            "is a folder, but not one of the layouts understood: train.tsv with dev.tsv (or test.tsv) as in "
            "GLUE / SST-2; pos/ and neg/ folders of .txt reviews; or train/ and test/ each with pos/ and neg/ "
            "as in aclImdb",
            fix="pass a delimited file with a text and a label column, or a folder in one of those layouts",
            source=source)
    frame, fingerprint, read_notes = read_text_table(path)
    notes.extend(read_notes)
    part = _part_from_frame(frame, name=path.name, role="pool", text_column=text_column,
                            label_column=label_column, source=source, notes=notes)
    return TextSource([part], fingerprint, str(path))


def _read_layout(train_file: Path, held_out: Path, *, text_column: str | None, label_column: str | None,
                 notes: list[str]) -> TextSource:
    hasher = hashlib.sha256()
    parts = []
    for file, role in ((train_file, "train"), (held_out, "test")):
        frame, fingerprint, read_notes = read_text_table(file)
        hasher.update(fingerprint.encode())
        notes.extend(read_notes)
        part = _part_from_frame(frame, name=file.name, role=role, text_column=text_column,
                                label_column=label_column, source=str(file), notes=notes,
                                other_file=role == "test")
        parts.append(part)
    train, test = parts
    if test.text_column != train.text_column:
        notes.append(f"{test.name}: its texts are in column {test.text_column!r} "
                     f"({train.name}: {train.text_column!r})")
    ignored = [f.name for f in (_layout_file(train_file.parent, "test"),) if f is not None and f != held_out]
    notes.append(f"layout: {train_file.name} is split into train and validation, {held_out.name} is the test split"
                 + (f"; {', '.join(ignored)} not used" if ignored else ""))
    return TextSource(parts, hasher.hexdigest(), str(train_file.parent), layout="train/dev files")


def _read_imdb(root: Path, folders: list[tuple[Path, str]], notes: list[str]) -> TextSource:
    hasher = hashlib.sha256()
    parts = []
    for folder, role in folders:
        texts, labels = _read_review_folder(folder, notes, hasher)
        if not texts:
            raise InputError(f"no .txt files in {folder / 'pos'} or {folder / 'neg'}",
                             fix="put one review per .txt file in pos/ (positive) and neg/ (negative)",
                             source=str(folder))
        parts.append(TextPart(name=f"{folder.name}/", role=role, texts=texts, labels=labels,
                           label_column="folder", text_column="file"))
    layout = "aclImdb folders"
    if len(parts) == 2:
        notes.append("layout: train/ split into train and validation, test/ is the test split")
    if (root / "unsup").is_dir() or (root / "train" / "unsup").is_dir():
        notes.append("unsup/ (unlabelled reviews) not used")
    return TextSource(parts, hasher.hexdigest(), str(root), layout=layout)


# --------------------------------------------------------------------------- labels


def map_labels(values: Sequence[str], column: str, source: str) -> tuple[np.ndarray, str]:
    """Raw label values -> 0/1 by the explicit word lists; unmappable values are an error."""
    positive, negative = set(POSITIVE_WORDS), set(NEGATIVE_WORDS)
    lowered = [v.strip().lower() for v in values]
    counts = Counter(lowered)
    unknown = [v for v in counts if v not in positive and v not in negative]
    if unknown:
        unknown.sort(key=lambda v: -counts[v])
        shown = ", ".join(f"{v!r} ({counts[v]:,} rows)" for v in unknown[:8])
        raise InputError(
            f"label column {column!r} holds value(s) that are not a sentiment label: {shown}",
            fix=f"map every label to one of {quote_list(POSITIVE_WORDS)} (positive) or "
                f"{quote_list(NEGATIVE_WORDS)} (negative) in the file, drop the other rows, or pass the right "
                f"column with --label",
            source=source)
    labels = np.array([1 if v in positive else 0 for v in lowered], dtype=np.int64)
    originals: dict[str, Counter] = {}
    for raw, low in zip(values, lowered):
        originals.setdefault(low, Counter())[raw.strip()] += 1
    shown = []
    for low in sorted(counts, key=lambda v: (v not in positive, -counts[v])):
        spelled = originals[low].most_common(1)[0][0]
        shown.append(f"{spelled!r} -> {1 if low in positive else 0} ({counts[low]:,} rows)")
    return labels, f"labels of {column!r} mapped explicitly: " + ", ".join(shown)
