"""The flip ledger: every test example whose decision a variant changed against the float model.

Compression rarely moves an aggregate metric much, but the examples it moves are not random:
Hooker et al. ("What do compressed deep neural networks forget?", 2019) found that pruning
and quantization change the decisions of a small set of "compression-identified exemplars",
over-represented in under-represented groups and atypical inputs, and recommend sending them
to a person for review. The ledger is that set, per variant:

* ``flip_ledger``: one row per (variant, flipped example): its row and unit, its groups, its
  label, both scores and thresholds, both margins (score - threshold: how close to the line the
  example was), the direction (0 -> 1 or 1 -> 0), whether the flip made the decision right or
  wrong, and the example itself where it can be written as text (a table row, a review);
* ``flip_rates``: per variant, how many decisions flipped overall and in every group of every
  sensitive column (and their intersection), each rate with its 95 % interval.

A flip rate is the share of a group's rows whose decision differs from the reference: a
proportion over the group's rows, like a selection rate (of the indicator "flipped"). So it gets
the audit's interval for a group's rate (intervals.py): the stratified (cluster) bootstrap's
percentile interval, on the audit's own resamples of the group, widened to Wilson's score
interval; the coverage of that construction is measured by benchmarks/interval_coverage.py. A
rate of 0 of n still has an interval (Wilson's upper bound), so "no flips in this group" reads
as "fewer than about 3.7/n", not as "none ever".

Pure functions: no file I/O, no TensorFlow.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.config import FLOAT_MODEL
from pipeline.metrics import Predictions
from pipeline.stages.audit.bootstrap import _bootstrap_weights, _divide
from pipeline.stages.audit.intervals import _rate_estimate
from pipeline.stages.audit.json_values import _json_safe
from pipeline.stages.audit.partitions import _partitions
from pipeline.stages.audit.variants import _variant_order

# The ledger's leading columns; the sensitive columns follow `unit`, and `example` comes last.
LEDGER_COLUMNS = ("variant", "row", "label", "unit")
# The whole test split as one "group", for the overall flip rate's interval.
ALL_ROWS = "all test rows"


def flipped(reference: Predictions, variant: Predictions) -> np.ndarray:
    """Whether each row's decision differs between the two models (bool array)."""
    return reference.decisions != variant.decisions


def flip_ledger(*, labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
                reference: str = FLOAT_MODEL, clusters: np.ndarray | None = None,
                examples: list[str] | None = None) -> pd.DataFrame:
    """One row per flipped decision of every variant against the reference (empty, with its columns, if none).

    Columns: `variant`, `row` (position in the test split, as in predictions.csv), `label`, `unit`
    (only where rows come in units), the sensitive columns, `direction` ("0->1": the variant flags
    an example the reference did not; "1->0": the reverse), `effect` ("now wrong" / "now right"
    against the label), `score:reference`, `score:variant`, `threshold:reference`,
    `threshold:variant`, `margin:reference` and `margin:variant` (score - own threshold; a flip with
    both margins near 0 sat on the line), and `example` (the raw example as text, where given).
    Sorted by variant, then by how far the reference was from its threshold (closest first).
    """
    labels = np.asarray(labels).astype(np.int64)
    if examples is not None and len(examples) != labels.size:
        raise ValueError(f"examples has {len(examples)} entries but labels has {labels.size}")
    base = predictions[reference]
    frames = []
    for variant in _variant_order(predictions):
        if variant == reference:
            continue
        other = predictions[variant]
        rows = np.flatnonzero(flipped(base, other))
        frame = pd.DataFrame({"variant": variant, "row": rows, "label": labels[rows]})
        if clusters is not None:
            frame["unit"] = np.asarray(clusters).astype(str)[rows]
        for column in groups.columns:
            frame[str(column)] = groups[column].astype(str).to_numpy()[rows]
        reference_scores = np.asarray(base.scores, dtype=np.float64)[rows]
        variant_scores = np.asarray(other.scores, dtype=np.float64)[rows]
        now = other.decisions[rows]
        frame["direction"] = np.where(now == 1, "0->1", "1->0")
        frame["effect"] = np.where(now == labels[rows], "now right", "now wrong")
        frame["score:reference"] = reference_scores
        frame["score:variant"] = variant_scores
        frame["threshold:reference"] = float(base.threshold)
        frame["threshold:variant"] = float(other.threshold)
        frame["margin:reference"] = reference_scores - float(base.threshold)
        frame["margin:variant"] = variant_scores - float(other.threshold)
        if examples is not None:
            frame["example"] = [examples[row] for row in rows]
        frames.append(frame.iloc[np.argsort(np.abs(frame["margin:reference"].to_numpy()), kind="stable")])
    if frames:
        return pd.concat(frames, ignore_index=True)
    columns = [*LEDGER_COLUMNS[:3], *(["unit"] if clusters is not None else []), *map(str, groups.columns),
               "direction", "effect", "score:reference", "score:variant", "threshold:reference",
               "threshold:variant", "margin:reference", "margin:variant", *(["example"] if examples is not None else [])]
    return pd.DataFrame(columns=columns)


