"""Text data: the tokenizer spec, reading files and folders, labels, identity groups (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.sentiment_generator import SPURIOUS_LINKS, generate_reviews
from pipeline.data.text import (
    ANY_GROUP, FORMAT, IDENTITY_COLUMN, MULTIPLE_GROUP, NONE_GROUP, OOV_ID, OTHER_GROUP, PAD_ID,
    check_identity_terms, containment_groups, decode_bytes, encode_texts, fit_tokenizer, identity_groups,
    load_text, merge_small_groups, read_text_table, tokenize, truncated_count,
)
from pipeline.errors import InputError

SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "sentiment" / "sst2"

POSITIVE = ["a wonderful film", "great food and friendly staff", "I loved it", "superb acting",
            "the battery lasts for days", "really good value", "an excellent phone", "lovely room"]
NEGATIVE = ["a boring film", "cold food and rude staff", "I hated it", "weak acting",
            "the battery died in an hour", "really poor value", "a terrible phone", "dirty room"]
SUBJECTS = ["my sister", "my brother", "my Muslim friend", "my Christian friend", "my Mexican coworker",
            "my German coworker", "my friend", "someone"]


def corpus(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A tiny labelled corpus with identity mentions."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.random() < 0.5)
        opinion = rng.choice(POSITIVE if label else NEGATIVE)
        subject = rng.choice(SUBJECTS)
        rows.append({"review": f"{subject} said {opinion} ({i})", "sentiment": "positive" if label else "negative"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- tokenizer spec


def test_tokenize_lowercases_and_splits_punctuation_and_keeps_contractions():
    assert tokenize("I didn't LOVE it... 4.5/5!") == ["i", "didn't", "love", "it", ".", ".", ".", "4", ".",
                                                      "5", "/", "5", "!"]
    assert tokenize("does n't , it 's") == ["does", "n't", ",", "it", "'s"]
    assert tokenize("") == []


def test_fit_and_encode_use_only_the_spec():
    spec = fit_tokenizer(["good good film", "bad film", "good plot"], min_count=2, max_length=4)
    assert spec["format"] == FORMAT and spec["vocabulary"][:2] == ["<pad>", "<oov>"]
    assert spec["vocabulary"][2:] == ["good", "film"]  # by count, then alphabetical; 'bad', 'plot' seen once
    assert spec["vocabulary_size"] == 4 and spec["how_to_use"]
    shipped = json.loads(json.dumps(spec))
    ids = encode_texts(shipped, ["Good FILM", "good bad film good film extra", "", None, "unknown"])
    assert ids.dtype == np.int32 and ids.shape == (5, 4)
    good, film = 2, 3
    assert ids[0].tolist() == [good, film, PAD_ID, PAD_ID]
    assert ids[1].tolist() == [good, OOV_ID, film, good]    # truncated: the first 4 tokens kept
    assert ids[2].tolist() == ids[3].tolist() == [PAD_ID] * 4
    assert ids[4].tolist() == [OOV_ID, PAD_ID, PAD_ID, PAD_ID]
    assert encode_texts(shipped, "good").shape == (1, 4)
    assert truncated_count(shipped, ["a b c d", "a b c d e", ""]) == 1


def test_vocabulary_is_capped_and_max_length_follows_train_lengths():
    texts = [" ".join(f"w{i % 50}" for i in range(k, k + 10)) for k in range(200)]
    spec = fit_tokenizer(texts, max_vocabulary=12, min_count=1)
    assert spec["vocabulary_size"] == 12
    assert spec["max_length"] == 16    # 10 tokens -> the 16 minimum
    long = fit_tokenizer([" ".join(["x"] * 30)] * 10)
    assert long["max_length"] == 32
    with pytest.raises(InputError, match="format"):
        encode_texts({"format": "edgeaudit.tabular.v1"}, ["x"])


# --------------------------------------------------------------------------- reading


def test_decode_bytes_reports_what_it_did():
    assert decode_bytes("héllo".encode()) == ("héllo", None)
    assert decode_bytes(b"\xef\xbb\xbfhi")[1] == "a UTF-8 byte-order mark was skipped"
    assert decode_bytes("hi".encode("utf-16"))[0] == "hi"
    text, note = decode_bytes("café ".encode() + b"\xff bad")
    assert "\ufffd" in text and "café" in text and "1 invalid byte sequence replaced" in note
    text, note = decode_bytes("café crème".encode("cp1252"))
    assert text == "café crème" and "Windows-1252" in note


def test_read_text_table_handles_quotes_and_names_bad_lines(tmp_path):
    csv_file = tmp_path / "reviews.csv"
    csv_file.write_text('review,sentiment\n"Good, really good",positive\n"He said ""meh""",negative\n')
    frame, fingerprint, _ = read_text_table(csv_file)
    assert frame["review"].tolist() == ["Good, really good", 'He said "meh"'] and len(fingerprint) == 64
    tsv = tmp_path / "train.tsv"
    tsv.write_text('label\tsentence\n1\t"quoted" start , fine\n0\tplain\n')
    frame, _, notes = read_text_table(tsv)
    assert frame["sentence"].tolist() == ['"quoted" start , fine', "plain"]
    assert any("tab-separated" in n for n in notes)
    broken = tmp_path / "broken.csv"
    broken.write_text("text,label\n" + "fine,1\n" * 20 + "not, quoted, here,0\nok,0\n")
    with pytest.raises(InputError, match=r"line 22 has 4 fields; the header has 2") as error:
        read_text_table(broken)
    assert "How to fix" in str(error.value) and "broken.csv" in str(error.value)


