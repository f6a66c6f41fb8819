"""The audit's estimates: a value with its 95 % interval, each interval built for its statistic.

* a group's rate: the bootstrap percentile interval widened to Wilson's score interval;
* a gap between groups (and the demographic-parity ratio): the percentile interval shifted by
  the bootstrap's estimate of its bias;
* a group's rate change under compression: change ± 1.96 errors (paired bootstrap or
  Agresti-Min, the larger);
* ROC-AUC, its change, and changes of gaps: paired percentile intervals.

Every function takes point values and bootstrap replicates (numpy) and returns a JSON-able dict.
"""

from __future__ import annotations

import warnings

import numpy as np

from pipeline.metrics import finite_or_none
from pipeline.stages.audit.bootstrap import _divide

# Quantiles of the bootstrap distribution reported as the 95 % interval.
CI_QUANTILES = (0.025, 0.975)


def _interval(replicates: np.ndarray) -> list[float] | None:
    """[2.5 %, 97.5 %] quantiles over the replicates where the value is defined."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None
    low, high = np.quantile(finite, CI_QUANTILES)
    return [float(low), float(high)]


def _gap(values: np.ndarray) -> np.ndarray:
    """max - min over groups (axis 0), ignoring undefined groups; NaN if < 2 defined."""
    defined = np.isfinite(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gap = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
    return np.where(defined.sum(axis=0) >= 2, gap, np.nan)


def _bias_corrected(value, replicates: np.ndarray | None) -> dict:
    """A gap's estimate with the bootstrap percentile interval shifted by the bootstrap's bias.

    The bias is mean(replicates) - value (Efron & Tibshirani, ch. 10): for max - min gaps it is
    positive, and the plain percentile interval can miss its own point value. The shifted
    interval is clipped at 0 (a gap is never negative) and stretched, if needed, to hold the
    point value, which a mean inside the central 95 % of the replicates already ensures.
    """
    finite = np.asarray([]) if replicates is None else replicates[np.isfinite(replicates)]
    value = finite_or_none(value)
    if value is None or finite.size == 0:
        return {"value": value, "interval": None}
    bias = float(finite.mean()) - value
    low, high = (float(q) - bias for q in np.quantile(finite, CI_QUANTILES))
    return {"value": value, "interval": [max(0.0, min(low, value)), max(high, value)]}


def _estimate(value, replicates: np.ndarray | None) -> dict:
    """A value with the plain percentile interval of its replicates (None without replicates)."""
    return {"value": finite_or_none(value),
            "interval": None if replicates is None else _interval(replicates)}


def _wilson(successes: float, trials: float) -> list[float] | None:
    """Wilson's score 95 % interval of a proportion (None without trials)."""
    if not trials > 0:
        return None
    z = 1.959964
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def _rate_estimate(value, replicates: np.ndarray, trials: float) -> dict:
    """A group's rate: the bootstrap percentile interval, widened to hold Wilson's score interval.

    The bootstrap sees correlated rows (whole units are resampled) but cannot see beyond a
    small group's own outcomes: at 9 of 9 every replicate is 1. Wilson's interval is right
    for independent rows at any size. The union keeps each one's strength (coverage measured
    in benchmarks/interval_coverage.py).
    """
    estimate = _estimate(value, replicates)
    wilson = _wilson(float(value) * trials, trials) if estimate["value"] is not None else None
    if estimate["interval"] is not None and wilson is not None:
        estimate["interval"] = [min(estimate["interval"][0], wilson[0]), max(estimate["interval"][1], wilson[1])]
    return estimate


def _paired_rate_change(reference, variant, replicate_differences: np.ndarray, gained: int, lost: int,
                        trials: int) -> dict:
    """A rate's change between two variants on the same rows, e.g. a group's TPR under compression.

    Only the rows whose decision flipped move it: `gained` (0 -> 1) and `lost` (1 -> 0) among
    `trials` rows. With few flips a percentile interval of the bootstrap is too narrow (a
    handful of discrete values), so the interval is change ± 1.96 standard errors, the error
    being the bootstrap's (which sees correlated units) or Agresti-Min's for paired
    proportions (half a flip added to each cell), whichever is larger.
    """
    result = _change(reference, variant, replicate_differences)
    if result["change"] is None or trials <= 0:
        return result
    n = trials + 2.0
    b, c = gained + 0.5, lost + 0.5
    agresti_min = np.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    finite = replicate_differences[np.isfinite(replicate_differences)]
    error = max(float(np.std(finite)) if finite.size > 1 else 0.0, float(agresti_min))
    low, high = max(-1.0, result["change"] - 1.959964 * error), min(1.0, result["change"] + 1.959964 * error)
    result["interval"] = [low, high]
    result["flagged"] = bool(low > 0 or high < 0)
    return result


def _change(reference, variant, replicate_differences: np.ndarray) -> dict:
    """Variant - reference with a paired interval; flagged where the interval excludes 0."""
    reference, variant = finite_or_none(reference), finite_or_none(variant)
    change = None if reference is None or variant is None else variant - reference
    interval = _interval(replicate_differences) if change is not None else None
    flagged = interval is not None and (interval[0] > 0 or interval[1] < 0)
    return {"reference": reference, "variant": variant, "change": change,
            "interval": interval, "flagged": bool(flagged)}


def _ratio_of_extremes(values: np.ndarray) -> np.ndarray:
    """min / max over groups (axis 0), as Fairlearn's demographic-parity ratio."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _divide(np.nanmin(values, axis=0), np.nanmax(values, axis=0))


def _ratio_estimate(value, replicates: np.ndarray | None) -> dict:
    """The demographic-parity ratio (min / max, biased downwards): the bias-corrected interval, within [0, 1]."""
    estimate = _bias_corrected(None if value is None else 1.0 - value,
                               None if replicates is None else 1.0 - replicates)
    if estimate["value"] is None or estimate["interval"] is None:
        return {"value": finite_or_none(value), "interval": None}
    low, high = estimate["interval"]
    return {"value": finite_or_none(value), "interval": [max(0.0, 1.0 - high), min(1.0, 1.0 - low)]}
