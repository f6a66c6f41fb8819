"""Text data: reading labelled texts, the tokenizer spec that ships beside every .tflite,
and the audit groups built from identity terms.

Sources `load_text` accepts (every decision is written into `DataSource.notes`, every bad
input raises `InputError` naming the file, column or value and how to fix it):

  * a DataFrame (the generated default data);
  * a delimited file (.csv, .tsv, .txt ...) with a text column and a label column chosen by
    name (--text-column, --label). Without --text-column the text column is found by name
    (text, sentence, review, content, ...) or as the only column of free text; without
    --label, a column named label / sentiment / polarity / ... is used;
  * a folder in the GLUE / SST-2 layout (train.tsv plus dev.tsv, or test.tsv): the train
    file is split into train and validation, the dev file is the test split. Passing the
    train file itself finds its dev file beside it. The text column may have another name
    in each file (SST-2: `sentence` in train.tsv, `content` in dev.tsv);
  * a folder in the aclImdb layout: `pos/` and `neg/` of `.txt` files (one review per file),
    or `train/{pos,neg}` and `test/{pos,neg}` (then test/ is the test split).

Reading
  UTF-8 with or without a byte-order mark; UTF-16 with its mark. A file that is not valid
  UTF-8 is read as UTF-8 with the bad bytes replaced (U+FFFD) when it holds valid
  multi-byte UTF-8 too, otherwise as Windows-1252 (a legacy single-byte file); either way
  counted in the notes. The separator is detected as for tabular data; tab-separated files
  are read without quote processing (TSV has no quoting; SST-2 texts contain `"`) unless
  that breaks the rows. HTML line breaks (`<br />`, common in IMDB reviews) become spaces.

Labels
  Mapped explicitly, word by word, and reported: 1 / pos / positive / good / true / yes / +
  / +1 -> 1 and 0 / neg / negative / bad / false / no / - / -1 -> 0 (case-insensitive).
  Any other value is an error naming it; one class only is an error; rows without a label
  are dropped (counted).

Texts
  Empty or blank texts are dropped (counted). A text longer than the model's max_length
  tokens is truncated (the first max_length tokens are kept); the count per split is noted.

Tokenizer spec (format "edgeaudit.text.v1", fitted on the train split only, JSON-able)
  Tokens are the matches of TOKEN_PATTERN (Python `re`, Unicode), each lower-cased. The
  vocabulary holds PAD (id 0), OOV (id 1) and the train tokens seen at least MIN_TOKEN_COUNT
  times, most frequent first, at most MAX_VOCABULARY entries: the embedding table, hence the
  .tflite, stays bounded (about vocabulary x embedding width bytes in int8). max_length is
  the smallest multiple of 8 at or above the 99.5th percentile of train text lengths
  (in [16, 256]). `encode_texts` applies only the spec ("how_to_use" says how on a device).

Audit groups
  Text has no demographic columns, so one group column per identity axis is built from
  term lists (IDENTITY_TERMS, replaceable): a text is in group g of an axis when it holds a
  term of g, "none" when it holds no term of the axis, "multiple" when terms of several
  groups. A group with fewer than min_group_size rows in the test split is merged into
  "other" (noted); if "other" is still too small, every mention is merged into "any". An
  axis left with fewer than two measurable groups is not audited (noted), unless named
  with --sensitive; when no axis is left, one column "identity" (any identity term vs none)
  is audited. A column of the user's file named with --sensitive is used as it is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.tabular import DELIMITER_NAMES, _detect_delimiter, refuse_binary
from pipeline.domain import DataSource, DomainData, Split
from pipeline.errors import InputError

FORMAT = "edgeaudit.text.v1"
TOKEN_PATTERN = r"\w+(?:'\w+)*|'\w+|[^\w\s]"
PAD_TOKEN, OOV_TOKEN = "<pad>", "<oov>"
PAD_ID, OOV_ID = 0, 1
# Every train token (as Kim's CNN-rand), at most 14,000: at the sentiment model's 64-d
# embeddings that keeps its int8 .tflite under 1 MB (see pipeline.domains.sentiment).
MAX_VOCABULARY = 14000
MIN_TOKEN_COUNT = 1
LENGTH_PERCENTILE = 99.5
LENGTH_MULTIPLE = 8
MIN_MAX_LENGTH = 16
MAX_MAX_LENGTH = 256
# Of the train file, when a separate test file exists. 10 % keeps more data for training:
# on SST-2 (6,700 validation phrases) the word CNN gained about a point of dev accuracy over
# 20 % (`python -m benchmarks.sentiment_cnn_variants`).
VALIDATION_SHARE = 0.1
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # of a single file
MIN_CLASS_ROWS = 5
NONE_GROUP, MULTIPLE_GROUP, OTHER_GROUP, ANY_GROUP = "none", "multiple", "other", "any"
MISSING_GROUP = "(missing)"
IDENTITY_COLUMN = "identity"
CONTAINMENT_MAX_TOKENS = 64

_PATTERN = re.compile(TOKEN_PATTERN)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)

TEXT_COLUMN_NAMES = ("text", "sentence", "review", "content", "comment", "body", "tweet", "document", "message")
LABEL_COLUMN_NAMES = ("label", "sentiment", "polarity", "labels", "class", "target", "rating_label")
POSITIVE_WORDS = ("1", "1.0", "+1", "+", "pos", "positive", "good", "true", "yes")
NEGATIVE_WORDS = ("0", "0.0", "-1", "-1.0", "-", "neg", "negative", "bad", "false", "no")

# Default identity-term lists: axis -> group -> terms (lower case; a term of several words
# matches consecutive tokens). Crude on purpose and replaceable (`identity_terms=`): they
# find mentions, not the identity of the writer; "his" in a film review is the actor's.
IDENTITY_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "female": ("she", "her", "hers", "herself", "woman", "women", "girl", "girls", "lady", "ladies", "female",
                   "mother", "mom", "daughter", "sister", "wife", "girlfriend", "aunt", "grandmother", "niece",
                   "actress", "waitress", "mrs", "ms"),
        "male": ("he", "him", "his", "himself", "man", "men", "boy", "boys", "gentleman", "gentlemen", "male",
                 "father", "dad", "son", "brother", "husband", "boyfriend", "uncle", "grandfather", "nephew",
                 "actor", "waiter", "mr"),
    },
    "religion": {
        "christian": ("christian", "christians", "christianity", "catholic", "catholics", "protestant", "church"),
        "muslim": ("muslim", "muslims", "islam", "islamic", "mosque"),
        "jewish": ("jewish", "jew", "jews", "judaism", "synagogue"),
        "hindu": ("hindu", "hindus", "hinduism"),
        "buddhist": ("buddhist", "buddhists", "buddhism"),
        "atheist": ("atheist", "atheists", "atheism"),
    },
    "nationality": {
        "american": ("american", "americans"),
        "mexican": ("mexican", "mexicans"),
        "chinese": ("chinese",),
        "indian": ("indian", "indians"),
        "nigerian": ("nigerian", "nigerians"),
        "german": ("german", "germans"),
        "french": ("french",),
    },
}

HOW_TO_USE = (
    "Turn one text into one int32 vector of length max_length and feed it as the model's only input "
    "(name 'token_ids', shape [1, max_length], dtype int32); the output is the probability of the positive "
    "class. Tokens: every match of token_pattern (a Python 're' regular expression with Unicode classes: "
    "\\w is any letter, digit or underscore) in the text, from left to right, each lower-cased "
    "(Unicode lower case) after matching. Keep the first max_length tokens and drop the rest "
    "(truncation 'end'). Map each token to its position in 'vocabulary', or to oov_id when it is not "
    "there. Fill the remaining positions at the end with pad_id (padding 'end'). An empty text is all "
    "pad_id. Nothing else is done to the text (no other normalisation)."
)


# --------------------------------------------------------------------------- small helpers


def _quote_list(values: Sequence[Any], limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def tokenize(text: str, *, limit: int | None = None) -> list[str]:
    """The spec's tokens of one text (lower-cased matches of TOKEN_PATTERN), at most `limit`."""
    tokens = []
    for match in _PATTERN.finditer(text):
        if limit is not None and len(tokens) >= limit:
            break
        tokens.append(match.group().lower())
    return tokens


