"""Audit groups of texts: identity-term mentions, small-group merging, and near-duplicate groups.

Text has no demographic columns, so one group column per identity axis is built from term
lists (IDENTITY_TERMS, replaceable): a text is in group g of an axis when it holds a term
of g, "none" when it holds no term of the axis, "multiple" when terms of several groups.
`merge_small_groups` merges groups too small in the test split. `containment_groups` keeps
a sentence and its sub-phrases (SST-2) together so they land in one split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.text_tokenizer import tokenize
from pipeline.errors import InputError

NONE_GROUP, MULTIPLE_GROUP, OTHER_GROUP, ANY_GROUP = "none", "multiple", "other", "any"
CONTAINMENT_MAX_TOKENS = 64

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
