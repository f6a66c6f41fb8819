"""Sensor windows: operating regimes, the windows of the last W cycles, and their spec.

`build_windows` cuts every unit's history into windows; `fit_window_preprocessing` fits
the regimes and per-regime sensor statistics on the training units (format
"edgeaudit.windows.v1"); `encode_windows` applies only that spec. See "Operating regimes
and standardisation" and "Windows and labels" in `pipeline.data.sensor_histories`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.data.sensor_read import CYCLE, UNIT, HistoryTable
from pipeline.data.splitting import quote_list
from pipeline.errors import InputError

FORMAT = "edgeaudit.windows.v1"
REGIME_GAP_SHARE = 0.05
REGIME_GAP_MEDIANS = 10.0
REGIME_MIN_SHARE = 0.01
MAX_REGIMES = 12
STD_FLOOR = 1e-6

HOW_TO_USE = (
    "Collect one unit's readings of its last `window` cycles, oldest first. For each cycle pick the operating "
    "regime whose `center` is nearest to the cycle's operating settings (the values of the columns in "
    "`settings`, each divided by the matching `settings_scale`, Euclidean distance; with one regime, always "
    "that one). For each sensor in `sensors`, in that order, write (reading - regime.mean[j]) / regime.std[j]. "
    "The model's only input is float32 of shape [1, window, len(sensors)] (cycles x sensors); its output is "
    "the probability that the unit fails within `horizon` cycles after the window's last cycle. A missing "
    "reading: repeat the unit's previous reading. Sensors in `dropped_sensors` are not model inputs."
)


@dataclass(frozen=True)
class SensorWindows:
    """Raw windows: what `encode_windows` takes (the `raw` of a windows `Split`).

    values:         float32 (n, W, C) raw readings, oldest cycle first.
    channels:       the C column names of the last axis (settings and sensors).
    units:          (n,) the unit of each window (text).
    end_cycles:     (n,) the cycle number of each window's last row.
    remaining_life: (n,) cycles from the window's last cycle to the failure.
    """

    values: np.ndarray
    channels: tuple[str, ...]
    units: np.ndarray
    end_cycles: np.ndarray
    remaining_life: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> "SensorWindows":
        return SensorWindows(self.values[index], self.channels, self.units[index], self.end_cycles[index],
                             self.remaining_life[index])


def _short_number(value: float) -> str:
    return f"{0.0 if abs(value) < 5e-4 else value:.3g}"


# --------------------------------------------------------------------------- regimes


def _setting_levels(values: np.ndarray) -> np.ndarray:
    """Cut points between the levels of one setting (see the module docstring)."""
    distinct = np.unique(values)
    if distinct.size < 2:
        return np.zeros(0)
    gaps = np.diff(distinct)
    span = distinct[-1] - distinct[0]
    cut = gaps > REGIME_GAP_SHARE * span
    if distinct.size > 20:
        cut &= gaps > REGIME_GAP_MEDIANS * np.median(gaps)
    return (distinct[:-1][cut] + distinct[1:][cut]) / 2.0


def fit_regimes(settings: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Operating regimes of settings rows [n, k] -> (centres [r, k], scale [k], notes)."""
    settings = np.asarray(settings, dtype=np.float64)
    n, k = settings.shape
    if k == 0 or n == 0:
        return np.zeros((1, k)), np.ones(k), ["no operating settings: one regime"]
    span = settings.max(axis=0) - settings.min(axis=0)
    scale = np.where(span > 0, span, 1.0)
    codes = np.zeros((n, k), dtype=np.int64)
    for j in range(k):
        codes[:, j] = np.searchsorted(_setting_levels(settings[:, j]), settings[:, j])
    keys, labels, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    labels = labels.reshape(-1)
    centres = np.stack([settings[labels == r].mean(axis=0) for r in range(len(keys))])
    big = counts >= REGIME_MIN_SHARE * n
    notes = []
    if not big.all():
        notes.append(f"{int((~big).sum())} small clusters of operating settings (under {REGIME_MIN_SHARE:.0%} of "
                     f"the rows) joined the nearest regime")
        centres = centres[big]
        labels = _nearest(settings / scale, centres / scale)
        centres = np.stack([settings[labels == r].mean(axis=0) for r in range(len(centres))])
    if len(centres) > MAX_REGIMES:
        notes.append(f"the operating settings form {len(centres)} clusters, more than {MAX_REGIMES}: sensors are "
                     f"standardised over all cycles as one regime")
        return settings.mean(axis=0, keepdims=True), scale, notes
    labels = _nearest(settings / scale, centres / scale)
    sizes = np.bincount(labels, minlength=len(centres))
    centres = centres[np.argsort(-sizes, kind="stable")]
    return centres, scale, notes


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    if len(centres) == 1 or points.shape[-1] == 0:
        return np.zeros(points.shape[:-1], dtype=np.int64)
    distance = ((points[..., None, :] - centres) ** 2).sum(axis=-1)
    return np.argmin(distance, axis=-1)


