"""The sentiment domain: a text classifier for devices, audited for identity-term bias.

Default data: synthetic short reviews from `pipeline.data.sentiment_generator` (always
generated with the fixed seed DATA_SEED; the run's seed drives the split and training),
with negation, intensifiers, mixed sentiment, mentions of people, and a controlled
spurious link between two identity terms and the negative label. A user's data goes
through `pipeline.data.text.load_text`: a delimited file (--text-column, --label), the
SST-2 / GLUE folder layout, or the aclImdb folder layout.

Edge export: the model takes int32 token ids of a fixed length; the tokenizer spec
(vocabulary, pattern, lengths) ships beside the .tflite as models/preprocessing.json and is
all `encode` uses, so the LiteRT evaluation tokenizes exactly as a device would. No
TextVectorization (it would need TensorFlow's select ops on the device).

The model is built by the module-level `build_text_model` with Keras 3 or tf_keras:
Embedding -> [Dropout] -> encoder -> Dropout -> Dense(sigmoid), where the encoder is a word CNN
(Conv1D per kernel size, global max pooling, concatenated; the domain's model) or an LSTM
whose outputs are max-pooled over time (kept for comparison in the benchmarks; its converted
twin unrolls it, so the .tflite needs neither a fixed batch of 1 nor select ops). The CNN
is Kim (2014)'s CNN-rand at 64-d embeddings, trained with his recipe (Adadelta, batches of
50, max-norm 3 on the output weights): on SST-2 it reaches 0.832 dev accuracy over three
seeds and its int8 .tflite the same in 0.93 MB (`python -m benchmarks.sentiment_cnn_variants`).
Every layer has an explicit name, the same in both flavours, so the compression stage can
copy the weights by name. tfmot prunes every weighted layer, but quantization-aware
training supports only the Dense layer (not Embedding on int inputs, Conv1D or LSTM): the
compression stage records the others as skipped.

Headline metric: ROC-AUC. Accuracy is what SST-2 results are quoted in, and it is in every
metrics table, but it depends on the decision threshold each variant picks on the
validation split (threshold rule "accuracy": the classes are about as common and both
errors cost the same), so on a test split of ~900 texts a variant can "lose" a point of
accuracy through its threshold alone. ROC-AUC is threshold-free: the gate's quality drop
then measures what compression did to the ranking.

Audit: groups by identity terms found in the text (`pipeline.data.text.IDENTITY_TERMS`,
replaceable with `SentimentDomain(identity_terms=...)`), plus two extra analyses: the
counterfactual probe (`pipeline.explainers.probes`; --probe for your own file) on the float
model and every variant, and the identity mentions in the data with their share of
negative labels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.data.sentiment_generator import (
    LABEL_COLUMN, NEGATIVE_BOOST, SPURIOUS_LINKS, TEXT_COLUMN, generate_reviews,
)
from pipeline.data.text import IDENTITY_TERMS, check_identity_terms, encode_texts, load_text, read_identity_terms
from pipeline.domain import Domain, DomainData
from pipeline.explainers.text import TextExplainer
from pipeline.options import DomainOption

DATA_SEED = 0
DEFAULT_ROWS = 12000
# The model: Kim (2014)'s CNN-rand (widths 3, 4, 5 x 100 filters, dropout 0.5 before the
# output, max-norm 3 on the output weights) at 64-d embeddings instead of his 300. The int8
# .tflite holds about vocabulary x embedding_dim bytes of embedding: with the vocabulary
# capped at 14,000 (pipeline.data.text.MAX_VOCABULARY) that is 896 KB plus 77 KB of
# convolutions, which keeps every int8 file under 1 MB (SST-2: 13,168 entries, 934,992 B).
# Chosen on SST-2 validation accuracy (at 0.5, mean of three seeds: 0.832 vs 0.823) against
# the earlier widths 3, 5 x 128 with a 10,000-token vocabulary, both trained with the recipe
# below; `python -m benchmarks.sentiment_cnn_variants` has both and the other variants.
EMBEDDING_DIM = 64
FILTERS = 100
KERNEL_SIZES = (3, 4, 5)
ENCODER = "cnn"
LSTM_UNITS = 96
EMBEDDING_DROPOUT = 0.0
DROPOUT_RATE = 0.5
OUTPUT_MAX_NORM = 3.0
# Kim's training recipe: Adadelta (learning rate 1.0, rho 0.95) over batches of 50. With
# Adam over batches of 256 the earlier CNN's variants had SST-2 dev means of 0.799-0.813.
OPTIMIZER = "adadelta"
LEARNING_RATE = 1.0
BATCH_SIZE = 50


def build_text_model(keras: Any, input_shape: Any, *, vocabulary_size: int, encoder: str = ENCODER,
                     embedding_dim: int = EMBEDDING_DIM, filters: int = FILTERS,
                     kernel_sizes: Sequence[int] = KERNEL_SIZES, lstm_units: int = LSTM_UNITS,
                     embedding_dropout: float = EMBEDDING_DROPOUT, dropout_rate: float = DROPOUT_RATE,
                     output_max_norm: float | None = OUTPUT_MAX_NORM, unroll: bool = False) -> Any:
    """A Functional text classifier over int32 token ids of shape (max_length,).

    `keras` is the Keras module to build with (Keras 3 or tf_keras). encoder "cnn": one
    Conv1D + global max pooling per kernel size, concatenated (weighted layers "embedding",
    "conv_k<size>", "probability"); encoder "lstm": an LSTM over the sequence with global max
    pooling of its outputs ("embedding", "lstm", "probability"). `output_max_norm` caps the L2
    norm of the output layer's weights (None: no cap). `unroll` (LSTM only, for the converted
    twin) unrolls the time loop so TFLite needs no fixed batch size.
    """
    length = int(input_shape) if isinstance(input_shape, (int, np.integer)) else int(tuple(input_shape)[0])
    if vocabulary_size < 3:
        raise ValueError(f"vocabulary_size is {vocabulary_size}, expected at least 3 (PAD, OOV and a token)")
    if encoder not in ("cnn", "lstm"):
        raise ValueError(f"encoder is {encoder!r}, expected 'cnn' or 'lstm'")
    if encoder == "cnn" and not kernel_sizes:
        raise ValueError("kernel_sizes is empty: give at least one convolution width")
    inputs = keras.Input(shape=(length,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(int(vocabulary_size), int(embedding_dim), name="embedding")(inputs)
    if embedding_dropout:
        x = keras.layers.Dropout(float(embedding_dropout), name="embedding_dropout")(x)
    if encoder == "lstm":
        x = keras.layers.LSTM(int(lstm_units), return_sequences=True, unroll=bool(unroll), name="lstm")(x)
        x = keras.layers.GlobalMaxPooling1D(name="max_pool")(x)
    else:
        pooled = []
        for size in sorted({min(int(k), length) for k in kernel_sizes}):
            branch = keras.layers.Conv1D(int(filters), size, activation="relu", name=f"conv_k{size}")(x)
            pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_pool_k{size}")(branch))
        x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="concatenate")(pooled)
    if dropout_rate:
        x = keras.layers.Dropout(float(dropout_rate), name="dropout")(x)
    constraint = keras.constraints.MaxNorm(float(output_max_norm)) if output_max_norm else None
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", kernel_constraint=constraint,
                                 name="probability")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=f"sentiment_{encoder}")


class SentimentDomain(Domain):
    name = "sentiment"
    title = "Review sentiment"
    description = ("Classify short reviews as positive or negative from their text, on device (token ids in, "
                   "tokenizer spec shipped beside the .tflite); audited by identity terms in the text "
                   "(gender, religion, nationality) and by a counterfactual probe.")
    modality = "text"
    headline_metric = "roc_auc"
    # Positive and negative reviews are about as common and a wrong call costs the same either
    # way: the threshold maximises accuracy (F1, the default, favours the positive class).
    threshold_rule = "accuracy"
    default_label = LABEL_COLUMN
    default_sensitive = tuple(IDENTITY_TERMS)
    optimizer = OPTIMIZER
    learning_rate = LEARNING_RATE
    batch_size = BATCH_SIZE
    # Measured on an H200 (JAX backend, XLA on, BENCHMARKS.md "training-throughput-gpu"): the
    # word CNN trains 15-18x slower in mixed_float16 than in float32 (about 6,400 against
    # 93,000-118,000 reviews a second), where the other domains gain up to 19 %. The cause is
    # not found yet. It is not the embedding's gradient: Keras 3's Embedding reads its table in
    # float32 (autocast off) and casts only the gathered rows. benchmarks/sentiment_mixed_precision.py
    # takes the model apart piece by piece, in float32 and 16-bit; it needs a lent GPU to run.
    mixed_precision_on_accelerator = False
    model_builder = staticmethod(build_text_model)
    options = (
        DomainOption("text_column", metavar="COLUMN", help="the column of --data holding the text"),
        DomainOption("probe_path", kind="path", flag="--probe",
                     help="your own counterfactual probe file with columns text, group[, label]"),
        DomainOption("identity_terms_path", kind="path", flag="--identity-terms", metavar="JSON",
                     help='your own identity-term lists that define the audit groups, as JSON {"axis": {"group": '
                          '["term", ...]}}, e.g. {"religion": {"muslim": ["muslim", "muslims"], "christian": '
                          '["christian"]}}; replaces the built-in lists'),
    )

    def __init__(self, identity_terms: Mapping[str, Mapping[str, Sequence[str]]] | None = None):
        self.identity_terms = check_identity_terms(IDENTITY_TERMS if identity_terms is None else identity_terms)

    # ---- data ----------------------------------------------------------------------------
    def load(self, config) -> DomainData:
        from pipeline.data.probe_file import read_probe_file

        # Read here, so that a bad file fails before training and no later step reads a file.
        probe = read_probe_file(config.option("probe_path")) if config.option("probe_path") else None
        terms = self.terms_for(config)
        common = dict(sensitive_columns=tuple(config.sensitive_columns), identity_terms=terms,
                      seed=config.seed, min_group_size=config.min_group_size, max_rows=config.max_rows)
        if config.data_path is None:
            frame = generate_reviews(rows=DEFAULT_ROWS, seed=DATA_SEED)[[TEXT_COLUMN, LABEL_COLUMN]]
            links = ", ".join(f"{axis} '{group}'" for axis, group in SPURIOUS_LINKS.items())
            data = load_text(frame, text_column=TEXT_COLUMN, label_column=LABEL_COLUMN, kind="generated",
                             description=(f"synthetic short reviews ({DEFAULT_ROWS:,} texts, about half positive), "
                                          f"generated by EdgeAudit with seed {DATA_SEED}"),
                             source_name="the default sentiment data (generated)",
                             positive_label=config.positive_label, **common)
            note = (f"default data: {DEFAULT_ROWS:,} synthetic reviews generated with the fixed seed {DATA_SEED} "
                    f"(the run seed {config.seed} drives the split); a spurious link is planted on purpose: "
                    f"mentions of {links} are drawn {NEGATIVE_BOOST:g}x more often in negative reviews, gender "
                    f"mentions independently of the label (a control)")
            data = _with_notes(data, first=(note,))
        else:
            data = load_text(config.data_path, text_column=config.option("text_column"), label_column=config.label_column,
                             kind="file", positive_label=config.positive_label, **common)
        terms_note = ((f"identity terms from {config.option('identity_terms_path')} (--identity-terms): "
                       + "; ".join(f"{axis}: {', '.join(groups)}" for axis, groups in terms.items()),)
                      if config.option("identity_terms_path") else ())
        return dataclasses.replace(_with_notes(data, last=terms_note),
                                   analysis_inputs={"probe": probe, "identity_terms": terms})

    def sensitive_inputs(self, data: DomainData) -> list[str]:
        """Groups built from identity terms are read from the text the model takes in; a file's own group
        columns are not."""
        axes = set(data.analysis_inputs.get("identity_terms") or self.identity_terms) | {"identity"}
        return [column for column in data.sensitive_columns if column in axes]

    def terms_for(self, config) -> dict[str, dict[str, tuple[str, ...]]]:
        """The identity-term lists of a run: the --identity-terms file's, else this domain's."""
        path = config.option("identity_terms_path")
        return read_identity_terms(path) if path else self.identity_terms

    def encode(self, preprocessing: dict, raw: Any) -> np.ndarray:
        return encode_texts(preprocessing, raw)

    def model_options(self, data: DomainData, config) -> dict:
        return {"vocabulary_size": int(data.preprocessing["vocabulary_size"]), "encoder": "cnn",
                "embedding_dim": EMBEDDING_DIM, "filters": FILTERS, "kernel_sizes": KERNEL_SIZES,
                "embedding_dropout": EMBEDDING_DROPOUT, "dropout_rate": DROPOUT_RATE,
                "output_max_norm": OUTPUT_MAX_NORM}

    # ---- explanation -------------------------------------------------------------------------
    # Token attributions on the raw test texts, through the shipped tokenizer spec
    # (pipeline/explainers/text.py).
    explainer = TextExplainer()

    # ---- audit extras ------------------------------------------------------------------------
    def extra_analyses(self, *, predict_functions: dict, thresholds: dict, preprocessing: dict, data: DomainData,
                       config) -> dict:
        from pipeline.config import FLOAT_MODEL
        from pipeline.explainers.probes import default_probe, run_probe

        probe = data.analysis_inputs.get("probe") or default_probe()
        reference = FLOAT_MODEL if FLOAT_MODEL in predict_functions else next(iter(predict_functions))
        result = run_probe(probe, predict_functions=predict_functions, spec=preprocessing,
                           reference_model=reference, bootstrap_samples=config.bootstrap_samples, seed=config.seed)
        terms = data.analysis_inputs.get("identity_terms") or self.identity_terms
        return {"counterfactual_probe": result, "identity_mentions": identity_mentions(data, terms)}

    def extra_figures(self, analyses: dict) -> dict:
        from pipeline.explainers.probes import probe_figures

        probe = analyses.get("counterfactual_probe")
        return probe_figures(probe) if probe else {}


def _with_notes(data: DomainData, *, first: tuple[str, ...] = (), last: tuple[str, ...] = ()) -> DomainData:
    source = dataclasses.replace(data.source, notes=(*first, *data.source.notes, *last))
    return dataclasses.replace(data, source=source)


def identity_mentions(data: DomainData, identity_terms: Mapping[str, Mapping[str, Sequence[str]]]) -> dict:
    """Identity mentions in the train split and their share of negative labels (Wilson 95 % interval).

    This is the data's own link between identity terms and labels, before any model: a group
    whose negative share sits far from the overall one gives a model a shortcut to learn."""
    from pipeline.data.text import identity_groups

    texts = [str(t) for t in data.train.raw]
    labels = np.asarray(data.train.labels)
    groups = identity_groups(texts, identity_terms)
    overall = float(1.0 - labels.mean())
    rows, entries = [], []
    for axis in groups.columns:
        for group, count in groups[axis].value_counts().sort_index().items():
            chosen = (groups[axis] == group).to_numpy()
            negatives = int((labels[chosen] == 0).sum())
            share = negatives / count
            low, high = _wilson(negatives, int(count))
            flagged = high < overall or low > overall
            entries.append({"axis": axis, "group": group, "train_texts": int(count), "negative_share": share,
                            "interval": [low, high], "differs_from_overall": bool(flagged)})
            shown = f"{share:.3f} [{low:.3f}, {high:.3f}]"
            rows.append([axis, group, int(count), f"**{shown}**" if flagged else shown])
    differing = [f"{e['axis']}={e['group']} ({e['negative_share']:.2f})" for e in entries
                 if e["differs_from_overall"] and e["group"] != "none"]
    return {
        "title": "Identity mentions in the training texts and their share of negative labels",
        "summary": (f"Overall {overall:.3f} of training texts are negative; groups whose 95 % interval excludes "
                    f"that: {', '.join(differing) or 'none'} (one interval per group, not corrected for the "
                    f"number of groups: expect about one in twenty by chance)."),
        "table": {"headers": ["axis", "group", "train texts", "negative share [95% CI]"], "rows": rows},
        "overall_negative_share": overall,
        "groups": entries,
    }


def _wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
