"""The text tokenizer spec (format "edgeaudit.text.v1") that ships beside every .tflite.

Tokens are the matches of TOKEN_PATTERN (Python `re`, Unicode), each lower-cased. The
vocabulary holds PAD (id 0), OOV (id 1) and the train tokens seen at least MIN_TOKEN_COUNT
times, most frequent first, at most MAX_VOCABULARY entries: the embedding table, hence the
.tflite, stays bounded (about vocabulary x embedding width bytes in int8). max_length is
the smallest multiple of 8 at or above the 99.5th percentile of train text lengths (in
[16, 256]). `fit_tokenizer` fits the spec on the train texts only; `encode_texts` applies
only the spec ("how_to_use" says how on a device).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

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

_PATTERN = re.compile(TOKEN_PATTERN)

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


def as_text(value: Any) -> str:
    """A cell as text: missing (None, NaN, NA) reads as the empty text."""
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
    return [as_text(t) for t in list(texts)]


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
    """InputError unless `spec` is a tokenizer spec of this format."""
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
