"""SHAP explanations of image classifiers, per image REGION, float vs int8 alike.

Pure functions: no file I/O, no TensorFlow import. Every model arrives as a batched
predict callable on images ``f(x: float32[n, H, W, C]) -> float[n]`` (the Keras model, the
LiteRT int8 interpreter, ...). LiteRT has no gradients, so a gradient explainer could
not explain the `.tflite`; instead every model is explained by the SAME model-agnostic
explainer, with the same reference image, seed and permutations:

* Players: the regions of a grid over the image (8 x 8 by default, "region r<row>c<col>",
  r0c0 at the top left), i.e. groups of pixel indices.
* Explainer: `pipeline.stages.explain.explain_tabular`'s grouped explainer (shap's
  explainers driven through `_GroupMasker`), on the flattened images: a region is kept
  from the image or replaced, as a whole, by the same region of the reference image. With
  64 regions the 2^64 coalitions cannot all be evaluated, so the values are SAMPLED
  (shap.PermutationExplainer, antithetic permutations): an estimate of the Shapley values,
  whose error against a 16-permutation reference is measured on a few images and recorded
  (settings["sampling_error"]). Additivity is exact: per image, the region values sum to
  f(image) - f(reference).
* Reference ("background"): ONE image, the box-blurred mean of the background images the
  pipeline hands in (training images). A masked region thus shows a smooth, average
  chest instead of this patient's detail, which is what shap's "blur" image masker does
  (it needs OpenCV, absent here). One reference keeps the cost at
  ``permutations * (2 G + 1)`` model calls per image (258 for 64 regions, 2 permutations).

Added on top of the tabular result (same top-level keys: explainer, settings, models,
agreement; each model keeps base_value, seconds, seconds_per_100_rows, global_importance
sorted descending, additivity, local):

* ``models[name]["region_mass"]``: where the attribution mass lies. Per explained image
  the share of |SHAP| that falls on each region (shares sum to 1), averaged: overall
  (``share_by_region``), on the four corner regions and on the outer ring of regions
  (``corners``, ``border``, beside ``area_share`` of the same regions, the share a
  uniform attribution would give), on any ``named_regions`` the caller passes (e.g. where
  a site burns in a marker), and the same per group of every group column
  (``by_group``). A shortcut shows up as a number: mass on a corner, far above its area.
* each local entry: the image's ``label`` and ``groups``, ``heatmap`` (the SHAP values as
  a grid of regions), ``image`` (the image, averaged down to at most 32 x 32) and
  ``values`` (mean intensity of each region).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from pipeline.data.images import box_blur
from pipeline.stages.explain import DEFAULT_PERMUTATIONS, explain_tabular

PredictFunction = Callable[[np.ndarray], np.ndarray]
JSON_IMAGE_SIDE = 32


def reference_image(background: np.ndarray, *, blur_radius: int | None = None) -> np.ndarray:
    """The box-blurred mean of background images (n, H, W, C) -> (H, W, C)."""
    background = np.asarray(background, dtype=np.float64)
    if background.ndim != 4 or len(background) == 0:
        raise ValueError(f"background of shape {background.shape}; expected images (n, height, width, channels)")
    height, width = background.shape[1:3]
    radius = max(1, round(min(height, width) / 16)) if blur_radius is None else int(blur_radius)
    mean = background.mean(axis=0)                                     # (H, W, C)
    blurred = box_blur(np.moveaxis(mean, -1, 0), radius)               # (C, H, W)
    return np.moveaxis(blurred, 0, -1).astype(np.float32)


def region_index_map(row_edges: Sequence[int], column_edges: Sequence[int]) -> np.ndarray:
    """(H, W) int: the region index (row-major over the grid) of every pixel."""
    rows = np.searchsorted(np.asarray(row_edges)[1:], np.arange(row_edges[-1]), side="right")
    columns = np.searchsorted(np.asarray(column_edges)[1:], np.arange(column_edges[-1]), side="right")
    return rows[:, None] * (len(column_edges) - 1) + columns[None, :]


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _shares(values: np.ndarray) -> np.ndarray:
    """Per row, |SHAP| / sum |SHAP| (rows without any attribution: uniform)."""
    magnitude = np.abs(values)
    total = magnitude.sum(axis=1, keepdims=True)
    uniform = np.full_like(magnitude, 1.0 / magnitude.shape[1])
    return np.where(total > 0, magnitude / np.where(total > 0, total, 1.0), uniform)


def _downsample(image: np.ndarray, side: int) -> np.ndarray:
    """Average an (H, W) image down to at most side x side (whole blocks)."""
    factor = max(1, math.ceil(max(image.shape) / side))
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:height, :width].reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))


def explain_images(
    *,
    predict_functions: dict[str, PredictFunction],
    background: np.ndarray,
    rows: np.ndarray,
    row_ids: Sequence[int],
    local_row_ids: Sequence[int],
    regions: dict[str, list[int]],
    row_edges: Sequence[int],
    column_edges: Sequence[int],
    labels: np.ndarray | None = None,
    groups: pd.DataFrame | None = None,
    named_regions: dict[str, list[str]] | None = None,
    seed: int = 0,
    reference: str | None = None,
    permutations: int = DEFAULT_PERMUTATIONS,
    blur_radius: int | None = None,
    **method_options,
) -> dict:
    """Per-region SHAP values of every model on images `rows` (n, H, W, C); see the module docstring.

    regions: region name -> flattened pixel indices (row-major over H x W x C), in grid order.
    labels / groups: of the explained rows (for the local entries and the by-group mass).
    named_regions: a name -> the regions it covers, whose attribution share is reported.
    method_options: explain_tabular's method, exact_max_model_rows, error_rows, reference_permutations.
    """
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 4:
        raise ValueError(f"rows of shape {rows.shape}; expected images (n, height, width, channels)")
    n, height, width, channels = rows.shape
    if int(row_edges[-1]) != height or int(column_edges[-1]) != width:
        raise ValueError(f"region edges end at {row_edges[-1]} x {column_edges[-1]}, the images are {height} x {width}")
    grid = (len(row_edges) - 1, len(column_edges) - 1)
    columns = list(regions)
    if len(columns) != grid[0] * grid[1]:
        raise ValueError(f"{len(columns)} regions for a {grid[0]} x {grid[1]} grid")
    reference_picture = reference_image(background, blur_radius=blur_radius)
    if reference_picture.shape != rows.shape[1:]:
        raise ValueError(f"background images of shape {reference_picture.shape}, explained images {rows.shape[1:]}")
    shape = rows.shape[1:]

    def flat(function: PredictFunction) -> PredictFunction:
        return lambda x: function(np.asarray(x, dtype=np.float32).reshape((-1, *shape)))

    pixel_names = [f"pixel r{r} c{c}" + (f" ch{k}" if channels > 1 else "")
                   for r in range(height) for c in range(width) for k in range(channels)]
    result = explain_tabular(
        predict_functions={name: flat(function) for name, function in predict_functions.items()},
        background=reference_picture.reshape(1, -1), rows=rows.reshape(n, -1), row_ids=row_ids,
        local_row_ids=local_row_ids, feature_names=pixel_names, feature_groups=regions, seed=seed,
        reference=reference, permutations=permutations, max_background=1, **method_options)

    arrays = result["_arrays"]
    index_map = region_index_map(row_edges, column_edges)
    region_of = {name: j for j, name in enumerate(columns)}
    corner_names = [columns[0], columns[grid[1] - 1], columns[-grid[1]], columns[-1]]
    border = [columns[i * grid[1] + j] for i in range(grid[0]) for j in range(grid[1])
              if i in (0, grid[0] - 1) or j in (0, grid[1] - 1)]
    area = np.bincount(index_map.ravel(), minlength=len(columns)) / index_map.size
    sets = {"corners": corner_names, "border": border, **(named_regions or {})}
    for name, members in sets.items():
        unknown = [m for m in members if m not in region_of]
        if unknown:
            raise ValueError(f"named region {name!r} lists unknown regions {unknown}")
    set_index = {name: np.array([region_of[m] for m in members]) for name, members in sets.items()}
    row_groups = groups.reset_index(drop=True) if groups is not None else None
    position_of = {int(r): i for i, r in enumerate(row_ids)}
    intensity = np.stack([np.bincount(index_map.ravel(), weights=rows[i].mean(axis=-1).ravel(), minlength=len(columns))
                          for i in range(n)]) / np.bincount(index_map.ravel(), minlength=len(columns))

    for name, model in result["models"].items():
        values = arrays["shap_values"][name]
        shares = _shares(values)

        def summary(mask: np.ndarray) -> dict:
            chosen = shares[mask]
            mean = chosen.mean(axis=0)
            top = int(np.argmax(mean))
            return {"rows": int(mask.sum()),
                    **{key: _num(mean[index].sum()) for key, index in set_index.items()},
                    "top_region": columns[top], "top_region_share": _num(mean[top])}

        everything = np.ones(n, dtype=bool)
        by_group: dict[str, dict] = {}
        if row_groups is not None:
            for column in row_groups.columns:
                by_group[column] = {}
                for group in sorted(row_groups[column].astype(str).unique()):
                    mask = (row_groups[column].astype(str) == group).to_numpy()
                    by_group[column][group] = {**summary(mask),
                                               "share_by_region": {columns[j]: _num(v) for j, v in
                                                                   enumerate(shares[mask].mean(axis=0))}}
        mean_share = shares.mean(axis=0)
        model["region_mass"] = {
            **summary(everything),
            "share_by_region": {columns[j]: _num(mean_share[j]) for j in np.argsort(-mean_share, kind="stable")},
            "by_group": by_group,
        }
        for entry in model["local"]:
            i = position_of[entry["row_id"]]
            entry["values"] = {columns[j]: _num(intensity[i, j]) for j in range(len(columns))}
            entry["heatmap"] = [[_num(v) for v in line] for line in values[i].reshape(grid)]
            entry["image"] = [[round(float(v), 2) for v in line]
                              for line in _downsample(rows[i].mean(axis=-1), JSON_IMAGE_SIDE)]
            entry["row_title"], entry["column_title"] = "region row", "region column"
            if labels is not None:
                entry["label"] = int(labels[i])
            if row_groups is not None:
                entry["groups"] = {c: str(row_groups[c].iloc[i]) for c in row_groups.columns}

    result["explainer"] = f"{result['explainer']} over image regions"
    settings = result["settings"]
    settings.update({
        "masking": "per image region: a region is kept from the image or replaced, as a whole, by the same region "
                   "of the reference image (the Shapley game over regions, _GroupMasker)",
        "players": f"{len(columns)} regions of a {grid[0]} x {grid[1]} grid (region r<row>c<column>, r0c0 top left)",
        "grid": list(grid), "row_edges": [int(e) for e in row_edges], "column_edges": [int(e) for e in column_edges],
        "image_shape": [int(height), int(width), int(channels)],
        "reference_image": f"the mean of {len(background)} training images, box-blurred (radius "
                           f"{max(1, round(min(height, width) / 16)) if blur_radius is None else int(blur_radius)})",
        "background_rows_given": int(len(background)),
        "background_sampling": "one reference image: the blurred mean of the given background images",
        "additivity_target": "f(image) - f(reference image), both from the predict function",
        "rows": n,
        "region_sets": {name: list(members) for name, members in sets.items()},
        "area_share": {name: _num(area[index].sum()) for name, index in set_index.items()},
        "mass_measure": "per image, |SHAP| of a region / sum of |SHAP| over regions; averaged over images",
    })
    arrays.update({"images": rows.mean(axis=-1), "labels": None if labels is None else np.asarray(labels),
                   "groups": row_groups, "index_map": index_map, "reference_image": reference_picture.mean(axis=-1)})
    return result


# --------------------------------------------------------------------------- figures


def _expand(values: np.ndarray, index_map: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)[index_map]


def _grid_lines(ax, row_edges, column_edges) -> None:
    for edge in row_edges[1:-1]:
        ax.axhline(edge - 0.5, color="white", linewidth=0.3, alpha=0.4)
    for edge in column_edges[1:-1]:
        ax.axvline(edge - 0.5, color="white", linewidth=0.3, alpha=0.4)


def image_explanation_figures(explanation: dict, *, max_local: int | None = None) -> dict:
    """matplotlib Figures of an `explain_images` result (needs its "_arrays").

    "shap_global": the mean explained image, then each model's mean |SHAP| per region over
    it (one colour scale for all models), with the share on the corners and the border.
    "shap_global_by_<column>": the same per group of each group column.
    "shap_local_<row_id>": the image, then each model's signed SHAP per region over it.
    """
    from matplotlib.figure import Figure

    arrays = explanation.get("_arrays")
    if not arrays or "images" not in arrays:
        return {}
    models = explanation["models"]
    names = list(models)
    settings = explanation["settings"]
    row_edges, column_edges = settings["row_edges"], settings["column_edges"]
    index_map = arrays["index_map"]
    images = np.asarray(arrays["images"])
    row_ids = [int(r) for r in arrays["row_ids"]]
    values = {name: np.asarray(arrays["shap_values"][name]) for name in names}
    area = settings.get("area_share", {})
    figures: dict = {}

    def panel(ax, picture, heat=None, *, signed=False, limit=1.0, title=""):
        ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        image = None
        if heat is not None:
            image = ax.imshow(_expand(heat, index_map), cmap="RdBu_r" if signed else "magma",
                              vmin=-limit if signed else 0.0, vmax=limit, alpha=0.55, interpolation="nearest")
            _grid_lines(ax, row_edges, column_edges)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
        return image

    # (a) global
    mean_image = images.mean(axis=0)
    importance = {name: np.abs(values[name]).mean(axis=0) for name in names}
    limit = max(float(max(v.max() for v in importance.values())), 1e-12)
    fig = Figure(figsize=(3.2 * (len(names) + 1) + 0.8, 3.6), layout="constrained")
    axes = fig.subplots(1, len(names) + 1)
    panel(axes[0], mean_image, title=f"mean of the {len(images)} explained images")
    for ax, name in zip(axes[1:], names):
        mass = models[name]["region_mass"]
        heat = panel(ax, mean_image, importance[name], limit=limit,
                     title=f"{name}: mean |SHAP| per region\ncorners {mass['corners']:.1%} "
                           f"(area {area.get('corners', 0):.1%}), border {mass['border']:.1%} "
                           f"(area {area.get('border', 0):.1%})")
    fig.colorbar(heat, ax=list(axes), shrink=0.8, label="mean |SHAP| (probability)")
    figures["shap_global"] = fig

    # (b) per group of each group column
    groups = arrays.get("groups")
    if groups is not None and len(groups):
        for column in groups.columns:
            labels = sorted(groups[column].astype(str).unique())
            fig = Figure(figsize=(3.2 * (len(names) + 1) + 0.8, 3.0 * len(labels) + 0.3), layout="constrained")
            axes = np.atleast_2d(fig.subplots(len(labels), len(names) + 1))
            for r, group in enumerate(labels):
                mask = (groups[column].astype(str) == group).to_numpy()
                group_mean = images[mask].mean(axis=0)
                panel(axes[r, 0], group_mean, title=f"{column} = {group} ({int(mask.sum())} images)")
                for c, name in enumerate(names, start=1):
                    mass = models[name]["region_mass"]["by_group"][column][group]
                    heat = panel(axes[r, c], group_mean, np.abs(values[name][mask]).mean(axis=0), limit=limit,
                                 title=f"{name}: corners {mass['corners']:.1%}, border {mass['border']:.1%}\n"
                                       f"top {mass['top_region']} ({mass['top_region_share']:.1%})")
            fig.colorbar(heat, ax=list(axes.ravel()), shrink=0.6, label="mean |SHAP| (probability)")
            figures[f"shap_global_by_{column}"] = fig

    # (c) local
    local_ids = [entry["row_id"] for entry in models[names[0]]["local"]]
    if max_local is not None:
        local_ids = local_ids[:max_local]
    position = {r: i for i, r in enumerate(row_ids)}
    entries = {name: {e["row_id"]: e for e in models[name]["local"]} for name in names}
    for row_id in local_ids:
        i = position[row_id]
        limit = max(float(max(np.abs(values[name][i]).max() for name in names)), 1e-12)
        fig = Figure(figsize=(3.2 * (len(names) + 1) + 0.8, 3.6), layout="constrained")
        axes = fig.subplots(1, len(names) + 1)
        first = entries[names[0]][row_id]
        described = ", ".join(f"{k} {v}" for k, v in (first.get("groups") or {}).items())
        label = f"label {first['label']}" if "label" in first else ""
        panel(axes[0], images[i], title=f"test image {row_id}\n{label}{'; ' if label and described else ''}{described}")
        for ax, name in zip(axes[1:], names):
            entry = entries[name].get(row_id)
            if entry is None:
                continue
            heat = panel(ax, images[i], values[name][i], signed=True, limit=limit,
                         title=f"{name}: f(x) {entry['score']:.3f}, base {entry['base_value']:.3f}")
        fig.colorbar(heat, ax=list(axes), shrink=0.8, label="SHAP per region (red: towards positive)")
        figures[f"shap_local_{row_id}"] = fig
    return figures