def assign_regimes(spec: dict, settings: np.ndarray) -> np.ndarray:
    """Regime index of every cycle: settings [..., k] -> int [...] (nearest centre)."""
    centres = np.asarray([r["center"] for r in spec["regimes"]], dtype=np.float64)
    scale = np.asarray(spec["settings_scale"], dtype=np.float64)
    return _nearest(np.asarray(settings, dtype=np.float64) / scale, centres / scale) if scale.size else \
        np.zeros(np.asarray(settings).shape[:-1], dtype=np.int64)


# --------------------------------------------------------------------------- windows


def build_windows(table: HistoryTable, window: int, *, final_remaining_life: dict[str, int] | None = None
                  ) -> tuple[SensorWindows, pd.DataFrame, list[str]]:
    """Every window of `window` consecutive rows of every unit long enough.

    Returns (windows, their groups: one text column per group column and 'regime_cluster'
    is not included, notes). final_remaining_life: unit -> cycles left after its last row
    (test files); default 0 (run to failure).
    """
    frame = table.frame
    channels = (*table.settings, *table.sensors)
    values = frame[list(channels)].to_numpy(dtype=np.float32)
    units = frame[UNIT].to_numpy()
    cycles = frame[CYCLE].to_numpy()
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    ends = np.r_[starts[1:], len(frame)]
    pieces, unit_ids, end_cycles, remaining, group_rows = [], [], [], [], []
    short = []
    for start, end in zip(starts, ends):
        length = end - start
        if length < window:
            short.append((units[start], int(length)))
            continue
        block = np.lib.stride_tricks.sliding_window_view(values[start:end], (window, len(channels)))[:, 0]
        pieces.append(block)
        last = np.arange(start + window - 1, end)
        offset = 0 if final_remaining_life is None else int(final_remaining_life[units[start]])
        unit_ids.append(np.full(last.size, units[start], dtype=object))
        end_cycles.append(cycles[last])
        remaining.append(cycles[end - 1] - cycles[last] + offset)
        group_rows.append(last)
    notes = []
    if short:
        shown = ", ".join(f"unit {u} ({n} cycles)" for u, n in short[:5])
        notes.append(f"skipped {len(short)} unit(s) with fewer than {window} cycles, the window length: {shown}"
                     + (", ..." if len(short) > 5 else ""))
    if not pieces:
        longest = max(n for _, n in short)
        raise InputError(f"no unit has at least {window} cycles, the window length (the longest has {longest})",
                         fix=f"pass --window {longest} or less, or use longer histories", source=table.source)
    rows = np.concatenate(group_rows)
    windows = SensorWindows(values=np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32),
                            channels=tuple(channels), units=np.concatenate(unit_ids).astype(str),
                            end_cycles=np.concatenate(end_cycles).astype(np.int64),
                            remaining_life=np.concatenate(remaining).astype(np.int64))
    groups = frame.loc[rows, list(table.groups)].reset_index(drop=True).astype(str)
    return windows, groups, notes


# --------------------------------------------------------------------------- preprocessing


