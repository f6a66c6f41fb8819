"""SHAP explanations of image classifiers, per image REGION, float vs int8 alike.

Pure functions: no file I/O, no TensorFlow import. Every model arrives as a batched
predict callable on images ``f(x: float32[n, H, W, C]) -> float[n]`` (the Keras model, the
LiteRT int8 interpreter, ...). LiteRT has no gradients, so a gradient explainer could
not explain the `.tflite`; instead every model is explained by the SAME model-agnostic
explainer, with the same reference image, seed and permutations:

* Players: the regions of a grid over the image (8 x 8 by default, "region r<row>c<col>",
  r0c0 at the top left), i.e. groups of pixel indices.
* Explainer: `grouped_permutation.explain_groups`, the grouped explainer (shap's
  explainers driven through `group_masker.GroupMasker`), on the flattened images: a region is kept
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

`ImageExplainer` is the imaging domain's explainer: it takes the grid from the shipped
preprocessing spec, adds local examples so that every (group, class) cell has one
(`local_examples`), and names the regions the domain asks for (its ``named_regions``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.data.images import box_blur
from pipeline.explainers.common import PredictFunction, finite_or_none
from pipeline.explainers.grouped_permutation import DEFAULT_PERMUTATIONS, explain_groups

JSON_IMAGE_SIDE = 32


@dataclass(frozen=True)
class ImageExplainer:
    """SHAP values per region of an image grid (see the module docstring).

    named_regions: the shipped preprocessing spec -> {name: the regions it covers} whose
    attribution share is reported by name (e.g. where a site burns in a marker), or None.
    """

    kind: ClassVar[str] = "image"
    named_regions: Callable[[Mapping], dict[str, list[str]] | None] | None = None

    def explain(self, *, predict_functions: dict, data, background: np.ndarray, rows: np.ndarray,
                row_ids: list[int], local_row_ids: list[int], seed: int, reference: str) -> dict:
        """Region SHAP values of every model on `rows` (encoded images of `data.test`), with region mass by group."""
        regions = data.preprocessing["explanation_regions"]
        labels = data.test.labels[np.asarray(row_ids, dtype=np.int64)]
        groups = data.test.groups.iloc[list(row_ids)].reset_index(drop=True)
        named = self.named_regions(data.preprocessing) if self.named_regions is not None else None
        return explain_images(
            predict_functions=predict_functions, background=background, rows=rows, row_ids=row_ids,
            local_row_ids=local_examples(row_ids, labels, groups, first=local_row_ids),
            regions=data.feature_groups, row_edges=regions["row_edges"], column_edges=regions["column_edges"],
            labels=labels, groups=groups, named_regions=named, seed=seed, reference=reference)

    def figures(self, explanation: dict) -> dict:
        """matplotlib Figures of an explanation (see `image_explanation_figures`)."""
        return image_explanation_figures(explanation)


def local_examples(row_ids: Sequence[int], labels: np.ndarray, groups: pd.DataFrame, *,
                   first: Sequence[int] = ()) -> list[int]:
    """The given rows, then a few more so that every (group column, group, class) cell has an example.

    Greedy: each added row is the one covering the most cells not yet covered (ties: the
    earliest), so about max(groups per column) x 2 rows are added.
    """
    row_ids = [int(r) for r in row_ids]
    cells = [{(column, str(groups[column].iloc[i]), int(labels[i])) for column in groups.columns}
             for i in range(len(row_ids))]
    chosen = [int(r) for r in first if int(r) in row_ids]
    covered = set().union(*(cells[row_ids.index(r)] for r in chosen)) if chosen else set()
    wanted = set().union(*cells) if cells else set()
    while wanted - covered:
        gains = [len(c - covered) if row_ids[i] not in chosen else -1 for i, c in enumerate(cells)]
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append(row_ids[best])
        covered |= cells[best]
    return chosen


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
    method_options: explain_groups's method, exact_max_model_rows, error_rows, reference_permutations.
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
    result = explain_groups(
        predict_functions={name: flat(function) for name, function in predict_functions.items()},
        background=reference_picture.reshape(1, -1), rows=rows.reshape(n, -1), row_ids=row_ids,
        local_row_ids=local_row_ids, feature_names=pixel_names, feature_groups=regions, seed=seed,
        reference=reference, permutations=permutations, max_background=1, **method_options)

    arrays = result["_arrays"]
    index_map = region_index_map(row_edges, column_edges)
    sets = _region_sets(columns, grid, named_regions)
    region_of = {name: j for j, name in enumerate(columns)}
    set_index = {name: np.array([region_of[m] for m in members]) for name, members in sets.items()}
    row_groups = groups.reset_index(drop=True) if groups is not None else None
    intensity = np.stack([np.bincount(index_map.ravel(), weights=rows[i].mean(axis=-1).ravel(), minlength=len(columns))
                          for i in range(n)]) / np.bincount(index_map.ravel(), minlength=len(columns))
    for name, model in result["models"].items():
        values = arrays["shap_values"][name]
        model["region_mass"] = _region_mass(_shares(values), columns, set_index, row_groups)
        _add_local_images(model["local"], values, rows, row_ids, intensity, columns, grid, labels, row_groups)

    result["explainer"] = f"{result['explainer']} over image regions"
    area = np.bincount(index_map.ravel(), minlength=len(columns)) / index_map.size
    result["settings"].update(_image_settings(
        columns, grid, row_edges, column_edges, rows.shape, background, blur_radius, sets,
        {name: finite_or_none(area[index].sum()) for name, index in set_index.items()}))
    arrays.update({"images": rows.mean(axis=-1), "labels": None if labels is None else np.asarray(labels),
                   "groups": row_groups, "index_map": index_map, "reference_image": reference_picture.mean(axis=-1)})
    return result


def _add_local_images(local: list[dict], values: np.ndarray, rows: np.ndarray, row_ids: Sequence[int],
                      intensity: np.ndarray, columns: list[str], grid: tuple[int, int], labels: np.ndarray | None,
                      row_groups: pd.DataFrame | None) -> None:
    """Each local entry gets its regions' mean intensity, its heatmap, a small copy of the image, label, groups."""
    position_of = {int(r): i for i, r in enumerate(row_ids)}
    for entry in local:
        i = position_of[entry["row_id"]]
        entry["values"] = {columns[j]: finite_or_none(intensity[i, j]) for j in range(len(columns))}
        entry["heatmap"] = [[finite_or_none(v) for v in line] for line in values[i].reshape(grid)]
        entry["image"] = [[round(float(v), 2) for v in line]
                          for line in _downsample(rows[i].mean(axis=-1), JSON_IMAGE_SIDE)]
        entry["row_title"], entry["column_title"] = "region row", "region column"
        if labels is not None:
            entry["label"] = int(labels[i])
        if row_groups is not None:
            entry["groups"] = {c: str(row_groups[c].iloc[i]) for c in row_groups.columns}


