"""The audit's figures: TPR / FPR by group, heatmaps of the changes under compression, and the mitigation.

Each is a matplotlib `Figure` the caller saves; no pyplot state is used.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from pipeline.artifacts import safe_name
from pipeline.stages.audit.compression import COMPRESSION_METRICS
from pipeline.stages.audit.partitions import INTERSECTION_JOIN

# Variant preferred as "the shipped one" in figures when the caller does not say.
DEFAULT_SHIP_VARIANT = "int8"


def _pick_ship_variant(audit: dict, ship_variant: str | None) -> str | None:
    """The variant drawn beside the reference: the one asked for, else "int8", else the first other one."""
    reference = audit["settings"]["reference"]
    others = [v for v in audit["settings"]["variants"] if v != reference]
    if ship_variant is not None:
        if ship_variant not in audit["by_group"]:
            raise ValueError(f"variant {ship_variant!r} is not in the audit ({', '.join(audit['by_group'])})")
        return ship_variant
    if DEFAULT_SHIP_VARIANT in others:
        return DEFAULT_SHIP_VARIANT
    return others[0] if others else None


def _values_and_errors(table: dict, groups: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A metric's value per group (NaN where undefined) and its (below, above) error bars, shape (2, groups)."""
    values, errors = [], []
    for g in groups:
        entry = table[g]
        estimate = entry["metrics"][metric] if entry["measurable"] else None
        value = estimate["value"] if estimate else None
        interval = estimate["interval"] if estimate else None
        values.append(np.nan if value is None else value)
        if value is None or interval is None:
            errors.append((0.0, 0.0))
        else:
            errors.append((max(value - interval[0], 0.0), max(interval[1] - value, 0.0)))
    return np.array(values, dtype=float), np.array(errors, dtype=float).T.reshape(2, len(groups))


def _tpr_fpr_figure(audit: dict, column: str, variants: list[str]) -> Figure:
    """Bars of TPR (top) and FPR (bottom) by group of one column, one bar per variant, with intervals."""
    groups = list(audit["by_group"][variants[0]][column]["groups"])
    width = max(6.0, 0.55 * len(groups) * len(variants) + 2.5)
    figure = Figure(figsize=(min(width, 22.0), 7.5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(groups))
    bar = 0.8 / len(variants)
    for ax, metric, label in zip(axes, ("tpr", "fpr"), ("True-positive rate", "False-positive rate")):
        top = 0.0
        for i, variant in enumerate(variants):
            values, errors = _values_and_errors(audit["by_group"][variant][column]["groups"], groups, metric)
            upper = np.nan_to_num(values) + errors[1]
            top = max(top, float(upper.max()) if upper.size else 0.0)
            ax.bar(x + (i - (len(variants) - 1) / 2) * bar, np.nan_to_num(values), bar, yerr=errors,
                   capsize=3, label=variant, color=f"C{i}", alpha=0.85)
            for xi, value in zip(x, values):
                if not np.isfinite(value):
                    ax.text(xi + (i - (len(variants) - 1) / 2) * bar, 0.01, "n/a", rotation=90,
                            ha="center", va="bottom", fontsize=7, color="0.4")
        ax.set_ylabel(label)
        ax.set_ylim(0, min(1.05, max(top * 1.15, 0.05)))  # rare-event FPRs stay readable
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="variant", fontsize=8)
    axes[0].set_title(f"{column}: TPR and FPR by group (bars: 95 % bootstrap interval; n/a: undefined "
                      "or group too small)", fontsize=10)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                            fontsize=8)
    return figure


