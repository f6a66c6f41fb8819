"""The tabular explainer: one SHAP value per ORIGINAL column of a table, float vs int8 alike.

The players are the table's original columns (`DomainData.feature_groups`: a numeric input,
or a whole one-hot block), explained by `grouped_permutation.explain_groups` (exact where
affordable, else sampled with the error measured). Each local entry also gets
``"raw_values"``, the row's values as the data file holds them (`pipeline.domain.with_raw_values`),
so reports speak in the user's units, not standardised ones.

Figures (`TabularExplainer.figures`): "shap_global" (global importance per column, models
side by side), "shap_local_<row_id>" (one per local row) and "shap_beeswarm_<model>" (SHAP
value per row and column, coloured by the encoded value; needs the explanation's "_arrays").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.domain import with_raw_values
from pipeline.explainers.common import model_colour
from pipeline.explainers.grouped_permutation import explain_groups

TOP_GLOBAL = 15
TOP_LOCAL = 12
TOP_BEESWARM = 15


@dataclass(frozen=True)
class TabularExplainer:
    """Shapley values over a table's original columns (see the module docstring)."""

    kind: ClassVar[str] = "tabular"

    def explain(self, *, predict_functions: dict, data, background: np.ndarray, rows: np.ndarray,
                row_ids: list[int], local_row_ids: list[int], seed: int, reference: str) -> dict:
        """SHAP values per original column of every model on `rows` (encoded rows of `data.test`)."""
        explanation = explain_groups(predict_functions=predict_functions, background=background, rows=rows,
                                     row_ids=row_ids, local_row_ids=local_row_ids, feature_names=data.feature_names,
                                     feature_groups=data.feature_groups, seed=seed, reference=reference)
        return with_raw_values(explanation, data.test.raw)

    def figures(self, explanation: dict) -> dict:
        """matplotlib Figures of an explanation (see `explanation_figures`)."""
        return explanation_figures(explanation)


