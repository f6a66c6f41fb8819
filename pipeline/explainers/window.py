"""SHAP per sensor and time block for window models (cycles x sensors), float and int8 alike.

Pure functions: no file I/O, no TensorFlow. The explainer is `grouped_permutation.explain_groups`:
shap's PermutationExplainer over `group_masker.GroupMasker`, whose players are groups of input
indices. Here a window (W cycles x S sensors) is flattened in C order (index t * S + s) and
the players are CELLS: one sensor over one block of consecutive cycles (the window cut into
`blocks` nearly equal blocks, default 5). A cell is kept from the explained window or taken
from a background window as a whole, so every model sees real sensor trajectories, and
the values of all cells add up to f(x) - E_background[f] exactly (checked as additivity).
G = S * blocks players: with 14 sensors and 5 blocks, 70 players and
permutations * (2 * 70 + 1) masked evaluations per explained window and background row.
2^70 coalitions cannot all be evaluated, so these values are SAMPLED (antithetic
permutations): an estimate whose error, against a reference of more permutations, is
measured on a few windows and recorded in settings["sampling_error"] (see `explain`).

The result keeps `explain_groups`'s keys (explainer, settings, models{name: base_value,
seconds, seconds_per_100_rows, global_importance, additivity, local}, agreement, _arrays),
with cell names such as "sensor_11 @ t-5..t-0" (t-0 is the window's last cycle), and adds
  "window_cells": {"sensors": [...], "blocks": ["t-29..t-24", ...], "block_cycles": [[29, 24], ...]},
  "heatmaps": {model: [[mean |SHAP| per block] per sensor]},
  "by_sensor": {model: {sensor: mean over rows of |sum of its cells|}} (sorted descending),
  "by_time_block": {model: {block: mean over rows of |sum of its cells|}}.
`window_explanation_figures` draws them: "shap_global" (heatmaps side by side, plus the
difference to the reference model), "shap_global_by_sensor" and one "shap_local_<row_id>"
heatmap of signed values per local row.

`WindowExplainer` is the maintenance domain's explainer for sensor histories: the sensors'
names come from the shipped preprocessing spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.explainers.grouped_permutation import DEFAULT_MAX_BACKGROUND, DEFAULT_PERMUTATIONS, explain_groups

DEFAULT_BLOCKS = 5


@dataclass(frozen=True)
class WindowExplainer:
    """SHAP values per (sensor, time block) cell of a window (see the module docstring)."""

    kind: ClassVar[str] = "window"

    def explain(self, *, predict_functions: dict, data, background: np.ndarray, rows: np.ndarray,
                row_ids: list[int], local_row_ids: list[int], seed: int, reference: str) -> dict:
        """Cell SHAP values of every model on `rows` (encoded windows of `data.test`)."""
        return explain_windows(predict_functions=predict_functions, background=background, rows=rows,
                               row_ids=row_ids, local_row_ids=local_row_ids, sensors=data.preprocessing["sensors"],
                               seed=seed, reference=reference)

    def figures(self, explanation: dict) -> dict:
        """matplotlib Figures of an explanation (see `window_explanation_figures`)."""
        return window_explanation_figures(explanation)


def time_blocks(window: int, blocks: int = DEFAULT_BLOCKS) -> list[np.ndarray]:
    """Consecutive time indices of each block, oldest first."""
    if blocks < 1:
        raise ValueError(f"blocks is {blocks}, expected at least 1")
    return [b for b in np.array_split(np.arange(window), min(blocks, window)) if b.size]


def block_label(block: np.ndarray, window: int) -> str:
    first, last = window - 1 - int(block[0]), window - 1 - int(block[-1])
    return f"t-{first}" if first == last else f"t-{first}..t-{last}"


def window_cells(sensors: Sequence[str], window: int, blocks: int = DEFAULT_BLOCKS) -> dict[str, list[int]]:
    """Cell name -> flattened input indices, sensor-major (every block of sensor 1, then sensor 2 ...)."""
    count = len(sensors)
    cells = {}
    for j, sensor in enumerate(sensors):
        for block in time_blocks(window, blocks):
            cells[f"{sensor} @ {block_label(block, window)}"] = [int(t) * count + j for t in block]
    return cells


def _flat(predict, shape: tuple[int, int]):
    def predict_flat(x: np.ndarray) -> np.ndarray:
        return predict(np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), *shape))

    return predict_flat


def explain_windows(
    *,
    predict_functions: dict,
    background: np.ndarray,
    rows: np.ndarray,
    row_ids: Sequence[int],
    local_row_ids: Sequence[int],
    sensors: Sequence[str],
    seed: int = 0,
    reference: str | None = None,
    blocks: int = DEFAULT_BLOCKS,
    permutations: int = DEFAULT_PERMUTATIONS,
    max_background: int = DEFAULT_MAX_BACKGROUND,
    **method_options,
) -> dict:
    """Cell-level SHAP values of every model on windows `rows` [n, W, S]; see the module docstring.

    method_options: explain_groups's method, exact_max_model_rows, error_rows, reference_permutations.
    """
    rows = np.asarray(rows, dtype=np.float32)
    background = np.asarray(background, dtype=np.float32)
    if rows.ndim != 3 or background.ndim != 3 or rows.shape[1:] != background.shape[1:]:
        raise ValueError(f"rows {rows.shape} and background {background.shape} must be windows [n, W, S] of one shape")
    window, count = rows.shape[1:]
    if len(sensors) != count:
        raise ValueError(f"{len(sensors)} sensor names for windows of {count} sensors")
    cells = window_cells(sensors, window, blocks)
    names = [f"{sensor} @ t-{window - 1 - t}" for t in range(window) for sensor in sensors]
    result = explain_groups(
        predict_functions={name: _flat(f, (window, count)) for name, f in predict_functions.items()},
        background=background.reshape(len(background), -1), rows=rows.reshape(len(rows), -1),
        row_ids=row_ids, local_row_ids=local_row_ids, feature_names=names, feature_groups=cells,
        seed=seed, reference=reference, permutations=permutations, max_background=max_background,
        **method_options)

    parts = time_blocks(window, blocks)
    labels = [block_label(b, window) for b in parts]
    result["settings"].update({
        "players": f"(sensor, time block) cells: {count} sensors x {len(parts)} blocks of the {window}-cycle window",
        "masking": "interventional, per cell: one sensor over one block of cycles is kept from the window or "
                   "taken from a background window as a unit (_GroupMasker)",
    })
    result["window_cells"] = {"sensors": list(sensors), "blocks": labels,
                              "block_cycles": [[window - 1 - int(b[0]), window - 1 - int(b[-1])] for b in parts]}
    heatmaps, by_sensor, by_block = {}, {}, {}
    for name, values in result["_arrays"]["shap_values"].items():
        cube = np.asarray(values, dtype=np.float64).reshape(len(values), count, len(parts))  # sensor-major cells
        heatmaps[name] = np.abs(cube).mean(axis=0).round(8).tolist()
        sensor_totals = np.abs(cube.sum(axis=2)).mean(axis=0)
        block_totals = np.abs(cube.sum(axis=1)).mean(axis=0)
        by_sensor[name] = {sensors[j]: float(sensor_totals[j]) for j in np.argsort(-sensor_totals, kind="stable")}
        by_block[name] = {labels[b]: float(block_totals[b]) for b in range(len(parts))}
    result["heatmaps"], result["by_sensor"], result["by_time_block"] = heatmaps, by_sensor, by_block
    return result


def window_explanation_figures(explanation: dict) -> dict:
    """matplotlib Figures (no pyplot state) of an `explain_windows` result, from its JSON part."""
    names = list(explanation["models"])
    reference = explanation.get("reference") or names[0]
    return {"shap_global": _global_heatmaps(explanation, names, reference),
            "shap_global_by_sensor": _sensor_bars(explanation, names, reference),
            **_local_heatmaps(explanation, names)}


def _height(sensors: list[str]) -> float:
    return 1.6 + 0.28 * len(sensors)


def _global_heatmaps(explanation: dict, names: list[str], reference: str):
    """Mean |SHAP| heatmap per model on one colour scale, plus each model's difference to the reference."""
    from matplotlib.figure import Figure

    sensors, labels = explanation["window_cells"]["sensors"], explanation["window_cells"]["blocks"]
    maps = {n: np.asarray(explanation["heatmaps"][n], dtype=np.float64) for n in names}
    top = max(float(m.max()) for m in maps.values()) or 1.0
    panels = names + ([f"{n} - {reference}" for n in names if n != reference])
    fig = Figure(figsize=(3.2 * len(panels) + 1.5, _height(sensors)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, n in zip(axes, names):
        image = ax.imshow(maps[n], aspect="auto", cmap="viridis", vmin=0.0, vmax=top)
        ax.set_title(n, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes[:len(names)].tolist(), pad=0.01).set_label("mean |SHAP| (probability)", fontsize=8)
    others = [n for n in names if n != reference]
    for ax, n in zip(axes[len(names):], others):
        difference = maps[n] - maps[reference]
        span = float(np.abs(difference).max()) or 1e-9
        diff_image = ax.imshow(difference, aspect="auto", cmap="coolwarm", vmin=-span, vmax=span)
        ax.set_title(f"{n} minus {reference}", fontsize=9)
        fig.colorbar(diff_image, ax=ax, pad=0.01)
    for k, ax in enumerate(axes):
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
        ax.set_yticks(range(len(sensors)))
        ax.set_yticklabels(sensors if k == 0 else [], fontsize=7)
        ax.set_xlabel("cycles before the window's end", fontsize=8)
    fig.suptitle("Global importance per sensor and time block (mean |SHAP|)", fontsize=10)
    return fig


def _sensor_bars(explanation: dict, names: list[str], reference: str):
    """Global importance per sensor: bars per model, ranked by the reference model."""
    from matplotlib.figure import Figure

    order = list(explanation["by_sensor"][reference])
    fig = Figure(figsize=(8, 1.2 + 0.3 * len(order) * max(1, len(names)) ** 0.5))
    ax = fig.add_subplot()
    bar = 0.8 / max(len(names), 1)
    y = np.arange(len(order))
    for m, n in enumerate(names):
        ax.barh(y + (m - (len(names) - 1) / 2) * bar, [explanation["by_sensor"][n][s] for s in order], height=bar,
                label=n)
    ax.set_yticks(y)
    ax.set_yticklabels(order, fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("mean |sum of the sensor's SHAP values over the window| (probability)")
    ax.set_title(f"Global importance per sensor (ranked by {reference})", fontsize=10)
    fig.tight_layout()
    return fig


def _local_heatmaps(explanation: dict, names: list[str]) -> dict:
    """"shap_local_<row_id>": signed heatmaps per local window, models side by side."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    sensors, labels = explanation["window_cells"]["sensors"], explanation["window_cells"]["blocks"]
    keys = [f"{s} @ {b}" for s in sensors for b in labels]
    local = {n: {entry["row_id"]: entry for entry in models[n]["local"]} for n in names}
    figures = {}
    for row_id in local[names[0]]:
        entries = {n: local[n][row_id] for n in names if row_id in local[n]}
        grids = {n: np.asarray([e["contributions"].get(k) or 0.0 for k in keys], dtype=np.float64
                               ).reshape(len(sensors), len(labels)) for n, e in entries.items()}
        span = max(float(np.abs(g).max()) for g in grids.values()) or 1e-9
        fig = Figure(figsize=(3.4 * len(grids) + 1.5, _height(sensors) + 0.3))
        axes = fig.subplots(1, len(grids), squeeze=False)[0]
        for k, (ax, (n, grid)) in enumerate(zip(axes, grids.items())):
            image = ax.imshow(grid, aspect="auto", cmap="coolwarm", vmin=-span, vmax=span)
            e = entries[n]
            ax.set_title(f"{n}: f(x)={e['score']:.3f}, base={e['base_value']:.3f}", fontsize=8)
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
            ax.set_yticks(range(len(sensors)))
            ax.set_yticklabels(sensors if k == 0 else [], fontsize=7)
        fig.colorbar(image, ax=axes.tolist(), pad=0.01).set_label("SHAP value (probability)", fontsize=8)
        fig.suptitle(f"Window {row_id}: what pushed the failure score up (red) or down (blue)", fontsize=10)
        figures[f"shap_local_{row_id}"] = fig
    return figures
