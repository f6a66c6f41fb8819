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

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.splitting import (
    class_balance,
    domain_data,
    grouped_partition,
    make_splits,
    measurable_groups,
    quote_list,
    stratified_sample,
)
from pipeline.data.text_groups import (  # noqa: F401 - re-exported: the groups' old home
    ANY_GROUP,
    CONTAINMENT_MAX_TOKENS,
    IDENTITY_TERMS,
    MULTIPLE_GROUP,
    NONE_GROUP,
    OTHER_GROUP,
    check_identity_terms,
    containment_groups,
    identity_groups,
    merge_small_groups,
    read_identity_terms,
)
from pipeline.data.text_read import (  # noqa: F401 - re-exported: the readers' old home
    LABEL_COLUMN_NAMES,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    TEXT_COLUMN_NAMES,
    TextSource,
    decode_bytes,
    find_column,
    map_labels,
    plural,
    read_source,
    read_text_table,
)
from pipeline.data.text_tokenizer import (  # noqa: F401 - re-exported: the tokenizer's old home
    FORMAT,
    HOW_TO_USE,
    LENGTH_MULTIPLE,
    LENGTH_PERCENTILE,
    MAX_MAX_LENGTH,
    MAX_VOCABULARY,
    MIN_MAX_LENGTH,
    MIN_TOKEN_COUNT,
    OOV_ID,
    OOV_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    TOKEN_PATTERN,
    as_text,
    check_spec,
    choose_max_length,
    encode_texts,
    fit_tokenizer,
    token_spans,
    tokenize,
    truncated_count,
)
from pipeline.domain import DataSource, DomainData
from pipeline.errors import InputError

# Of the train file, when a separate test file exists. 10 % keeps more data for training:
# on SST-2 (6,700 validation phrases) the word CNN gained about a point of dev accuracy over
# 20 % (`python -m benchmarks.sentiment_cnn_variants`).
VALIDATION_SHARE = 0.1
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # of a single file
MIN_CLASS_ROWS = 5
MISSING_GROUP = "(missing)"
IDENTITY_COLUMN = "identity"

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)



@dataclass
class _Texts:
    """The labelled texts being loaded, one entry per text: the text, its 0/1 label, its role
    ("pool" | "train" | "test"), its identity-term groups (one column per axis), whether it
    mentions any identity term, and the file's own group columns named with --sensitive."""

    texts: np.ndarray
    labels: np.ndarray
    roles: np.ndarray
    identity: pd.DataFrame
    any_mention: np.ndarray
    file_columns: dict[str, pd.Series]

    def subset(self, keep: np.ndarray) -> "_Texts":
        return _Texts(texts=self.texts[keep], labels=self.labels[keep], roles=self.roles[keep],
                      identity=self.identity.iloc[keep].reset_index(drop=True), any_mention=self.any_mention[keep],
                      file_columns={c: s.iloc[keep].reset_index(drop=True) for c, s in self.file_columns.items()})


# --------------------------------------------------------------------------- cleaning and labels


def _clean(read: TextSource, source: str, notes: list[str]
           ) -> tuple[list[str], list[str], list[str], list[tuple]]:
    """HTML breaks -> spaces; empty texts and rows without a label dropped (counted).

    Returns (texts, raw labels, roles, (part, row) of each kept text)."""
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
            notes.append(f"{part.name}: dropped {plural(empty, 'empty text')} (nothing to classify)")
        if missing:
            notes.append(f"{part.name}: dropped {plural(missing, 'row')} without a label")
    if breaks:
        notes.append(f"replaced {plural(breaks, 'HTML line break')} (<br />) by spaces")
    if not texts:
        raise InputError("no text is left: every text is empty or has no label",
                         fix="pass a file whose text column holds the texts (see --text-column) and whose label "
                             "column is filled in", source=source)
    return texts, raw_labels, roles, extras