def _compression_heatmap(audit: dict, metric: str) -> Figure | None:
    """Variants x groups heatmap of one metric's change against the reference, flagged cells hatched."""
    variants = list(audit["compression"])
    if not variants:
        return None
    columns = audit["settings"]["columns"]
    cells = [(c, g) for c in columns for g in audit["compression"][variants[0]].get(c, {}).get("groups", {})]
    if not cells:
        return None
    values = np.full((len(variants), len(cells)), np.nan)
    flagged = np.zeros_like(values, dtype=bool)
    for i, variant in enumerate(variants):
        for j, (column, group) in enumerate(cells):
            cell = audit["compression"][variant][column]["groups"][group]
            if cell["measurable"] and cell["changes"][metric]["change"] is not None:
                values[i, j] = cell["changes"][metric]["change"]
                flagged[i, j] = cell["changes"][metric]["flagged"]
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    limit = max(limit, 0.01)
    figure = Figure(figsize=(min(max(7.0, 0.65 * len(cells) + 3), 24.0), 1.0 + 0.55 * len(variants) + 2.2),
                    layout="constrained")
    ax = figure.add_subplot()
    cmap = colormaps["RdBu"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto",
                      norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit))
    for i in range(len(variants)):
        for j in range(len(cells)):
            if np.isfinite(values[i, j]):
                text = f"{values[i, j]:+.2f}" + ("*" if flagged[i, j] else "")
                dark = abs(values[i, j]) > 0.6 * limit
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black", fontweight="bold" if flagged[i, j] else "normal")
                if flagged[i, j]:
                    ax.add_patch(_hatch(j, i))
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="0.4")
    for j in range(1, len(cells)):
        if cells[j][0] != cells[j - 1][0]:  # a line between sensitive columns
            ax.axvline(j - 0.5, color="black", linewidth=1.2)
    ax.set_yticks(range(len(variants)))
    ax.set_yticklabels(variants, fontsize=8)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([f"{c}: {g}" if INTERSECTION_JOIN not in c else g for c, g in cells],
                       rotation=45, ha="right", fontsize=7)
    label = {"tpr": "TPR", "fpr": "FPR", "roc_auc": "ROC-AUC"}[metric]
    ax.set_title(f"Change in {label} by group, variant − {audit['settings']['reference']} "
                 "(* hatched: 95 % paired bootstrap interval excludes 0; grey: not measurable)", fontsize=9)
    figure.colorbar(image, ax=ax, label=f"Δ {label}", shrink=0.9)
    return figure


def _hatch(x: int, y: int):
    """The hatched square that marks a flagged heatmap cell."""
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.2", linewidth=0.0)


def _mitigation_figure(mitigation: dict) -> Figure:
    """Bars of overall quality and of each column's disparities, before and after ThresholdOptimizer."""
    before, after = mitigation["before"], mitigation["after"]
    labels, before_values, after_values = [], [], []
    for metric in ("accuracy", "balanced_accuracy", "selection_rate", "tpr", "fpr"):
        labels.append(metric.replace("_", " "))
        before_values.append(before[metric])
        after_values.append(after[metric])
    for column in before["disparities"]:
        for metric, short in (("demographic_parity_difference", "DP diff"), ("equalized_odds_difference", "EO diff")):
            labels.append(f"{short}\n{column}")
            before_values.append(before["disparities"][column][metric])
            after_values.append(after["disparities"][column][metric])
    b = np.array([np.nan if v is None else v for v in before_values], dtype=float)
    a = np.array([np.nan if v is None else v for v in after_values], dtype=float)
    figure = Figure(figsize=(max(7.0, 0.9 * len(labels) + 2), 4.8), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x - 0.2, np.nan_to_num(b), 0.4, label="before", color="C0")
    ax.bar(x + 0.2, np.nan_to_num(a), 0.4, label="after ThresholdOptimizer", color="C2")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Mitigation on the test split: ThresholdOptimizer ({mitigation['constraint']}) "
                 f"on {mitigation['sensitive_column']!r}", fontsize=10)
    return figure


def audit_figures(audit: dict, mitigation: dict | None = None, *,
                  ship_variant: str | None = None) -> dict[str, Figure]:
    """Figures of an audit (and of a mitigation), as matplotlib Figures the caller saves.

    Keys: "fairness_tpr_fpr_<column>" (column names made filename-safe, e.g.
    "fairness_tpr_fpr_Sex_AgeBand" for the intersection), "compression_heatmap_tpr",
    "compression_heatmap_fpr", "compression_heatmap_roc_auc", and "mitigation" when a
    successful mitigation is given. ship_variant: the variant drawn beside the reference
    (default "int8" when present, else the first other variant). No pyplot state is used.
    """
    figures: dict[str, Figure] = {}
    reference = audit["settings"]["reference"]
    shipped = _pick_ship_variant(audit, ship_variant)
    variants = [reference] + ([shipped] if shipped and shipped != reference else [])
    for column in audit["settings"]["columns"]:
        figures[f"fairness_tpr_fpr_{safe_name(column)}"] = _tpr_fpr_figure(audit, column, variants)
    for metric in COMPRESSION_METRICS:
        heatmap = _compression_heatmap(audit, metric)
        if heatmap is not None:
            figures[f"compression_heatmap_{metric}"] = heatmap
    if mitigation is not None and mitigation.get("status") == "ok":
        figures["mitigation"] = _mitigation_figure(mitigation)
    return figures