# --------------------------------------------------------------------------- loading


def test_load_frame_splits_maps_labels_and_builds_groups():
    data = load_text(corpus(600), text_column="review", label_column="sentiment", min_group_size=10, seed=3)
    assert len(data.train) + len(data.validation) + len(data.test) == data.source.rows == 600
    assert data.label_name == "sentiment" and data.positive_class == "positive sentiment"
    assert any("'positive' -> 1" in n and "'negative' -> 0" in n for n in data.source.notes)
    assert set(data.sensitive_columns) <= {"gender", "religion", "nationality"} and "gender" in data.sensitive_columns
    assert isinstance(data.train.raw, np.ndarray) and data.train.raw.dtype == object
    assert data.feature_names == tuple(f"token_{i}" for i in range(data.preprocessing["max_length"]))
    for split in (data.train, data.validation, data.test):
        assert isinstance(split.groups.index, pd.RangeIndex)
        assert set(split.groups["gender"]) <= {"female", "male", NONE_GROUP, MULTIPLE_GROUP, OTHER_GROUP}
    sister = [i for i, t in enumerate(data.test.raw) if t.startswith("my sister")]
    assert (data.test.groups["gender"].iloc[sister] == "female").all()
    again = load_text(corpus(600), text_column="review", label_column="sentiment", min_group_size=10, seed=3)
    assert again.source.fingerprint == data.source.fingerprint
    assert list(again.test.raw) == list(data.test.raw)


def test_file_with_label_words_is_found_by_column_names(tmp_path):
    path = tmp_path / "imdb.csv"
    corpus(300).to_csv(path, index=False)
    data = load_text(path, min_group_size=5)
    assert data.source.kind == "file" and data.source.path == str(path)
    assert any("text column 'review' (found by its name)" in n for n in data.source.notes)
    assert data.label_name == "sentiment"


@pytest.mark.parametrize("labels, message", [
    (["positive", "negative", "neutral"], r"not a sentiment label: 'neutral' \(\d+ rows\)"),
    (["positive"], r"has 0 negative text"),
])
def test_bad_labels_are_errors_that_name_the_value(labels, message):
    frame = pd.DataFrame({"text": [f"text number {i}" for i in range(60)],
                          "label": [labels[i % len(labels)] for i in range(60)]})
    with pytest.raises(InputError, match=message) as error:
        load_text(frame, min_group_size=5)
    assert "How to fix" in str(error.value)


def test_missing_or_ambiguous_text_column_is_an_error(tmp_path):
    frame = corpus(100)
    with pytest.raises(InputError, match=r"no text column 'body'; the columns are 'review', 'sentiment'"):
        load_text(frame, text_column="body")
    two = frame.assign(summary=frame["review"].str.upper()).rename(columns={"review": "full"})
    with pytest.raises(InputError, match="several columns could hold the texts: 'full', 'summary'"):
        load_text(two)
    with pytest.raises(InputError, match="no label column found"):
        load_text(frame.rename(columns={"sentiment": "stars"}), text_column="review")


