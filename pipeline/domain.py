"""The interface every domain implements, and the data it hands to the generic stages.

A domain knows three things the generic stages don't:
  * how to load its data (embedded default data, or a user's file) into `DomainData`;
  * how to turn raw rows into model inputs with a JSON-able preprocessing spec
    (`encode`), the same spec that ships beside every `.tflite`;
  * how to build its Functional model, given a Keras module (Keras 3 or tf_keras).

Everything else (train, compress, evaluate, explain, audit, report, gate) is generic.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from pipeline.options import DomainOption


@dataclass(frozen=True)
class Split:
    """One of train / validation / test.

    raw:     what the domain's `encode` takes (a DataFrame of raw columns for tabular data).
    labels:  int64 array of 0/1, one per row.
    groups:  one string column per sensitive attribute, one row per example, RangeIndex.
             Continuous attributes are already banded (e.g. age "26-35").
    clusters: the independent unit each row belongs to (a machine's sensor history, a
             customer, a patient), one per row, or None when rows are independent. Rows of
             one unit are correlated, so the audit's bootstrap resamples whole units: a
             row-level bootstrap of 31 windows per machine gives intervals several times
             too narrow.
    """

    raw: Any
    labels: np.ndarray
    groups: pd.DataFrame
    clusters: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DataSource:
    kind: str                # "generated" or "file"
    description: str         # one line for humans: what the data is
    path: str | None         # the user's file, None for generated data
    fingerprint: str         # sha256 of the file bytes, or of the generated raw table
    rows: int                # rows loaded, before splitting
    notes: tuple[str, ...] = ()  # decisions the loader took (dropped columns, banding, ...)
    # What a person must look at before trusting the model (likely label leaks); shown on the
    # console after loading and in the model card.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainData:
    train: Split
    validation: Split
    test: Split
    # Fitted on train only; JSON-able; written beside every .tflite and re-read for LiteRT evaluation.
    preprocessing: dict
    # Names of the encoded model inputs, in order (tabular: one per encoded column).
    feature_names: tuple[str, ...]
    # Original column -> indices of the encoded inputs it produced (for per-column SHAP).
    feature_groups: dict[str, list[int]]
    sensitive_columns: tuple[str, ...]
    label_name: str
    positive_class: str      # what label 1 means, e.g. "fraud"
    source: DataSource
    class_balance: dict = field(default_factory=dict)  # e.g. {"train_positive_rate": 0.02}
    # What the domain's own analyses need beyond the splits, read by its loader so that no later
    # step reads a file (sentiment: the counterfactual probe and the identity-term lists in force).
    analysis_inputs: dict = field(default_factory=dict)


class Domain(abc.ABC):
    """Base class of every domain. Subclasses are registered in `pipeline.registry`."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    modality: ClassVar[str]                  # "tabular" | "image" | "text" | "window"
    headline_metric: ClassVar[str] = "pr_auc"
    # How each model's decision threshold is chosen on validation (pipeline.metrics.THRESHOLD_RULES);
    # --threshold-rule overrides it.
    threshold_rule: ClassVar[str] = "f1"
    # Whether the domain generates default data (`edgeaudit run all` and the contract suite use it);
    # a domain without it gives the contract suite a small sample of its kind (sample_data).
    has_default_data: ClassVar[bool] = True
    # Whether the domain reads tables, where --drop removes columns.
    reads_tables: ClassVar[bool] = False
    default_label: ClassVar[str | None] = None
    default_sensitive: ClassVar[tuple[str, ...]] = ()
    # How the float model is trained: the optimizer (pipeline.stages.train.OPTIMIZERS), its
    # learning rate, and the batch size on CPU (scaled up on a GPU); --batch-size overrides it.
    optimizer: ClassVar[str] = "adam"
    learning_rate: ClassVar[float] = 1e-3
    batch_size: ClassVar[int] = 256
    # Whether mixed precision (float16 compute) is switched on for this domain's model on an
    # accelerator. benchmarks/training_throughput.py measures it per domain and settles it.
    mixed_precision_on_accelerator: ClassVar[bool] = True
    # Share of the prunable weights pruned_int8 and pqat_int8 set to zero; --target-sparsity overrides it.
    target_sparsity: ClassVar[float] = 0.75
    # The domain's own options (pipeline.options.DomainOption): the CLI's flags for this domain,
    # read in load() and elsewhere with config.option(name).
    options: ClassVar[tuple[DomainOption, ...]] = ()

    @abc.abstractmethod
    def load(self, config) -> DomainData:
        """Load the embedded default data (config.data_path is None) or the user's file."""

    def sample_data(self, folder) -> dict:
        """For a domain without default data: write a small file of its kind into `folder` and return the
        RunConfig fields that read it ({"data_path": ..., "label_column": ..., ...}). Default data: {}."""
        return {}

    @abc.abstractmethod
    def encode(self, preprocessing: dict, raw: Any) -> np.ndarray:
        """Raw rows -> model inputs, using only the shipped preprocessing spec."""

    # A module-level function (so it pickles into the compression child process):
    # model_builder(keras_module, input_shape, **model_options) -> Functional model
    # whose output is one sigmoid probability per example.
    model_builder: ClassVar[Callable[..., Any]]

    def model_options(self, data: DomainData, config) -> dict:
        """Keyword arguments for `model_builder` (layer sizes, vocabulary size, ...)."""
        return {}

    def searches_model(self, data: DomainData) -> bool:
        """Whether the model for `data` is chosen by the tabular model search (pipeline.stages.model_search);
        a domain that says yes declares the `search_trials` option (pipeline.search_step)."""
        return False

    def twin_model_options(self, data: DomainData) -> dict:
        """Overrides of `model_options` for the tf_keras twin, converted to .tflite, of a model trained on `data`.

        E.g. {"unroll": True} so that LiteRT converts a recurrent layer without a fixed batch.
        Derived from `data`, never from what `load` saw last: loading keeps no state in the domain.
        """
        return {}

    def augmentation(self) -> Callable[[Any, Any], Any] | None:
        """A training-time augmentation for the input pipeline, or None (the default).

        A module-level function (batch of encoded inputs, int64 seed pair) -> a batch of the
        same shape, in TensorFlow ops and stateless (the seed fixes the output). It runs in the
        tf.data pipeline on the host's CPU threads, never inside the model, so models keep no
        random layers (see pipeline/stages/input_pipeline.py).
        """
        return None

    def quality(self, labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
        """Every quality metric of this domain, for one model on one split."""
        from pipeline.metrics import binary_quality

        return binary_quality(labels, scores, threshold)

    @property
    def explainer(self):
        """The explainer of this domain's models (pipeline/explainers/: tabular, image, text, window).

        The default suits tabular inputs: Shapley values over the original columns, exact
        (all 2^G coalitions) where affordable, else sampled with their error measured. A domain
        of another modality names its own (a class attribute or property `explainer`); every
        explainer keeps the result's top-level keys (explainer, settings, models, agreement).
        """
        from pipeline.explainers.tabular import TabularExplainer

        return TabularExplainer()

    def sensitive_inputs(self, data: DomainData) -> list[str]:
        """The sensitive columns the model's input holds: here, those that are also input columns."""
        return [column for column in data.sensitive_columns if column in data.feature_groups]

    def modality_of(self, data: DomainData) -> str:
        """The modality of this data: the class's, unless a domain reads several kinds of data
        (maintenance: sensor windows or per-reading tables), which answers from the data."""
        return self.modality

    def explainer_for(self, data: DomainData):
        """The explainer of models trained on this data: `explainer`, unless the domain reads several
        kinds of data and chooses by them."""
        return self.explainer

    def explain(self, *, predict_functions: dict, data: DomainData, background: np.ndarray, rows: np.ndarray,
                row_ids: list[int], local_row_ids: list[int], seed: int, reference: str) -> dict:
        """SHAP explanations of every model in `predict_functions` (model inputs -> probability), by its explainer."""
        return self.explainer_for(data).explain(predict_functions=predict_functions, data=data, background=background,
                                      rows=rows, row_ids=row_ids, local_row_ids=local_row_ids, seed=seed,
                                      reference=reference)

    def extra_analyses(self, *, predict_functions: dict, thresholds: dict, preprocessing: dict, data: DomainData,
                       config) -> dict:
        """Domain-specific analyses run on every model (the float model and every variant).

        predict_functions: model name -> (model inputs -> probability), FLOAT_MODEL included.
        thresholds: model name -> its decision threshold, as the evaluation chose it on the
        validation split (by the run's threshold rule); an analysis of decisions uses these.
        Returns {analysis name: JSON-able dict}. Each is written to `analyses/<name>.json`; if
        it holds "title", "summary" (a sentence) and "table" ({"headers": [...], "rows": [[...]]})
        the model card shows them. Default: none.
        """
        return {}

    def extra_figures(self, analyses: dict) -> dict:
        """matplotlib Figures of the results of `extra_analyses`."""
        return {}

    def explanation_figures(self, explanation: dict, data: DomainData | None = None) -> dict:
        """matplotlib Figures of an explanation returned by `explain` on `data`, by the same explainer."""
        return (self.explainer if data is None else self.explainer_for(data)).figures(explanation)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "modality": self.modality,
            "headline_metric": self.headline_metric,
            "default_label": self.default_label,
            "default_sensitive": list(self.default_sensitive),
        }


def with_raw_values(explanation: dict, raw) -> dict:
    """Each local entry gets `raw_values`: its columns' values as the data file holds them (a DataFrame of
    raw rows, indexed like the split), so that reports speak in the user's units, not standardised ones."""

    if not isinstance(raw, pd.DataFrame):
        return explanation
    for model in explanation.get("models", {}).values():
        for local in model.get("local", []):
            row = raw.iloc[int(local["row_id"])]
            local["raw_values"] = {column: plain_value(row[column]) for column in local.get("contributions", {})
                                   if column in raw.columns}
    return explanation


def plain_value(value):
    """A cell as a JSON / Python literal: numbers and text as they are, missing values as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