def _labels(raw_labels: list[str], label_name: str, source: str, notes: list[str],
            positive_label: str | None = None) -> np.ndarray:
    """0/1 labels by the explicit word lists (or one-vs-rest by --positive-label); InputError when a
    class has fewer than MIN_CLASS_ROWS texts."""
    if positive_label is not None:
        from pipeline.data.labels import one_vs_rest

        labels, _, label_note = one_vs_rest([value.strip() for value in raw_labels], positive_label,
                                            what=f"label column {label_name!r}", source=source)
    else:
        labels, label_note = map_labels(raw_labels, label_name, source)
    notes.append(label_note)
    for value, word in ((1, "positive"), (0, "negative")):
        count = int((labels == value).sum())
        if count < MIN_CLASS_ROWS:
            raise InputError(
                f"label column {label_name!r} has {count} {word} text(s) (label {value}); at least "
                f"{MIN_CLASS_ROWS} of each class are needed to train and test a classifier",
                fix="use data with both positive and negative texts (check --label, or raise --max-rows)",
                source=source)
    return labels


def _file_group_columns(read: TextSource, extras: list[tuple], sensitive_columns: Sequence[str],
                        terms: Mapping[str, Mapping[str, Sequence[str]]], source: str
                        ) -> tuple[dict[str, pd.Series], list[str]]:
    """(the file's own group columns named with --sensitive, the identity axes named with it)."""
    file_columns: dict[str, pd.Series] = {}
    axes_wanted: list[str] = []
    for name in sensitive_columns:
        in_file = []
        for part in read.parts:
            if part.extra is not None and find_column(part.extra, name) is not None:
                in_file.append(part)
        if name in terms and not in_file:
            axes_wanted.append(name)
            continue
        if len(in_file) != len(read.parts):
            available = sorted({str(c) for p in read.parts if p.extra is not None for c in p.extra.columns})
            raise InputError(
                f"no group column {name!r}: it is neither an identity axis built from the text "
                f"({quote_list(list(terms))}) nor a column of every file"
                + (f" (columns besides text and label: {quote_list(available)})" if available else ""),
                fix=f"pass --sensitive with axes among {quote_list(list(terms))} or columns of the file",
                source=source)
        values = []
        for part, i in extras:
            value = as_text(part.extra[find_column(part.extra, name)].iloc[i]).strip()
            values.append(value or MISSING_GROUP)
        file_columns[name] = pd.Series(values, dtype=object)
    return file_columns, axes_wanted


# --------------------------------------------------------------------------- subsample and split


def _subsample(rows: _Texts, max_rows: int, seed: int, several_files: bool, notes: list[str]) -> _Texts:
    """A subsample of `max_rows` texts stratified on file x label x identity mention; a held-out
    file of at most half of `max_rows` texts is kept whole (it is the benchmark)."""
    rng = np.random.default_rng([seed, 1])
    strata = np.char.add(np.char.add(rows.roles.astype(str), rows.labels.astype(str)), rows.any_mention.astype(str))
    held_out = np.flatnonzero(rows.roles == "test")
    if 0 < held_out.size <= int(max_rows) // 2:
        train_rows = np.flatnonzero(rows.roles != "test")
        keep = np.sort(np.concatenate([train_rows[stratified_sample(strata[train_rows],
                                                                     int(max_rows) - held_out.size, rng)],
                                       held_out]))
        how = f"the held-out file kept whole ({held_out.size:,} texts), the train file subsampled"
    else:
        keep = stratified_sample(strata, int(max_rows), rng)
        how = "stratified on label x identity mention" + (" x file" if several_files else "")
    notes.append(f"kept a subsample of {keep.size:,} of {len(rows.texts):,} texts (--max-rows {max_rows}): {how}")
    return rows.subset(keep)