def test_empty_texts_are_dropped_and_counted_long_texts_truncated_and_counted():
    frame = corpus(300)
    frame.loc[:9, "review"] = ["", "   ", None, *[""] * 7]
    frame.loc[10:14, "review"] = " ".join(["very"] * 400) + " good"
    data = load_text(frame, min_group_size=5)
    assert data.source.rows == 290
    assert any("dropped 10 empty texts" in n for n in data.source.notes)
    assert any("truncated" in n for n in data.source.notes)
    assert sum(data.preprocessing["truncated_texts"].values()) == 5
    only_empty = pd.DataFrame({"text": ["", " "] * 10, "label": [0, 1] * 10})
    with pytest.raises(InputError, match="no text is left"):
        load_text(only_empty)


def test_a_file_that_is_not_utf8_is_read_and_noted(tmp_path):
    path = tmp_path / "latin.csv"
    frame = corpus(200)
    frame.loc[0, "review"] = "un café très réussi"
    path.write_bytes(frame.to_csv(index=False).encode("cp1252"))
    data = load_text(path, min_group_size=5)
    assert any("Windows-1252" in n for n in data.source.notes)
    assert any("café" in t for s in (data.train, data.validation, data.test) for t in s.raw)


def test_sst2_like_layout_uses_the_dev_file_as_test_split_and_keeps_phrases_together(tmp_path):
    sentences = [(f"review {i} says the film was {'great' if i % 2 else 'awful'} overall", i % 2) for i in range(80)]
    rows = []
    for sentence, label in sentences:
        words = sentence.split()
        rows += [(label, sentence), (label, " ".join(words[:3])), (label, " ".join(words[2:6]))]
    folder = tmp_path / "sst2"
    folder.mkdir()
    pd.DataFrame(rows, columns=["label", "sentence"]).to_csv(folder / "train.tsv", sep="\t", index=False)
    dev = pd.DataFrame({"label": [1, 0] * 15, "content": ["a great film", "an awful film"] * 15})
    dev.to_csv(folder / "dev.tsv", sep="\t", index=False)
    for target in (folder, folder / "train.tsv"):
        data = load_text(target, min_group_size=5)
        assert len(data.test) == 30 and sorted(set(data.test.raw)) == ["a great film", "an awful film"]
        assert len(data.train) + len(data.validation) == len(rows)
        assert any("dev.tsv is the test split" in n for n in data.source.notes)
        assert any("dev.tsv: its texts are in column 'content'" in n for n in data.source.notes)
        assert any("kept in the split of the longest text" in n for n in data.source.notes)
        train_texts = set(data.train.raw)
        for sentence, _ in sentences:   # a sentence and its own prefix phrase are on the same side
            prefix = " ".join(sentence.split()[:3])
            assert (sentence in train_texts) == (prefix in train_texts)
        assert len(set(data.validation.raw)) > 0
    assert any("split 90%/10% into train and validation" in n for n in data.source.notes)  # the default share
    larger = load_text(folder, min_group_size=5, validation_share=0.3)
    assert len(larger.validation) > len(data.validation) > 0
    assert any("split 70%/30% into train and validation" in n for n in larger.source.notes)


def test_aclimdb_layout_reads_pos_and_neg_folders(tmp_path):
    for label, opinions in (("pos", POSITIVE), ("neg", NEGATIVE)):
        (tmp_path / label).mkdir()
        for i in range(40):
            (tmp_path / label / f"{i}_7.txt").write_text(f"{opinions[i % 8]}<br /><br />review {i}")
    data = load_text(tmp_path, min_group_size=5)
    assert data.source.rows == 80 and data.label_name == "folder"
    assert any("'pos' -> 1" in n for n in data.source.notes)
    assert any("HTML line break" in n for n in data.source.notes)
    assert not any("<br" in t for t in data.train.raw)
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(InputError, match="not one of the layouts"):
        load_text(tmp_path / "pos")


def test_containment_groups_keep_phrases_with_their_sentence():
    groups = containment_groups(["the film is great", "film is", "great", "a dull plot", "the film is great",
                                 "dull plot", "unrelated words"])
    assert groups[0] == groups[1] == groups[2] == groups[4]
    assert groups[3] == groups[5] != groups[0]
    assert groups[6] not in (groups[0], groups[3])


# --------------------------------------------------------------------------- identity groups


def test_identity_groups_find_terms_multiple_and_phrases():
    terms = check_identity_terms({"gender": {"female": ["she", "my aunt"], "male": ["he"]},
                                  "faith": {"muslim": ["Muslim"]}})
    frame = identity_groups(["She said so", "he and she", "My aunt came", "my muslim friend", "nothing"], terms)
    assert frame["gender"].tolist() == ["female", MULTIPLE_GROUP, "female", NONE_GROUP, NONE_GROUP]
    assert frame["faith"].tolist() == [NONE_GROUP, NONE_GROUP, NONE_GROUP, "muslim", NONE_GROUP]
    with pytest.raises(ValueError, match="reserved"):
        check_identity_terms({"gender": {"none": ["x"]}})


