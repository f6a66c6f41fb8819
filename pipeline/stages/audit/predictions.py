"""The per-row prediction table (`predictions.csv`): every test example with every model's score and decision."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.metrics import Predictions
from pipeline.stages.audit.variants import _variant_order


def prediction_table(*, labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
                     clusters: np.ndarray | None = None) -> pd.DataFrame:
    """One row per test example: its position, label, unit, groups, and every model's score and decision.

    What `predictions.csv` holds, so that every per-group figure can be recomputed from the run
    folder alone, and a threshold moved without re-running anything. Column names: `row`,
    `label`, `unit` (where rows come in units), the sensitive columns, then `score:<model>` and
    `decision:<model>` per model, in the audit's order (audit.json's `settings.decisions_from` says
    which runtime's outputs each model's are).
    """
    table = pd.DataFrame({"row": np.arange(len(labels)), "label": np.asarray(labels, dtype=np.int64)})
    if clusters is not None:
        table["unit"] = np.asarray(clusters).astype(str)
    for column in groups.columns:
        table[column] = groups[column].astype(str).to_numpy()
    for model in _variant_order(predictions):
        table[f"score:{model}"] = np.asarray(predictions[model].scores, dtype=np.float64)
        table[f"decision:{model}"] = predictions[model].decisions
    return table
