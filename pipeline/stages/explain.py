"""The explain stage: which rows a run explains, and its models' explanation by the domain's explainer.

Pure functions: no file I/O, no TensorFlow/Keras import. The stage

* picks the rows (`explanation_rows`): the background from the training rows, every flagged
  test row it can afford (highest scores first, up to half the explained rows), a seeded
  random sample of the other test rows, and the flagged rows shown one by one;
* hands every model (the float model, the shipped variant) to the domain's explainer
  (`pipeline.domain.Domain.explainer`, one per modality in pipeline/explainers/), which
  explains them all with the same players, background and seed, checks that each model's
  values add up to its output ("additivity") and compares every model with the float one
  ("agreement"; both computed alike for every modality in `pipeline.explainers.common`).

The explainers' own docstrings say what each explanation holds: pipeline/explainers/
grouped_permutation.py (tables, and the core images and windows use), image.py, text.py,
window.py. This module also keeps the names other code imported from it before the
explainers had their own package (`explain_tabular`, `explanation_figures`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.explainers.common import local_row_positions, model_names_and_reference, only_models, without_arrays
from pipeline.explainers.group_masker import (
    DEFAULT_EXACT_MAX_MODEL_ROWS, EXACT, EXACT_MAX_MASKED_BYTES, METHODS, PERMUTATION, exact_is_affordable,
    exact_model_rows,
)
from pipeline.explainers.grouped_permutation import (
    DEFAULT_ERROR_ROWS, DEFAULT_MAX_BACKGROUND, DEFAULT_PERMUTATIONS, DEFAULT_REFERENCE_PERMUTATIONS, explain_groups,
)
from pipeline.explainers.tabular import explanation_figures

# The names this module held before pipeline/explainers/ (benchmarks and tests imported them here).
explain_tabular = explain_groups

__all__ = [
    "DEFAULT_ERROR_ROWS", "DEFAULT_EXACT_MAX_MODEL_ROWS", "DEFAULT_MAX_BACKGROUND", "DEFAULT_PERMUTATIONS",
    "DEFAULT_REFERENCE_PERMUTATIONS", "EXACT", "EXACT_MAX_MASKED_BYTES", "METHODS", "PERMUTATION",
    "ExplanationRows", "exact_is_affordable", "exact_model_rows", "explain_models", "explain_tabular",
    "explanation_figures", "explanation_rows", "local_row_positions", "model_names_and_reference", "only_models",
    "without_arrays",
]


@dataclass(frozen=True)
class ExplanationRows:
    """The rows a run explains: background (training rows), explained test rows, and those shown one by one."""

    background: np.ndarray      # encoded training rows, the masker's background
    row_ids: np.ndarray         # sorted test-row positions to explain
    local_row_ids: list[int]    # flagged test rows (highest scores first) explained one by one


def explanation_rows(*, train_x: np.ndarray, test_x: np.ndarray, float_predictions, seed: int,
                     background_rows: int, explain_rows: int, local_examples: int) -> ExplanationRows:
    """Every flagged test row we can afford (up to half the rows) plus a random sample of the rest.

    float_predictions: the float model's test predictions (scores and decisions, `pipeline.metrics.Predictions`).
    One generator seeded with `seed` draws the background rows, then the order of the unflagged rows.
    """
    rng = np.random.default_rng(seed)
    background = train_x[rng.choice(len(train_x), size=min(background_rows, len(train_x)), replace=False)]
    flagged = np.flatnonzero(float_predictions.decisions == 1)
    flagged = flagged[np.argsort(-float_predictions.scores[flagged])]
    others = rng.permutation(np.setdiff1d(np.arange(len(test_x)), flagged))
    row_ids = np.concatenate([flagged[: explain_rows // 2], others])[: explain_rows]
    row_ids = np.sort(row_ids)
    local_row_ids = [int(i) for i in flagged[: local_examples]]
    return ExplanationRows(background=background, row_ids=row_ids, local_row_ids=local_row_ids)


def explain_models(domain, data, predict_functions: dict, chosen: ExplanationRows, *, test_x: np.ndarray,
                   seed: int, reference: str) -> dict:
    """The domain's explanation of every model in `predict_functions` on the chosen test rows.

    Returns the explainer's dict: JSON-able apart from "_arrays" (the figures use them; drop
    them with `without_arrays` before writing explanations.json).
    """
    return domain.explain(predict_functions=predict_functions, data=data, background=chosen.background,
                          rows=test_x[chosen.row_ids], row_ids=[int(i) for i in chosen.row_ids],
                          local_row_ids=chosen.local_row_ids, seed=seed, reference=reference)