def test_small_groups_merge_into_other_then_any():
    values = pd.Series(["none"] * 50 + ["a"] * 20 + ["b"] * 3 + ["c"] * 2, dtype=object)
    test = np.ones(len(values), dtype=bool)
    notes: list[str] = []
    merged = merge_small_groups(values, test, 10, "axis", notes)
    assert sorted(set(merged)) == ["a", "none", OTHER_GROUP] and "merged into 'other'" in notes[0]
    values = pd.Series(["none"] * 50 + ["a"] * 4 + ["b"] * 3, dtype=object)
    merged = merge_small_groups(values, np.ones(len(values), dtype=bool), 10, "axis", notes := [])
    assert sorted(set(merged)) == [ANY_GROUP, "none"] and any("merged into 'other'" in n for n in notes)
    values = pd.Series(["none"] * 50 + ["a"] * 12 + ["b"] * 5, dtype=object)
    merged = merge_small_groups(values, np.ones(len(values), dtype=bool), 10, "axis", notes := [])
    assert sorted(set(merged)) == ["a", "b", "none"] and "'b' has 5 test texts" in notes[-1]
    values = pd.Series(["none"] * 50 + ["a"] * 6 + ["b"] * 12, dtype=object)
    merged = merge_small_groups(values, np.arange(len(values)) < 60, 10, "axis", notes := [])
    assert sorted(set(merged)) == [ANY_GROUP, "none"] and "every mention merged into 'any'" in notes[-1]


def test_axes_without_measurable_groups_are_not_audited_and_identity_is_the_fallback():
    frame = pd.DataFrame({"text": [f"plain review number {i}" for i in range(200)] + ["she liked it"] * 4,
                          "label": [i % 2 for i in range(204)]})
    data = load_text(frame, min_group_size=10)
    assert data.sensitive_columns == (IDENTITY_COLUMN,)
    assert any("religion: not audited" in n for n in data.source.notes)
    assert set(data.test.groups[IDENTITY_COLUMN]) <= {ANY_GROUP, NONE_GROUP}


def test_sensitive_names_an_axis_or_a_file_column():
    frame = corpus(400).assign(author=lambda f: np.where(np.arange(len(f)) % 2, "x", "y"))
    data = load_text(frame, text_column="review", sensitive_columns=("author", "gender"), min_group_size=5)
    assert data.sensitive_columns == ("gender", "author")
    with pytest.raises(InputError, match="no group column 'age'"):
        load_text(frame, text_column="review", sensitive_columns=("age",))


# --------------------------------------------------------------------------- default data and real data


def test_generated_reviews_plant_the_spurious_link_and_only_it():
    frame = generate_reviews(rows=6000, seed=0)
    assert len(frame) == 6000 and frame.equals(generate_reviews(rows=6000, seed=0))
    assert 0.45 < frame["label"].mean() < 0.55
    assert frame["text"].str.contains("n't| not ").mean() > 0.1        # negation
    assert frame["text"].str.contains(" but |Although").mean() > 0.2   # mixed sentiment
    for axis, group in SPURIOUS_LINKS.items():
        negative = 1 - frame.loc[frame[f"mention_{axis}"] == group, "label"].mean()
        assert negative > 0.62, (axis, negative)
    for group in ("female", "male"):
        negative = 1 - frame.loc[frame["mention_gender"] == group, "label"].mean()
        assert 0.42 < negative < 0.58


@pytest.mark.skipif(not (SST2 / "train.tsv").is_file(), reason="SST-2 files not present beside the repository")
def test_real_sst2_folder_is_read_with_dev_as_test():
    data = load_text(SST2, max_rows=4000, min_group_size=10)
    assert len(data.test) == 872      # the dev file kept whole
    assert data.label_name == "label" and any("dev.tsv is the test split" in n for n in data.source.notes)
    assert any("'sentence'" in n for n in data.source.notes) and any("'content'" in n for n in data.source.notes)


def test_a_binary_file_is_refused_as_not_text(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    with pytest.raises(InputError, match="is not a text file: it looks like a ZIP archive") as error:
        read_text_table(path)
    assert str(path) in str(error.value) and "How to fix" in str(error.value)
