"""Explainers: SHAP explanations of a domain's models, one module per input modality.

Every model (the float Keras model, each LiteRT variant) arrives as a plain batched predict
function of model inputs -> probability, and every model of a run is explained by the SAME
explainer with the same players, masker, background, seed and budget, so their explanations
can be compared (float vs the shipped .tflite).

A domain names its explainer (`pipeline.domain.Domain.explainer`); the explainer holds two
things:

* ``explain(...)``: the numbers, a dict that is JSON-able apart from its ``"_arrays"`` key
  (`common.without_arrays` drops it before explanations.json is written);
* ``figures(explanation)``: matplotlib Figures of such a dict.

Modules:

* ``common``: plumbing every explainer shares (counting predict calls, shap's lazy import,
  JSON numbers, the additivity summary, the agreement between models);
* ``group_masker``: the Shapley game over groups of inputs (``GroupMasker``) and the shap
  calls that compute its values, exact or sampled, with their sampling error;
* ``grouped_permutation``: ``explain_groups``, the grouped explainer images, windows and
  tables all use (players = groups of encoded inputs);
* ``tabular``, ``image``, ``text``, ``window``: one explainer object each;
* ``probes``: the counterfactual probe of text models (identity terms swapped).

Nothing here reads or writes files (the user's probe file is read by the sentiment domain's
loader, pipeline.data.probe_file) or imports TensorFlow.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Explainer(Protocol):
    """What a domain's explainer offers (see the package docstring)."""

    kind: str  # "tabular" | "image" | "text" | "window"

    def explain(self, *, predict_functions: dict, data, background, rows, row_ids: list[int],
                local_row_ids: list[int], seed: int, reference: str) -> dict:
        """SHAP explanations of every model in `predict_functions` on `rows` of `data.test`."""

    def figures(self, explanation: dict) -> dict:
        """matplotlib Figures of an explanation returned by `explain`."""