def fit_window_preprocessing(train: HistoryTable, *, window: int, horizon: int) -> tuple[dict, list[str]]:
    """Regimes and per-regime sensor statistics from the training units' rows."""
    frame = train.frame
    settings = frame[list(train.settings)].to_numpy(dtype=np.float64)
    centres, scale, notes = fit_regimes(settings)
    spec_regimes = {"regimes": [{"center": c.tolist()} for c in centres], "settings_scale": scale.tolist()}
    which = assign_regimes(spec_regimes, settings)
    sensors = list(train.sensors)
    readings = frame[sensors].to_numpy(dtype=np.float64)
    means = np.stack([readings[which == r].mean(axis=0) for r in range(len(centres))])
    stds = np.stack([readings[which == r].std(axis=0) for r in range(len(centres))])
    constant_everywhere = np.ptp(readings, axis=0) <= STD_FLOOR * np.maximum(1.0, np.abs(readings).max(axis=0))
    constant_within = (stds <= STD_FLOOR * np.maximum(1.0, np.abs(means))).all(axis=0)
    dropped = {}
    for j, name in enumerate(sensors):
        if constant_everywhere[j]:
            dropped[name] = f"constant ({readings[0, j]:g} in every training row)"
        elif constant_within[j]:
            dropped[name] = "constant within every operating regime: it only tells the regimes apart"
    kept = [j for j, name in enumerate(sensors) if name not in dropped]
    if not kept:
        raise InputError("every sensor is constant (within each operating regime) in the training units",
                         fix="use histories whose sensors change over the units' lives", source=train.source)
    if dropped:
        notes.append(f"dropped {len(dropped)} sensors that carry no information: "
                     + "; ".join(f"{n}: {why}" for n, why in dropped.items()))
    regimes = []
    for r, centre in enumerate(centres):
        std = np.where(stds[r, kept] > STD_FLOOR * np.maximum(1.0, np.abs(means[r, kept])), stds[r, kept], 1.0)
        regimes.append({"name": f"R{r + 1}", "center": [float(v) for v in centre],
                        "train_rows": int((which == r).sum()),
                        "mean": [float(v) for v in means[r, kept]], "std": [float(v) for v in std]})
    if len(regimes) > 1:
        described = [f"{r['name']}: " + ", ".join(f"{name}≈{_short_number(value)}"
                                                  for name, value in zip(train.settings, r["center"]))
                     + f", {r['train_rows']} training rows" for r in regimes]
        notes.append(f"{len(regimes)} operating regimes found in the settings (" + "; ".join(described)
                     + "); every sensor is standardised with its regime's train mean and SD")
    else:
        notes.append("one operating regime: every sensor is standardised with its train mean and SD")
    if train.settings:
        notes.append(f"operating settings {quote_list(train.settings, 8)} choose the regime; they are not model inputs")
    kept_names = [sensors[j] for j in kept]
    spec = {
        "format": FORMAT,
        "input_dtype": "float32",
        "window": int(window),
        "horizon": int(horizon),
        "input_shape": [int(window), len(kept_names)],
        "sensors": kept_names,
        "settings": list(train.settings),
        "settings_scale": [float(v) for v in scale],
        "regimes": regimes,
        "dropped_sensors": dropped,
        "label": {"definition": f"1 when the unit fails within {horizon} cycles after the window's last cycle "
                                f"(remaining life <= {horizon})", "positive_class": f"failure within {horizon} cycles"},
        "how_to_use": HOW_TO_USE,
    }
    json.dumps(spec)
    return spec, notes


def encode_windows(spec: dict, windows: SensorWindows | np.ndarray) -> np.ndarray:
    """Raw windows -> float32 (n, W, S) model inputs, using only the spec.

    `windows`: a SensorWindows (channels found by name), or an array (n, W, C) whose C
    channels are the spec's settings followed by its sensors, in that order.
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise InputError(f"the preprocessing spec has format {found!r}, expected {FORMAT!r}",
                         fix="use the preprocessing.json written beside the model by the same EdgeAudit run")
    settings, sensors = list(spec["settings"]), list(spec["sensors"])
    if isinstance(windows, SensorWindows):
        absent = [c for c in settings + sensors if c not in windows.channels]
        if absent:
            raise InputError(f"the windows to encode lack sensor/setting column(s) {quote_list(absent, 8)}",
                             fix=f"supply every column the model was trained on: {quote_list(settings + sensors, 40)}")
        position = {c: i for i, c in enumerate(windows.channels)}
        values = windows.values
        setting_values = values[..., [position[c] for c in settings]]
        sensor_values = values[..., [position[c] for c in sensors]]
    else:
        values = np.asarray(windows, dtype=np.float32)
        expected = len(settings) + len(sensors)
        if values.ndim != 3 or values.shape[2] != expected:
            raise InputError(f"windows of shape {values.shape}, expected (n, window, {expected}): the settings "
                             f"{settings} then the sensors {sensors}",
                             fix="pass a SensorWindows, or an array with those channels in that order")
        setting_values, sensor_values = values[..., :len(settings)], values[..., len(settings):]
    if values.shape[1] != spec["window"]:
        raise InputError(f"windows of {values.shape[1]} cycles, the model takes {spec['window']}",
                         fix=f"give the model the last {spec['window']} cycles of a unit")
    which = assign_regimes(spec, setting_values)
    means = np.asarray([r["mean"] for r in spec["regimes"]], dtype=np.float32)
    stds = np.asarray([r["std"] for r in spec["regimes"]], dtype=np.float32)
    out = (sensor_values.astype(np.float32) - means[which]) / stds[which]
    if not np.isfinite(out).all():
        raise InputError("some readings are not finite numbers (NaN or infinite)",
                         fix="fill missing readings with the unit's previous reading before encoding")
    return np.ascontiguousarray(out, dtype=np.float32)


def window_feature_names(sensors: Sequence[str], window: int) -> tuple[list[str], dict[str, list[int]]]:
    """Names of the flattened (W, S) inputs (C order) and each sensor's indices."""
    names = [f"{sensor} @ t-{window - 1 - t}" for t in range(window) for sensor in sensors]
    groups = {sensor: [t * len(sensors) + j for t in range(window)] for j, sensor in enumerate(sensors)}
    return names, groups