def _short(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _value(x) -> float:
    return 0.0 if x is None else float(x)


def _grouped_barh(ax, labels: list[str], series: dict[str, list[float]]) -> None:
    """Horizontal bars, one group per label (top label first), one bar per model."""
    k = max(len(series), 1)
    height = 0.8 / k
    y = np.arange(len(labels))
    for m, (name, values) in enumerate(series.items()):
        offset = (m - (k - 1) / 2) * height
        ax.barh(y + offset, values, height=height, color=model_colour(m), label=name)
    ax.set_yticks(y)
    ax.set_yticklabels([_short(lbl) for lbl in labels], fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)


def explanation_figures(explanation: dict) -> dict:
    """matplotlib Figures (no pyplot state) for an `explain_groups` result over a table's columns.

    "shap_global" and "shap_local_<row_id>" need only the JSON part (so they can be
    redrawn from a saved explanation); "shap_beeswarm_<model>" needs "_arrays" and is
    skipped without it.
    """
    models = explanation["models"]
    names = list(models)
    reference = explanation.get("reference") or names[0]
    figures = {"shap_global": _global_figure(explanation, names, reference),
               **_local_figures(explanation, names, reference)}
    if explanation.get("_arrays"):
        figures.update(_beeswarm_figures(explanation, names))
    return figures


def _global_figure(explanation: dict, names: list[str], reference: str):
    """Global importance, the reference model's top columns, every model's bar beside it."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    columns = list(explanation["feature_columns"])
    ref_importance = models[reference]["global_importance"]
    top = sorted(columns, key=lambda c: -_value(ref_importance.get(c)))[:TOP_GLOBAL]
    fig = Figure(figsize=(8, 1.2 + 0.38 * len(top) * max(1, len(names)) ** 0.5))
    ax = fig.add_subplot()
    _grouped_barh(ax, top, {n: [_value(models[n]["global_importance"].get(c)) for c in top] for n in names})
    ax.set_xlabel("mean |SHAP value| (probability)")
    ax.set_title(f"Global importance per column (top {len(top)}, ranked by {reference})", fontsize=10)
    fig.tight_layout()
    return fig


def _local_figures(explanation: dict, names: list[str], reference: str) -> dict:
    """One figure per local row: contributions per column, models side by side."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    columns = list(explanation["feature_columns"])
    figures = {}
    local_by_model = {n: {entry["row_id"]: entry for entry in models[n]["local"]} for n in names}
    for row_id in local_by_model[names[0]]:
        entries = {n: local_by_model[n].get(row_id) for n in names}
        entries = {n: e for n, e in entries.items() if e is not None}
        size = {c: max(abs(_value(e["contributions"].get(c))) for e in entries.values()) for c in columns}
        ranked = sorted(columns, key=lambda c: -size[c])
        shown, rest = ranked[:TOP_LOCAL], ranked[TOP_LOCAL:]
        shown_entry = entries.get(reference, next(iter(entries.values())))
        shown_values = {**shown_entry["values"], **(shown_entry.get("raw_values") or {})}  # the user's units first
        labels = []
        for c in shown:
            v = shown_values.get(c)
            v = f"{v:.3g}" if isinstance(v, float) else str(v)
            labels.append(f"{c} = {v}")
        series = {n: [_value(e["contributions"].get(c)) for c in shown] for n, e in entries.items()}
        if rest:
            labels.append(f"({len(rest)} other columns)")
            for n, e in entries.items():
                series[n].append(sum(_value(e["contributions"].get(c)) for c in rest))
        fig = Figure(figsize=(9, 1.4 + 0.2 * len(series) + 0.36 * len(labels) * max(1, len(series)) ** 0.5))
        ax = fig.add_subplot()
        _grouped_barh(ax, labels, series)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("SHAP contribution to the score (probability)")
        title = "\n".join(
            f"{n}: f(x)={_value(e['score']):.3f}, base={_value(e['base_value']):.3f}" for n, e in entries.items()
        )
        ax.set_title(f"Row {row_id}\n{title}", fontsize=9)
        fig.tight_layout()
        figures[f"shap_local_{row_id}"] = fig
    return figures


def _beeswarm_figures(explanation: dict, names: list[str]) -> dict:
    """A beeswarm-like strip plot per model (needs the arrays): SHAP value per row and column."""
    from matplotlib.figure import Figure

    arrays = explanation["_arrays"]
    columns = list(explanation["feature_columns"])
    figures = {}
    column_values = np.asarray(arrays["column_values"], dtype=np.float64)
    for name in names:
        values = np.asarray(arrays["shap_values"][name], dtype=np.float64)
        importance = np.abs(values).mean(axis=0)
        order = np.argsort(-importance, kind="stable")[:TOP_BEESWARM]
        fig = Figure(figsize=(8, 1.5 + 0.35 * len(order)))
        ax = fig.add_subplot()
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=values.shape[0])
        scatter = None
        for pos, j in enumerate(order):
            colour_values = column_values[:, j]
            numeric = np.isfinite(colour_values)
            if (~numeric).any():
                ax.scatter(values[~numeric, j], pos + jitter[~numeric], s=8, color="#999999", alpha=0.7)
            if numeric.any():
                cv = colour_values[numeric]
                low, high = np.nanpercentile(cv, [5, 95]) if cv.size > 1 else (cv[0], cv[0])
                scaled = np.clip((cv - low) / (high - low), 0, 1) if high > low else np.full(cv.shape, 0.5)
                scatter = ax.scatter(values[numeric, j], pos + jitter[numeric], s=8, c=scaled,
                                     cmap="coolwarm", vmin=0, vmax=1, alpha=0.8)
        ax.set_yticks(np.arange(len(order)))
        ax.set_yticklabels([_short(columns[j]) for j in order], fontsize=8)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("SHAP value (probability)")
        ax.set_title(f"{name}: SHAP value per row and column (grey: categorical column)", fontsize=10)
        if scatter is not None:
            bar = fig.colorbar(scatter, ax=ax, pad=0.01, ticks=[0, 1])
            bar.ax.set_yticklabels(["low", "high"], fontsize=8)
            bar.set_label("encoded value (5th-95th percentile)", fontsize=8)
        fig.tight_layout()
        figures[f"shap_beeswarm_{name}"] = fig
    return figures