def _region_sets(columns: list[str], grid: tuple[int, int], named_regions: dict | None) -> dict[str, list[str]]:
    """The sets of regions whose attribution share is reported: the corners, the border ring, the named ones."""
    corner_names = [columns[0], columns[grid[1] - 1], columns[-grid[1]], columns[-1]]
    border = [columns[i * grid[1] + j] for i in range(grid[0]) for j in range(grid[1])
              if i in (0, grid[0] - 1) or j in (0, grid[1] - 1)]
    sets = {"corners": corner_names, "border": border, **(named_regions or {})}
    for name, members in sets.items():
        unknown = [m for m in members if m not in columns]
        if unknown:
            raise ValueError(f"named region {name!r} lists unknown regions {unknown}")
    return sets


def _region_mass(shares: np.ndarray, columns: list[str], set_index: dict[str, np.ndarray],
                 row_groups: pd.DataFrame | None) -> dict:
    """models[name]["region_mass"]: the mean share of |SHAP| per region and region set, overall and per group."""

    def summary(mask: np.ndarray) -> dict:
        chosen = shares[mask]
        mean = chosen.mean(axis=0)
        top = int(np.argmax(mean))
        return {"rows": int(mask.sum()),
                **{key: finite_or_none(mean[index].sum()) for key, index in set_index.items()},
                "top_region": columns[top], "top_region_share": finite_or_none(mean[top])}

    everything = np.ones(len(shares), dtype=bool)
    by_group: dict[str, dict] = {}
    if row_groups is not None:
        for column in row_groups.columns:
            by_group[column] = {}
            for group in sorted(row_groups[column].astype(str).unique()):
                mask = (row_groups[column].astype(str) == group).to_numpy()
                by_group[column][group] = {**summary(mask),
                                           "share_by_region": {columns[j]: finite_or_none(v) for j, v in
                                                               enumerate(shares[mask].mean(axis=0))}}
    mean_share = shares.mean(axis=0)
    return {
        **summary(everything),
        "share_by_region": {columns[j]: finite_or_none(mean_share[j]) for j in np.argsort(-mean_share, kind="stable")},
        "by_group": by_group,
    }