def token_spans(text: str, *, limit: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the tokens of `text` (what `tokenize` returns, before lower-casing)."""
    spans = []
    for match in _PATTERN.finditer(text):
        if limit is not None and len(spans) >= limit:
            break
        spans.append(match.span())
    return spans


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def _as_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, pd.DataFrame):
        if texts.shape[1] != 1:
            raise InputError(f"expected texts, got a table with {texts.shape[1]} columns",
                             fix="pass a list (or one column) of texts")
        texts = texts.iloc[:, 0]
    return [_as_text(t) for t in list(texts)]


# --------------------------------------------------------------------------- tokenizer spec


def choose_max_length(lengths: np.ndarray) -> int:
    """Smallest multiple of 8 at or above the 99.5th percentile of the lengths, in [16, 256]."""
    if lengths.size == 0:
        return MIN_MAX_LENGTH
    target = float(np.percentile(lengths, LENGTH_PERCENTILE))
    length = int(math.ceil(target / LENGTH_MULTIPLE) * LENGTH_MULTIPLE)
    return int(min(MAX_MAX_LENGTH, max(MIN_MAX_LENGTH, length)))


def fit_tokenizer(train_texts: Sequence[str], *, max_vocabulary: int = MAX_VOCABULARY,
                  min_count: int = MIN_TOKEN_COUNT, max_length: int | None = None,
                  extra: Mapping[str, Any] | None = None) -> dict:
    """The JSON-able tokenizer spec, fitted on the train texts only (see the module docstring)."""
    if max_vocabulary < 3:
        raise ValueError(f"max_vocabulary is {max_vocabulary}, expected at least 3 (PAD, OOV and one token)")
    counts: Counter = Counter()
    lengths = np.empty(len(train_texts), dtype=np.int64)
    for i, text in enumerate(train_texts):
        tokens = tokenize(text)
        counts.update(tokens)
        lengths[i] = len(tokens)
    ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    kept = ranked[: max_vocabulary - 2]
    length = int(max_length) if max_length else choose_max_length(lengths)
    covered = sum(counts[t] for t in kept)
    total = int(sum(counts.values()))
    spec = {
        "format": FORMAT,
        "input_name": "token_ids",
        "input_dtype": "int32",
        "max_length": length,
        "token_pattern": TOKEN_PATTERN,
        "lowercase": True,
        "truncation": "end",
        "padding": "end",
        "pad_id": PAD_ID,
        "oov_id": OOV_ID,
        "vocabulary": [PAD_TOKEN, OOV_TOKEN, *kept],
        "vocabulary_size": len(kept) + 2,
        "vocabulary_rule": {
            "fitted_on": "train split",
            "max_vocabulary": int(max_vocabulary),
            "min_count": int(min_count),
            "train_texts": len(train_texts),
            "train_tokens": total,
            "distinct_train_tokens": len(counts),
            "train_token_coverage": round(covered / total, 6) if total else None,
        },
        "max_length_rule": (f"smallest multiple of {LENGTH_MULTIPLE} at or above the {LENGTH_PERCENTILE}th "
                            f"percentile of train text lengths, within [{MIN_MAX_LENGTH}, {MAX_MAX_LENGTH}]"
                            if not max_length else "given"),
        "how_to_use": HOW_TO_USE,
    }
    if extra:
        spec.update(extra)
    return spec


_INDEX_CACHE: dict[int, tuple[list, dict[str, int]]] = {}


def _vocabulary_index(spec: Mapping[str, Any]) -> dict[str, int]:
    vocabulary = spec["vocabulary"]
    cached = _INDEX_CACHE.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary and len(cached[1]) == len(vocabulary):
        return cached[1]
    index = {token: i for i, token in enumerate(vocabulary)}
    if len(_INDEX_CACHE) > 16:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[id(vocabulary)] = (vocabulary, index)  # keeps the list alive, so the id stays its own
    return index


def check_spec(spec: Any) -> None:
    if not isinstance(spec, Mapping) or spec.get("format") != FORMAT:
        found = spec.get("format") if isinstance(spec, Mapping) else type(spec).__name__
        raise InputError(f"the preprocessing spec has format {found!r}, expected {FORMAT!r}",
                         fix="use the preprocessing.json written beside the model by the same EdgeAudit run")


def encode_texts(spec: Mapping[str, Any], texts: Any) -> np.ndarray:
    """Texts (a list, array or Series of str; one str) -> int32 token ids (n, max_length).

    Uses nothing but the spec; missing values read as empty texts."""
    check_spec(spec)
    texts = _as_texts(texts)
    length = int(spec["max_length"])
    index = _vocabulary_index(spec)
    oov, pad = int(spec["oov_id"]), int(spec["pad_id"])
    out = np.full((len(texts), length), pad, dtype=np.int32)
    for i, text in enumerate(texts):
        ids = [index.get(match.group().lower(), oov) for match, _ in zip(_PATTERN.finditer(text), range(length))]
        if ids:
            out[i, : len(ids)] = ids
    return out


def truncated_count(spec: Mapping[str, Any], texts: Sequence[str]) -> int:
    """How many of the texts have more than max_length tokens (and so are truncated)."""
    length = int(spec["max_length"])
    count = 0
    for text in texts:
        for n, _ in enumerate(_PATTERN.finditer(text), start=1):
            if n > length:
                count += 1
                break
    return count


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
        return replaced, (f"not valid UTF-8: {_plural(bad, 'invalid byte sequence')} replaced by U+FFFD "
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
    delimiter = _detect_delimiter(text, source)
    if delimiter != ",":
        notes.append(f"{p.name}: {DELIMITER_NAMES[delimiter]}-separated, detected automatically")
    header, rows = _read_rows(text, delimiter, source)
    if not rows:
        raise InputError(f"the file has a header ({_quote_list(header, 6)}) but no rows",
                         fix="add one line per text below the header", source=source)
    names, seen = [], Counter()
    for name in header:
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    return frame, fingerprint, notes


def _find_column(frame: pd.DataFrame, wanted: str) -> str | None:
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
        found = _find_column(frame, wanted)
        if found is None:
            raise InputError(f"no text column {wanted!r}; the columns are {_quote_list(columns, 30)}",
                             fix="pass the name of the column holding the texts with --text-column", source=source)
        return found, (None if found == wanted else f"text column {wanted!r} matched {found!r}")
    if wanted:
        found = _find_column(frame, wanted)
        if found is not None:
            return found, None
    for name in TEXT_COLUMN_NAMES:
        found = _find_column(frame, name)
        if found is not None and found != label:
            return found, f"text column {found!r} (found by its name)"
    candidates = [c for c in frame.columns if c != label and _is_free_text(frame[c])]
    if len(candidates) == 1:
        return candidates[0], f"text column {candidates[0]!r} (the only column of free text)"
    if not candidates:
        raise InputError(f"no column of text found among {_quote_list(columns, 30)}",
                         fix="pass the name of the column holding the texts with --text-column", source=source)
    raise InputError(f"several columns could hold the texts: {_quote_list(candidates)}",
                     fix="choose one with --text-column", source=source)


def _label_column(frame: pd.DataFrame, wanted: str | None, source: str) -> str:
    columns = [str(c) for c in frame.columns]
    if wanted:
        found = _find_column(frame, wanted)
        if found is None:
            raise InputError(f"no label column {wanted!r}; the columns are {_quote_list(columns, 30)}",
                             fix="pass the name of the column holding the sentiment labels with --label",
                             source=source)
        return found
    for name in LABEL_COLUMN_NAMES:
        found = _find_column(frame, name)
        if found is not None:
            return found
    raise InputError(f"no label column found among {_quote_list(columns, 30)} (looked for "
                     f"{_quote_list(LABEL_COLUMN_NAMES)})",
                     fix="pass the name of the column holding the sentiment labels with --label", source=source)


# --------------------------------------------------------------------------- sources


@dataclass
class _Part:
    """Texts of one source file (or folder) and their raw labels, before cleaning."""

    name: str                       # how notes and errors name it
    role: str                       # "pool" (split three ways) | "train" (train + validation) | "test"
    texts: list[str]
    labels: list[str | None]
    extra: pd.DataFrame | None = None   # other columns (for --sensitive columns of the file)
    label_column: str = "label"
    text_column: str = "text"


@dataclass
class _Read:
    parts: list[_Part]
    fingerprint: str
    path: str | None
    notes: list[str] = field(default_factory=list)
    layout: str = "file"


def _part_from_frame(frame: pd.DataFrame, *, name: str, role: str, text_column: str | None,
                     label_column: str | None, source: str, notes: list[str],
                     other_file: bool = False) -> _Part:
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
    return _Part(name=name, role=role, texts=[_as_text(v) for v in frame[text].tolist()],
                 labels=[None if _as_text(v).strip() == "" else _as_text(v) for v in frame[label].tolist()],
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
        notes.append(f"{folder.name}/: {_plural(count, 'file')} {what}")
    return texts, labels


def _read_source(data: Any, *, text_column: str | None, label_column: str | None, source_name: str | None,
                 notes: list[str]) -> _Read:
    if isinstance(data, pd.DataFrame):
        source = source_name or "the data frame"
        frame = data.copy()
        text = frame.to_csv(index=False, lineterminator="\n")
        part = _part_from_frame(frame, name=source, role="pool", text_column=text_column,
                                label_column=label_column, source=source, notes=notes)
        return _Read([part], hashlib.sha256(text.encode("utf-8")).hexdigest(), None, layout="frame")

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
    return _Read([part], fingerprint, str(path))


def _read_layout(train_file: Path, held_out: Path, *, text_column: str | None, label_column: str | None,
                 notes: list[str]) -> _Read:
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
    return _Read(parts, hasher.hexdigest(), str(train_file.parent), layout="train/dev files")


def _read_imdb(root: Path, folders: list[tuple[Path, str]], notes: list[str]) -> _Read:
    hasher = hashlib.sha256()
    parts = []
    for folder, role in folders:
        texts, labels = _read_review_folder(folder, notes, hasher)
        if not texts:
            raise InputError(f"no .txt files in {folder / 'pos'} or {folder / 'neg'}",
                             fix="put one review per .txt file in pos/ (positive) and neg/ (negative)",
                             source=str(folder))
        parts.append(_Part(name=f"{folder.name}/", role=role, texts=texts, labels=labels,
                           label_column="folder", text_column="file"))
    layout = "aclImdb folders"
    if len(parts) == 2:
        notes.append("layout: train/ split into train and validation, test/ is the test split")
    if (root / "unsup").is_dir() or (root / "train" / "unsup").is_dir():
        notes.append("unsup/ (unlabelled reviews) not used")
    return _Read(parts, hasher.hexdigest(), str(root), layout=layout)


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
            fix=f"map every label to one of {_quote_list(POSITIVE_WORDS)} (positive) or "
                f"{_quote_list(NEGATIVE_WORDS)} (negative) in the file, drop the other rows, or pass the right "
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


# --------------------------------------------------------------------------- identity groups


def check_identity_terms(terms: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """Validate axis -> group -> terms; terms are lower-cased and tokenised like the texts."""
    if not isinstance(terms, Mapping) or not terms:
        raise ValueError("identity_terms must be a non-empty mapping: axis -> group -> list of terms")
    checked: dict[str, dict[str, tuple[str, ...]]] = {}
    for axis, groups in terms.items():
        if not isinstance(groups, Mapping) or not groups:
            raise ValueError(f"identity_terms[{axis!r}] must be a non-empty mapping: group -> list of terms")
        reserved = {NONE_GROUP, MULTIPLE_GROUP, OTHER_GROUP, ANY_GROUP}
        checked[str(axis)] = {}
        for group, words in groups.items():
            if str(group) in reserved:
                raise ValueError(f"identity group name {group!r} of axis {axis!r} is reserved; rename it")
            if isinstance(words, str) or not words:
                raise ValueError(f"identity_terms[{axis!r}][{group!r}] must be a non-empty list of terms")
            normalised = tuple(" ".join(tokenize(str(w))) for w in words)
            if any(not w for w in normalised):
                raise ValueError(f"identity_terms[{axis!r}][{group!r}] holds a term without any word")
            checked[str(axis)][str(group)] = normalised
    return checked


def read_identity_terms(path: str | os.PathLike) -> dict[str, dict[str, tuple[str, ...]]]:
    """The user's identity-term lists: a JSON object axis -> group -> list of terms, validated."""
    example = '{"religion": {"muslim": ["muslim", "muslims"], "christian": ["christian", "christians"]}}'
    if not Path(path).is_file():
        raise InputError("identity-terms file not found" if not Path(path).exists()
                         else "the identity-terms path is not a file",
                         fix=f"check the path given with --identity-terms (a JSON file such as {example})",
                         source=str(path))
    try:
        terms = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(f"the identity-terms file is not UTF-8 text (byte {error.start})",
                         fix="save the file as UTF-8", source=str(path)) from None
    except json.JSONDecodeError as error:
        raise InputError(f"the identity-terms file is not valid JSON: {error.msg} at line {error.lineno}, "
                         f"column {error.colno}", fix=f"write it as a JSON object, e.g. {example}",
                         source=str(path)) from None
    try:
        return check_identity_terms(terms)
    except ValueError as error:
        raise InputError(str(error), fix=f"give each axis an object of groups, each group a list of terms, "
                                         f"e.g. {example}", source=str(path)) from None


def identity_groups(texts: Sequence[str], terms: Mapping[str, Mapping[str, Sequence[str]]]) -> pd.DataFrame:
    """One column per axis: the group whose term the text mentions, "none" or "multiple"."""
    single: dict[str, list[tuple[str, str]]] = {}
    phrases: dict[str, list[tuple[str, str]]] = {}
    for axis, groups in terms.items():
        for group, words in groups.items():
            for word in words:
                (phrases if " " in word else single).setdefault(axis, []).append((word, group))
    lookup = {axis: dict(pairs) for axis, pairs in single.items()}
    columns: dict[str, list[str]] = {axis: [] for axis in terms}
    for text in texts:
        tokens = tokenize(text)
        present = set(tokens)
        joined = f" {' '.join(tokens)} " if phrases else ""
        for axis in terms:
            found = {lookup[axis][t] for t in present if t in lookup.get(axis, {})}
            found.update(g for w, g in phrases.get(axis, []) if f" {w} " in joined)
            columns[axis].append(NONE_GROUP if not found else next(iter(found)) if len(found) == 1
                                 else MULTIPLE_GROUP)
    return pd.DataFrame(columns)


def merge_small_groups(values: pd.Series, test_mask: np.ndarray, min_group_size: int, column: str,
                       notes: list[str]) -> pd.Series:
    """Merge groups too small in the test split into "other", then into "any" (see module docstring).

    "none" is never merged. Two or more small groups become "other"; when fewer than two
    groups are then measurable, every mention becomes "any" (vs "none"). A single small
    group next to measurable ones is kept, and the audit reports it as not measurable.
    """
    def test_counts(series: pd.Series) -> pd.Series:
        return series[test_mask].value_counts()

    counts = test_counts(values)
    small = sorted(g for g in set(values) if g != NONE_GROUP and counts.get(g, 0) < min_group_size)
    if len(small) >= 2:
        listed = ", ".join(f"{g!r} ({int(counts.get(g, 0))})" for g in small)
        values = values.where(~values.isin(small), OTHER_GROUP)
        notes.append(f"{column}: groups with fewer than {min_group_size} test texts merged into {OTHER_GROUP!r}: "
                     f"{listed}")
        counts = test_counts(values)
    mentions = sorted(g for g in set(values) if g != NONE_GROUP)
    if mentions == [OTHER_GROUP]:   # every mention was merged: that is "any"
        values = values.where(values == NONE_GROUP, ANY_GROUP)
        mentions, counts = [ANY_GROUP], test_counts(values)
        notes.append(f"{column}: every mention merged into {ANY_GROUP!r} (vs {NONE_GROUP!r})")
    measurable = [g for g in set(values) if counts.get(g, 0) >= min_group_size]
    if len(measurable) < 2 and len(mentions) > 1:
        listed = ", ".join(f"{g!r} ({int(counts.get(g, 0))})" for g in mentions)
        values = values.where(values == NONE_GROUP, ANY_GROUP)
        notes.append(f"{column}: too few test texts per group ({listed}); every mention merged into "
                     f"{ANY_GROUP!r} (vs {NONE_GROUP!r})")
        counts = test_counts(values)
    for group in sorted(set(values)):
        if 0 < counts.get(group, 0) < min_group_size and len(set(values)) > 1:
            notes.append(f"{column}: group {group!r} has {int(counts.get(group, 0))} test texts, fewer than "
                         f"{min_group_size}: reported as not measurable")
    return values


def _measurable(values: pd.Series, test_mask: np.ndarray, min_group_size: int) -> list[str]:
    counts = values[test_mask].value_counts()
    return [str(g) for g, n in counts.items() if n >= min_group_size]


# --------------------------------------------------------------------------- splitting


def _stratified_partition(strata: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    keys, inverse = np.unique(strata, return_inverse=True)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    cuts = np.cumsum(fractions)
    for i in range(keys.size):
        members = rng.permutation(np.flatnonzero(inverse == i))
        bounds = [0] + [int(math.floor(c * members.size + 0.5)) for c in cuts]
        bounds[-1] = members.size
        for k in range(len(fractions)):
            parts[k].append(members[bounds[k]:bounds[k + 1]])
    return [rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts]


def containment_groups(texts: Sequence[str], *, max_tokens: int = CONTAINMENT_MAX_TOKENS) -> np.ndarray:
    """A group id per text: texts equal to another, or found (as a token sequence) inside a
    longer text of at most `max_tokens` tokens, get the longer text's group.

    Phrase-level corpora such as SST-2 hold every sub-phrase of each sentence as its own
    labelled row; split row by row, a sentence's phrases land on both sides and validation
    measures memory, not generalisation. Longest texts first; each text not yet grouped
    starts a group and claims every unclaimed text equal to one of its token spans. Longer
    texts are only grouped with exact duplicates (their spans would cost too much)."""
    keys = [tokenize(t) for t in texts]
    joined = [" ".join(k) for k in keys]
    where: dict[str, list[int]] = {}
    for i, key in enumerate(joined):
        where.setdefault(key, []).append(i)
    group = np.full(len(texts), -1, dtype=np.int64)
    next_group = 0
    for i in sorted(range(len(texts)), key=lambda j: (-len(keys[j]), j)):
        if group[i] >= 0:
            continue
        group[i] = next_group
        tokens = keys[i]
        if len(tokens) <= max_tokens:
            for start in range(len(tokens)):
                span = tokens[start]
                for end in range(start + 1, len(tokens) + 1):
                    if end > start + 1:
                        span = span + " " + tokens[end - 1]
                    for j in where.get(span, ()):
                        if group[j] < 0:
                            group[j] = next_group
        else:
            for j in where[joined[i]]:
                if group[j] < 0:
                    group[j] = next_group
        next_group += 1
    return group


def _grouped_partition(groups: np.ndarray, strata: np.ndarray, fractions: Sequence[float],
                       rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified partition of whole groups (stratum of a group: that of its first text)."""
    unique, first = np.unique(groups, return_index=True)
    parts = _stratified_partition(strata[first], fractions, rng)
    position = np.searchsorted(unique, groups)
    out = []
    for part in parts:
        chosen = np.zeros(unique.size, dtype=bool)
        chosen[part] = True
        out.append(rng.permutation(np.flatnonzero(chosen[position])).astype(np.int64))
    return out


def _stratified_sample(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    keys, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    quotas = k * sizes / sizes.sum()
    take = np.floor(quotas).astype(np.int64)
    order = np.argsort(-(quotas - take), kind="stable")
    take[order[: k - int(take.sum())]] += 1
    chosen = [rng.choice(np.flatnonzero(inverse == i), size=min(int(take[i]), int(sizes[i])), replace=False)
              for i in range(keys.size)]
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------- the loader


def load_text(
    data: pd.DataFrame | str | os.PathLike,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    sensitive_columns: Sequence[str] = (),
    identity_terms: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    seed: int = 0,
    min_group_size: int = 20,
    max_rows: int | None = None,
    positive_class: str = "positive sentiment",
    kind: str | None = None,
    description: str | None = None,
    source_name: str | None = None,
    max_vocabulary: int = MAX_VOCABULARY,
    min_count: int = MIN_TOKEN_COUNT,
    max_length: int | None = None,
    validation_share: float = VALIDATION_SHARE,
) -> DomainData:
    """Labelled texts (a frame, a delimited file, or a folder layout) -> `DomainData`.

    Split.raw is an object array of texts; groups are the identity axes (or the file's own
    columns named in sensitive_columns). `validation_share` is the share of the train file held
    out for validation when a separate test file exists. See the module docstring for every rule.
    """
    terms = check_identity_terms(identity_terms if identity_terms is not None else IDENTITY_TERMS)
    notes: list[str] = []
    read = _read_source(data, text_column=text_column, label_column=label_column, source_name=source_name,
                        notes=notes)
    source = read.path or source_name or "the data frame"
    kind = kind or ("generated" if read.path is None else "file")
    rows_read = sum(len(p.texts) for p in read.parts)
    notes.insert(0, f"read {rows_read:,} texts" + (f" ({', '.join(f'{p.name} {len(p.texts):,}' for p in read.parts)})"
                                                  if len(read.parts) > 1 else ""))

    # --- clean: HTML breaks, empty texts, missing labels
    texts, raw_labels, roles, extras = [], [], [], []
    breaks = 0
    for part in read.parts:
        empty = missing = 0
        for i, (text, label) in enumerate(zip(part.texts, part.labels)):
            cleaned, n = _HTML_BREAK.subn(" ", text)
            breaks += n
            if not cleaned.strip():
                empty += 1
                continue
            if label is None:
                missing += 1
                continue
            texts.append(cleaned)
            raw_labels.append(label)
            roles.append(part.role)
            extras.append((part, i))
        if empty:
            notes.append(f"{part.name}: dropped {_plural(empty, 'empty text')} (nothing to classify)")
        if missing:
            notes.append(f"{part.name}: dropped {_plural(missing, 'row')} without a label")
    if breaks:
        notes.append(f"replaced {_plural(breaks, 'HTML line break')} (<br />) by spaces")
    if not texts:
        raise InputError("no text is left: every text is empty or has no label",
                         fix="pass a file whose text column holds the texts (see --text-column) and whose label "
                             "column is filled in", source=source)
    label_name = read.parts[0].label_column
    labels, label_note = map_labels(raw_labels, label_name, source)
    notes.append(label_note)
    roles_array = np.array(roles, dtype=object)
    for value, word in ((1, "positive"), (0, "negative")):
        count = int((labels == value).sum())
        if count < MIN_CLASS_ROWS:
            raise InputError(
                f"label column {label_name!r} has {count} {word} text(s) (label {value}); at least "
                f"{MIN_CLASS_ROWS} of each class are needed to train and test a classifier",
                fix="use data with both positive and negative texts (check --label, or raise --max-rows)",
                source=source)
    texts_array = np.array(texts, dtype=object)

    # --- the file's own group columns named with --sensitive
    file_columns: dict[str, pd.Series] = {}
    axes_wanted: list[str] = []
    for name in sensitive_columns:
        in_file = []
        for part in read.parts:
            if part.extra is not None and _find_column(part.extra, name) is not None:
                in_file.append(part)
        if name in terms and not in_file:
            axes_wanted.append(name)
            continue
        if len(in_file) != len(read.parts):
            available = sorted({str(c) for p in read.parts if p.extra is not None for c in p.extra.columns})
            raise InputError(
                f"no group column {name!r}: it is neither an identity axis built from the text "
                f"({_quote_list(list(terms))}) nor a column of every file"
                + (f" (columns besides text and label: {_quote_list(available)})" if available else ""),
                fix=f"pass --sensitive with axes among {_quote_list(list(terms))} or columns of the file",
                source=source)
        values = []
        for part, i in extras:
            value = _as_text(part.extra[_find_column(part.extra, name)].iloc[i]).strip()
            values.append(value or MISSING_GROUP)
        file_columns[name] = pd.Series(values, dtype=object)

    # --- subsample
    strata_identity = identity_groups(texts, terms)
    any_mention = (strata_identity != NONE_GROUP).any(axis=1).to_numpy()
    if max_rows is not None and len(texts) > max_rows:
        rng = np.random.default_rng([seed, 1])
        strata = np.char.add(np.char.add(roles_array.astype(str), labels.astype(str)), any_mention.astype(str))
        held_out = np.flatnonzero(roles_array == "test")
        if 0 < held_out.size <= int(max_rows) // 2:
            # the held-out file is the benchmark: keep it whole, subsample the train file only
            train_rows = np.flatnonzero(roles_array != "test")
            keep = np.sort(np.concatenate([train_rows[_stratified_sample(strata[train_rows],
                                                                          int(max_rows) - held_out.size, rng)],
                                           held_out]))
            how = f"the held-out file kept whole ({held_out.size:,} texts), the train file subsampled"
        else:
            keep = _stratified_sample(strata, int(max_rows), rng)
            how = "stratified on label x identity mention" + (" x file" if len(read.parts) > 1 else "")
        notes.append(f"kept a subsample of {keep.size:,} of {len(texts):,} texts (--max-rows {max_rows}): {how}")
        texts_array, labels = texts_array[keep], labels[keep]
        roles_array, any_mention = roles_array[keep], any_mention[keep]
        strata_identity = strata_identity.iloc[keep].reset_index(drop=True)
        file_columns = {c: s.iloc[keep].reset_index(drop=True) for c, s in file_columns.items()}
    for role, what in (("train", "training"), ("test", "test")):
        if role in set(roles_array) and len(set(labels[roles_array == role])) < 2:
            raise InputError(f"the {what} file holds only one class", fix="use a file with both positive and negative "
                             "texts", source=source)

    # --- split
    rng = np.random.default_rng([seed, 2])
    strata = np.char.add(labels.astype(str), any_mention.astype(str))
    pool = np.flatnonzero(roles_array != "test")
    text_groups = containment_groups(texts_array[pool].tolist())
    kept_together = int(pool.size - np.unique(text_groups).size)
    if kept_together:
        notes.append(f"{kept_together:,} texts are duplicates of another text or token spans inside a longer one "
                     f"(e.g. SST-2's sub-phrases of a sentence): each is kept in the split of the longest text that "
                     f"holds it, so validation and test do not see phrases of training sentences "
                     f"({np.unique(text_groups).size:,} groups)")
    if (roles_array == "pool").all():
        train_idx, validation_idx, test_idx = _grouped_partition(text_groups, strata, SPLIT_FRACTIONS, rng)
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified on label x identity mention")
    else:
        a, b = _grouped_partition(text_groups, strata[pool], (1 - validation_share, validation_share), rng)
        train_idx, validation_idx = pool[a], pool[b]
        test_idx = rng.permutation(np.flatnonzero(roles_array == "test"))
        notes.append(f"train file split {1 - validation_share:.0%}/{validation_share:.0%} into train and validation "
                     f"(seed {seed}), stratified on label x identity mention; the held-out file is the test split")
    for name, index in (("train", train_idx), ("validation", validation_idx), ("test", test_idx)):
        present = set(labels[index].tolist())
        if present != {0, 1}:
            raise InputError(f"the {name} split holds only one class ({len(index)} texts)",
                             fix="use more texts of each class (raise or drop --max-rows)", source=source)

    # --- tokenizer, fitted on train only
    spec = fit_tokenizer(texts_array[train_idx].tolist(), max_vocabulary=max_vocabulary, min_count=min_count,
                         max_length=max_length,
                         extra={"label": {"column": label_name, "positive_class": positive_class,
                                          "positive_value": 1}})
    rule = spec["vocabulary_rule"]
    notes.append(f"tokenizer fitted on the train split: {spec['vocabulary_size']:,} vocabulary entries "
                 f"(PAD, OOV and the train tokens seen at least {min_count} times, at most {max_vocabulary:,}; "
                 f"{rule['distinct_train_tokens']:,} distinct train tokens, "
                 f"{rule['train_token_coverage'] or 0:.1%} of train tokens covered); max length "
                 f"{spec['max_length']} tokens ({spec['max_length_rule']})")
    truncated = {}
    for name, index in (("train", train_idx), ("validation", validation_idx), ("test", test_idx)):
        truncated[name] = truncated_count(spec, texts_array[index].tolist())
    if any(truncated.values()):
        notes.append(f"texts longer than {spec['max_length']} tokens are truncated (the first {spec['max_length']} "
                     "tokens kept): " + ", ".join(f"{name} {n:,} of {len(i):,}" for (name, n), i in
                                                  zip(truncated.items(), (train_idx, validation_idx, test_idx))))
    else:
        notes.append(f"no text is longer than {spec['max_length']} tokens: nothing truncated")
    spec["truncated_texts"] = truncated

    # --- groups
    test_mask = np.zeros(len(texts_array), dtype=bool)
    test_mask[test_idx] = True
    group_columns: dict[str, pd.Series] = {}
    group_notes: list[str] = []
    axes = axes_wanted if sensitive_columns else list(terms)
    for axis in axes:
        values = merge_small_groups(strata_identity[axis].astype(object), test_mask, min_group_size, axis,
                                    group_notes)
        measurable = _measurable(values, test_mask, min_group_size)
        if len(measurable) < 2 and axis not in axes_wanted:
            mentions = int((values[test_mask] != NONE_GROUP).sum())
            group_notes.append(f"{axis}: not audited, fewer than two groups with {min_group_size} test texts "
                               f"(test texts with a {axis} term: {mentions:,})")
            continue
        group_columns[axis] = values
    for name, values in file_columns.items():
        group_columns[name] = merge_small_groups(values, test_mask, min_group_size, name, group_notes)
    if not group_columns:
        values = pd.Series(np.where(any_mention, ANY_GROUP, NONE_GROUP), dtype=object)
        group_columns[IDENTITY_COLUMN] = values
        counts = values[test_mask].value_counts()
        group_notes.append(f"no identity axis has two measurable groups: audited by {IDENTITY_COLUMN!r}, any identity "
                           f"term ({int(counts.get(ANY_GROUP, 0))} test texts) vs none "
                           f"({int(counts.get(NONE_GROUP, 0))})")
        if len(_measurable(values, test_mask, min_group_size)) < 2:
            group_notes.append(f"{IDENTITY_COLUMN}: fewer than {min_group_size} test texts in a group; the audit "
                               "reports it as not measurable (see the counterfactual probe instead)")
    notes.extend(group_notes)
    sensitive = tuple(group_columns)
    if any(c in terms for c in sensitive) or IDENTITY_COLUMN in sensitive:
        notes.append("groups are built from identity terms found in the texts (mentions, not the writer's identity); "
                     "they are used for the audit only, the model sees the text as it is")

    def split(index: np.ndarray) -> Split:
        groups = pd.DataFrame({c: group_columns[c].iloc[index].to_numpy(dtype=object) for c in sensitive}).astype(str)
        return Split(raw=texts_array[index].copy(), labels=labels[index].astype(np.int64), groups=groups)

    train, validation, test = split(train_idx), split(validation_idx), split(test_idx)
    length = int(spec["max_length"])
    describe = description or (f"{Path(read.path).name}: {len(texts_array):,} labelled texts ({read.layout})"
                               if read.path else f"{len(texts_array):,} labelled texts")
    splits = (train, validation, test)
    class_balance = {
        "positive_rate": float(labels.mean()),
        "positives": int(labels.sum()),
        **{f"{n}_rows": len(s) for n, s in zip(("train", "validation", "test"), splits)},
        **{f"{n}_positive_rate": float(s.labels.mean()) for n, s in zip(("train", "validation", "test"), splits)},
    }
    return DomainData(
        train=train, validation=validation, test=test,
        preprocessing=spec,
        feature_names=tuple(f"token_{i}" for i in range(length)),
        feature_groups={"text": list(range(length))},
        sensitive_columns=sensitive,
        label_name=label_name,
        positive_class=positive_class,
        source=DataSource(kind=kind, description=describe, path=read.path, fingerprint=read.fingerprint,
                          rows=len(texts_array), notes=tuple(notes)),
        class_balance=class_balance,
    )