def _split(rows: _Texts, seed: int, validation_share: float, source: str, notes: list[str]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices, stratified on label x identity mention, keeping a text
    and the texts it contains (`containment_groups`) on one side."""
    labels, roles = rows.labels, rows.roles
    for role, what in (("train", "training"), ("test", "test")):
        if role in set(roles) and len(set(labels[roles == role])) < 2:
            raise InputError(f"the {what} file holds only one class", fix="use a file with both positive and negative "
                             "texts", source=source)
    rng = np.random.default_rng([seed, 2])
    strata = np.char.add(labels.astype(str), rows.any_mention.astype(str))
    pool = np.flatnonzero(roles != "test")
    text_groups = containment_groups(rows.texts[pool].tolist())
    kept_together = int(pool.size - np.unique(text_groups).size)
    if kept_together:
        notes.append(f"{kept_together:,} texts are duplicates of another text or token spans inside a longer one "
                     f"(e.g. SST-2's sub-phrases of a sentence): each is kept in the split of the longest text that "
                     f"holds it, so validation and test do not see phrases of training sentences "
                     f"({np.unique(text_groups).size:,} groups)")
    if (roles == "pool").all():
        train_idx, validation_idx, test_idx = grouped_partition(text_groups, strata, SPLIT_FRACTIONS, rng)
        notes.append(f"split 60/20/20 train/validation/test (seed {seed}), stratified on label x identity mention")
    else:
        a, b = grouped_partition(text_groups, strata[pool], (1 - validation_share, validation_share), rng)
        train_idx, validation_idx = pool[a], pool[b]
        test_idx = rng.permutation(np.flatnonzero(roles == "test"))
        notes.append(f"train file split {1 - validation_share:.0%}/{validation_share:.0%} into train and validation "
                     f"(seed {seed}), stratified on label x identity mention; the held-out file is the test split")
    for name, index in (("train", train_idx), ("validation", validation_idx), ("test", test_idx)):
        present = set(labels[index].tolist())
        if present != {0, 1}:
            raise InputError(f"the {name} split holds only one class ({len(index)} texts)",
                             fix="use more texts of each class (raise or drop --max-rows)", source=source)
    return train_idx, validation_idx, test_idx


# --------------------------------------------------------------------------- tokenizer and groups


def _fit_tokenizer(texts: np.ndarray, parts: Sequence[np.ndarray], *, label_name: str, positive_class: str,
                   max_vocabulary: int, min_count: int, max_length: int | None, notes: list[str]) -> dict:
    """The tokenizer spec fitted on the train texts, with the truncated texts of each split counted."""
    train_idx = parts[0]
    spec = fit_tokenizer(texts[train_idx].tolist(), max_vocabulary=max_vocabulary, min_count=min_count,
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
    for name, index in zip(("train", "validation", "test"), parts):
        truncated[name] = truncated_count(spec, texts[index].tolist())
    if any(truncated.values()):
        notes.append(f"texts longer than {spec['max_length']} tokens are truncated (the first {spec['max_length']} "
                     "tokens kept): " + ", ".join(f"{name} {n:,} of {len(i):,}" for (name, n), i in
                                                  zip(truncated.items(), parts)))
    else:
        notes.append(f"no text is longer than {spec['max_length']} tokens: nothing truncated")
    spec["truncated_texts"] = truncated
    return spec


def _audit_groups(rows: _Texts, test_idx: np.ndarray, terms: Mapping[str, Mapping[str, Sequence[str]]],
                  axes_wanted: list[str], sensitive_given: bool, min_group_size: int, notes: list[str]
                  ) -> dict[str, pd.Series]:
    """The audit's group columns: identity axes with two measurable groups (or named with
    --sensitive), the file's own columns, else "identity" (any term vs none). Small groups merged."""
    test_mask = np.zeros(len(rows.texts), dtype=bool)
    test_mask[test_idx] = True
    group_columns: dict[str, pd.Series] = {}
    group_notes: list[str] = []
    for axis in (axes_wanted if sensitive_given else list(terms)):
        values = merge_small_groups(rows.identity[axis].astype(object), test_mask, min_group_size, axis,
                                    group_notes)
        if len(measurable_groups(values, test_mask, min_group_size)) < 2 and axis not in axes_wanted:
            mentions = int((values[test_mask] != NONE_GROUP).sum())
            group_notes.append(f"{axis}: not audited, fewer than two groups with {min_group_size} test texts "
                               f"(test texts with a {axis} term: {mentions:,})")
            continue
        group_columns[axis] = values
    for name, values in rows.file_columns.items():
        group_columns[name] = merge_small_groups(values, test_mask, min_group_size, name, group_notes)
    if not group_columns:
        values = pd.Series(np.where(rows.any_mention, ANY_GROUP, NONE_GROUP), dtype=object)
        group_columns[IDENTITY_COLUMN] = values
        counts = values[test_mask].value_counts()
        group_notes.append(f"no identity axis has two measurable groups: audited by {IDENTITY_COLUMN!r}, any identity "
                           f"term ({int(counts.get(ANY_GROUP, 0))} test texts) vs none "
                           f"({int(counts.get(NONE_GROUP, 0))})")
        if len(measurable_groups(values, test_mask, min_group_size)) < 2:
            group_notes.append(f"{IDENTITY_COLUMN}: fewer than {min_group_size} test texts in a group; the audit "
                               "reports it as not measurable (see the counterfactual probe instead)")
    notes.extend(group_notes)
    if any(c in terms for c in group_columns) or IDENTITY_COLUMN in group_columns:
        notes.append("groups are built from identity terms found in the texts (mentions, not the writer's identity); "
                     "they are used for the audit only, the model sees the text as it is")
    return group_columns


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
    positive_label: str | None = None,
) -> DomainData:
    """Labelled texts (a frame, a delimited file, or a folder layout) -> `DomainData`.
    positive_label (--positive-label): the label value meaning 1, every other 0; None: sentiment words.

    Split.raw is an object array of texts; groups are the identity axes (or the file's own
    columns named in sensitive_columns). `validation_share` is the share of the train file held
    out for validation when a separate test file exists. See the module docstring for every rule.

    The steps: read, clean, label, find the file's group columns, subsample, split, fit the
    tokenizer on train, build the audit groups, assemble.
    """
    if positive_label is not None and positive_class == "positive sentiment":
        positive_class = f"label {positive_label!r}"
    terms = check_identity_terms(identity_terms if identity_terms is not None else IDENTITY_TERMS)
    notes: list[str] = []
    read = read_source(data, text_column=text_column, label_column=label_column, source_name=source_name,
                       notes=notes)
    source = read.path or source_name or "the data frame"
    kind = kind or ("generated" if read.path is None else "file")
    rows_read = sum(len(p.texts) for p in read.parts)
    notes.insert(0, f"read {rows_read:,} texts" + (f" ({', '.join(f'{p.name} {len(p.texts):,}' for p in read.parts)})"
                                                  if len(read.parts) > 1 else ""))
    texts, raw_labels, roles, extras = _clean(read, source, notes)
    label_name = read.parts[0].label_column
    labels = _labels(raw_labels, label_name, source, notes, positive_label)
    file_columns, axes_wanted = _file_group_columns(read, extras, sensitive_columns, terms, source)
    identity = identity_groups(texts, terms)
    rows = _Texts(texts=np.array(texts, dtype=object), labels=labels, roles=np.array(roles, dtype=object),
                  identity=identity, any_mention=(identity != NONE_GROUP).any(axis=1).to_numpy(),
                  file_columns=file_columns)
    if max_rows is not None and len(texts) > max_rows:
        rows = _subsample(rows, max_rows, seed, len(read.parts) > 1, notes)
    parts = _split(rows, seed, validation_share, source, notes)
    spec = _fit_tokenizer(rows.texts, parts, label_name=label_name, positive_class=positive_class,
                          max_vocabulary=max_vocabulary, min_count=min_count, max_length=max_length, notes=notes)
    group_columns = _audit_groups(rows, parts[2], terms, axes_wanted, bool(sensitive_columns), min_group_size, notes)

    splits = make_splits(parts, raw_of=lambda index: rows.texts[index].copy(), labels=rows.labels,
                         groups=group_columns)
    length = int(spec["max_length"])
    count = len(rows.texts)
    describe = description or (f"{Path(read.path).name}: {count:,} labelled texts ({read.layout})"
                               if read.path else f"{count:,} labelled texts")
    data_source = DataSource(kind=kind, description=describe, path=read.path, fingerprint=read.fingerprint,
                             rows=count, notes=tuple(notes))
    balance = class_balance(splits, positive_rate=float(rows.labels.mean()), positives=int(rows.labels.sum()))
    return domain_data(splits, preprocessing=spec, feature_names=[f"token_{i}" for i in range(length)],
                       feature_groups={"text": list(range(length))}, sensitive_columns=tuple(group_columns),
                       label_name=label_name, positive_class=positive_class, source=data_source, balance=balance)