def _image_settings(columns: list[str], grid: tuple[int, int], row_edges: Sequence[int],
                    column_edges: Sequence[int], shape: tuple[int, ...], background: np.ndarray,
                    blur_radius: int | None, sets: dict[str, list[str]], area_share: dict) -> dict:
    """What the image explainer adds to (or changes in) the grouped explainer's settings."""
    n, height, width, channels = shape
    return {
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
        "area_share": area_share,
        "mass_measure": "per image, |SHAP| of a region / sum of |SHAP| over regions; averaged over images",
    }


# --------------------------------------------------------------------------- figures


def _expand(values: np.ndarray, index_map: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)[index_map]


def _grid_lines(ax, row_edges, column_edges) -> None:
    for edge in row_edges[1:-1]:
        ax.axhline(edge - 0.5, color="white", linewidth=0.3, alpha=0.4)
    for edge in column_edges[1:-1]:
        ax.axvline(edge - 0.5, color="white", linewidth=0.3, alpha=0.4)


@dataclass(frozen=True)
class _Panels:
    """Draws an image, optionally with a SHAP heatmap over its grid of regions."""

    index_map: np.ndarray
    row_edges: Sequence[int]
    column_edges: Sequence[int]

    def draw(self, ax, picture, heat=None, *, signed=False, limit=1.0, title=""):
        ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        image = None
        if heat is not None:
            image = ax.imshow(_expand(heat, self.index_map), cmap="RdBu_r" if signed else "magma",
                              vmin=-limit if signed else 0.0, vmax=limit, alpha=0.55, interpolation="nearest")
            _grid_lines(ax, self.row_edges, self.column_edges)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
        return image


def image_explanation_figures(explanation: dict, *, max_local: int | None = None) -> dict:
    """matplotlib Figures of an `explain_images` result (needs its "_arrays").

    "shap_global": the mean explained image, then each model's mean |SHAP| per region over
    it (one colour scale for all models), with the share on the corners and the border.
    "shap_global_by_<column>": the same per group of each group column.
    "shap_local_<row_id>": the image, then each model's signed SHAP per region over it.
    """
    arrays = explanation.get("_arrays")
    if not arrays or "images" not in arrays:
        return {}
    names = list(explanation["models"])
    settings = explanation["settings"]
    panels = _Panels(arrays["index_map"], settings["row_edges"], settings["column_edges"])
    images = np.asarray(arrays["images"])
    values = {name: np.asarray(arrays["shap_values"][name]) for name in names}
    importance = {name: np.abs(values[name]).mean(axis=0) for name in names}
    limit = max(float(max(v.max() for v in importance.values())), 1e-12)
    figures = {"shap_global": _global_image_figure(explanation, panels, images, importance, limit)}
    groups = arrays.get("groups")
    if groups is not None and len(groups):
        figures.update(_group_image_figures(explanation, panels, images, values, groups, limit))
    figures.update(_local_image_figures(explanation, panels, images, values, max_local))
    return figures