def flip_rates(*, labels: np.ndarray, groups: pd.DataFrame, predictions: dict[str, Predictions],
               reference: str = FLOAT_MODEL, clusters: np.ndarray | None = None, bootstrap_samples: int = 200,
               seed: int = 0, min_group_size: int = 20) -> dict:
    """Per variant: its flips overall and per group of every partition, each rate with a 95 % interval.

    Returns a JSON-able dict::

        {"reference": ..., "variants": {variant: {
            "overall": {"flips", "rows", "rate": {"value", "interval"}, "gained", "lost",
                        "now_wrong", "now_right", "median_abs_reference_margin"},
            "by_group": {column: {group: {"flips", "rows", "rate", "measurable", "reason"}}},
            "highest": {column: the measurable group with the highest flip rate, None if none flipped}}},
         "settings": {...}}

    The resamples of a group are the audit's (same seed, column and group), so a flip rate and the
    group's other rates in audit.json come from the same bootstrap.
    """
    labels = np.asarray(labels).astype(np.int64)
    if clusters is not None:
        clusters = np.asarray(clusters).astype(str)
    partitions = _partitions(groups, min_group_size)
    base = predictions[reference]
    variants = [v for v in _variant_order(predictions) if v != reference]
    indicators = np.column_stack([flipped(base, predictions[v]) for v in variants]).astype(np.float64) \
        if variants else np.empty((labels.size, 0))

    def rates(rows: np.ndarray, column: str, group: str) -> tuple[np.ndarray, list[dict]]:
        counts = _bootstrap_weights(rows.size, bootstrap_samples, seed=seed, column=column, group=group,
                                    clusters=None if clusters is None else clusters[rows])
        replicates = _divide(counts @ indicators[rows], counts.sum(axis=1, keepdims=True))
        flips = indicators[rows].sum(axis=0)
        return flips, [_rate_estimate(flips[v] / rows.size if rows.size else np.nan, replicates[:, v], rows.size)
                       for v in range(len(variants))]

    every_row = np.arange(labels.size)
    overall_flips, overall_rates = rates(every_row, ALL_ROWS, ALL_ROWS)
    result = {}
    for v_index, variant in enumerate(variants):
        mask = indicators[:, v_index].astype(bool)
        now = predictions[variant].decisions
        margins = np.abs(np.asarray(base.scores, dtype=np.float64)[mask] - float(base.threshold))
        result[variant] = {"overall": {
            "flips": int(overall_flips[v_index]), "rows": int(labels.size), "rate": overall_rates[v_index],
            "gained": int(np.sum(mask & (now == 1))), "lost": int(np.sum(mask & (now == 0))),
            "now_wrong": int(np.sum(mask & (now != labels))), "now_right": int(np.sum(mask & (now == labels))),
            "median_abs_reference_margin": float(np.median(margins)) if margins.size else None,
        }, "by_group": {}, "highest": {}}
    for partition in partitions:
        cells: dict[str, dict] = {variant: {} for variant in variants}
        for group in partition.groups:
            rows = partition.rows[group]
            flips, estimates = rates(rows, partition.name, group)
            for v_index, variant in enumerate(variants):
                measurable = group not in partition.unmeasurable
                cells[variant][group] = {"flips": int(flips[v_index]), "rows": int(rows.size),
                                         "rate": estimates[v_index], "measurable": measurable,
                                         "reason": partition.unmeasurable.get(group)}
        for variant in variants:
            result[variant]["by_group"][partition.name] = cells[variant]
            measured = {g: c["rate"]["value"] for g, c in cells[variant].items()
                        if c["measurable"] and c["rate"]["value"] is not None}
            highest = max(measured, key=measured.get) if measured else None
            result[variant]["highest"][partition.name] = highest if highest and measured[highest] > 0 else None
    return _json_safe({
        "reference": reference,
        "variants": result,
        "settings": {"bootstrap_samples": int(bootstrap_samples), "seed": int(seed),
                     "min_group_size": int(min_group_size), "columns": [p.name for p in partitions],
                     "interval": ("the audit's group-rate interval: stratified bootstrap percentile (whole units "
                                  "where rows come in units) widened to Wilson's score interval")},
    })


def example_texts(raw) -> list[str] | None:
    """Each test example as one line of text for the ledger, or None where it has no text form.

    A table's row becomes compact JSON of its raw columns (what the user's file held); a text stays
    itself. Images and sensor windows have none: the ledger gives their row (and unit), and the
    report draws the flipped images.
    """
    if isinstance(raw, pd.DataFrame):
        return [json.dumps({str(k): _plain(v) for k, v in record.items()}, ensure_ascii=False)
                for record in raw.to_dict(orient="records")]
    if isinstance(raw, (list, tuple)) or (isinstance(raw, np.ndarray) and raw.ndim == 1):
        return [str(text) for text in raw]
    return None


def _plain(value):
    """A raw cell as a JSON scalar (NaN and missing values as null)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


def flip_rate_figure(rates: dict, column: str):
    """Per group of one column, every variant's flip rate with its 95 % interval (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    variants = list(rates["variants"])
    groups = list(rates["variants"][variants[0]]["by_group"][column]) if variants else []
    figure = Figure(figsize=(min(max(6.5, 0.5 * len(groups) * max(len(variants), 1) + 2.5), 22.0), 4.2),
                    layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(groups))
    bar = 0.8 / max(len(variants), 1)
    top = 0.0
    for i, variant in enumerate(variants):
        cells = rates["variants"][variant]["by_group"][column]
        values = np.array([cells[g]["rate"]["value"] if cells[g]["rate"]["value"] is not None else np.nan
                           for g in groups], dtype=float)
        low = np.array([(cells[g]["rate"]["interval"] or [v, v])[0] for g, v in zip(groups, values)], dtype=float)
        high = np.array([(cells[g]["rate"]["interval"] or [v, v])[1] for g, v in zip(groups, values)], dtype=float)
        errors = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
        top = max(top, float(np.nanmax(high)) if np.isfinite(high).any() else 0.0)
        ax.bar(x + (i - (len(variants) - 1) / 2) * bar, np.nan_to_num(values), bar, yerr=np.nan_to_num(errors),
               capsize=3, label=variant, color=f"C{i + 1}", alpha=0.85)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                       fontsize=8)
    ax.set_ylabel("share of the group's decisions flipped")
    ax.set_ylim(0, max(top * 1.15, 0.02))
    ax.grid(axis="y", alpha=0.3)
    if variants:
        ax.legend(title="variant", fontsize=8)
    ax.set_title(f"{column}: decisions each variant flipped against {rates['reference']} (bars: 95 % interval)",
                 fontsize=10)
    return figure


def flipped_images_figure(images: np.ndarray, ledger: pd.DataFrame, variant: str, *, limit: int = 12):
    """The flipped test images of one variant, closest to the float model's threshold first, or None if none."""
    from matplotlib.figure import Figure

    rows = ledger[ledger["variant"] == variant].head(limit)
    if rows.empty:
        return None
    columns = min(len(rows), 6)
    lines = int(np.ceil(len(rows) / columns))
    figure = Figure(figsize=(1.9 * columns, 2.2 * lines + 0.5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(lines, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (_, row) in zip(axes, rows.iterrows()):
        image = np.asarray(images[int(row["row"])], dtype=np.float64)
        image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        span = image.max() - image.min()
        ax.imshow((image - image.min()) / span if span > 0 else image * 0, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(f"row {int(row['row'])}, label {int(row['label'])}\n"
                     f"{row['score:reference']:.2f} -> {row['score:variant']:.2f} ({row['effect']})", fontsize=7)
    figure.suptitle(f"Test images whose decision {variant} flipped against the float model "
                    f"(closest to its threshold first; {len(ledger[ledger['variant'] == variant])} in all)", fontsize=9)
    return figure