def _global_image_figure(explanation: dict, panels: _Panels, images: np.ndarray, importance: dict, limit: float):
    """The mean explained image, then each model's mean |SHAP| per region over it (one colour scale)."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    names = list(models)
    area = explanation["settings"].get("area_share", {})
    mean_image = images.mean(axis=0)
    fig = Figure(figsize=(3.2 * (len(names) + 1) + 0.8, 3.6), layout="constrained")
    axes = fig.subplots(1, len(names) + 1)
    panels.draw(axes[0], mean_image, title=f"mean of the {len(images)} explained images")
    for ax, name in zip(axes[1:], names):
        mass = models[name]["region_mass"]
        heat = panels.draw(ax, mean_image, importance[name], limit=limit,
                           title=f"{name}: mean |SHAP| per region\ncorners {mass['corners']:.1%} "
                                 f"(area {area.get('corners', 0):.1%}), border {mass['border']:.1%} "
                                 f"(area {area.get('border', 0):.1%})")
    fig.colorbar(heat, ax=list(axes), shrink=0.8, label="mean |SHAP| (probability)")
    return fig


def _group_image_figures(explanation: dict, panels: _Panels, images: np.ndarray, values: dict,
                         groups: pd.DataFrame, limit: float) -> dict:
    """"shap_global_by_<column>": per group of each group column, its mean image and each model's mean |SHAP|."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    names = list(models)
    figures = {}
    for column in groups.columns:
        labels = sorted(groups[column].astype(str).unique())
        fig = Figure(figsize=(3.2 * (len(names) + 1) + 0.8, 3.0 * len(labels) + 0.3), layout="constrained")
        axes = np.atleast_2d(fig.subplots(len(labels), len(names) + 1))
        for r, group in enumerate(labels):
            mask = (groups[column].astype(str) == group).to_numpy()
            group_mean = images[mask].mean(axis=0)
            panels.draw(axes[r, 0], group_mean, title=f"{column} = {group} ({int(mask.sum())} images)")
            for c, name in enumerate(names, start=1):
                mass = models[name]["region_mass"]["by_group"][column][group]
                heat = panels.draw(axes[r, c], group_mean, np.abs(values[name][mask]).mean(axis=0), limit=limit,
                                   title=f"{name}: corners {mass['corners']:.1%}, border {mass['border']:.1%}\n"
                                         f"top {mass['top_region']} ({mass['top_region_share']:.1%})")
        fig.colorbar(heat, ax=list(axes.ravel()), shrink=0.6, label="mean |SHAP| (probability)")
        figures[f"shap_global_by_{column}"] = fig
    return figures


def _local_image_figures(explanation: dict, panels: _Panels, images: np.ndarray, values: dict,
                         max_local: int | None) -> dict:
    """"shap_local_<row_id>": the image, then each model's signed SHAP per region over it."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    names = list(models)
    row_ids = [int(r) for r in explanation["_arrays"]["row_ids"]]
    local_ids = [entry["row_id"] for entry in models[names[0]]["local"]]
    if max_local is not None:
        local_ids = local_ids[:max_local]
    position = {r: i for i, r in enumerate(row_ids)}
    entries = {name: {e["row_id"]: e for e in models[name]["local"]} for name in names}
    figures = {}
    for row_id in local_ids:
        i = position[row_id]
        limit = max(float(max(np.abs(values[name][i]).max() for name in names)), 1e-12)
        fig = Figure(figsize=(3.2 * (len(names) + 1) + 0.8, 3.6), layout="constrained")
        axes = fig.subplots(1, len(names) + 1)
        first = entries[names[0]][row_id]
        described = ", ".join(f"{k} {v}" for k, v in (first.get("groups") or {}).items())
        label = f"label {first['label']}" if "label" in first else ""
        panels.draw(axes[0], images[i],
                    title=f"test image {row_id}\n{label}{'; ' if label and described else ''}{described}")
        for ax, name in zip(axes[1:], names):
            entry = entries[name].get(row_id)
            if entry is None:
                continue
            heat = panels.draw(ax, images[i], values[name][i], signed=True, limit=limit,
                               title=f"{name}: f(x) {entry['score']:.3f}, base {entry['base_value']:.3f}")
        fig.colorbar(heat, ax=list(axes), shrink=0.8, label="SHAP per region (red: towards positive)")
        figures[f"shap_local_{row_id}"] = fig
    return figures
