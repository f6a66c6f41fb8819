"""The maintenance domain: will a machine fail soon? Audited by machine make, operating regime, product type.

One domain, the two shapes of data users have:

* Run-to-failure histories (the default): one row per unit and cycle with operating
  settings and sensor readings. They become windows of the last W cycles (`--window`,
  default 30) labelled "fails within N cycles" (`--horizon`, default 30), standardised per
  sensor and operating regime with train statistics, and go to a Functional 1D-CNN
  (`architecture="cnn"`; a GRU, `MaintenanceDomain(architecture="gru")`, is offered too:
  its tf_keras twin gets a fixed batch of 1, which LiteRT needs to convert a recurrent
  layer, and is unrolled over the window, because the GRU's WHILE loop crashed the int8
  converter; tfmot QAT skips the GRU layer, recorded. Measured on 30 x 14 windows: the
  unrolled int8 file is 173 KB against 109 KB for float32, so the CNN, 16 KB in int8, is
  the default). Units never straddle splits. Groups: "make" and "regime". See
  `pipeline.data.sensor_histories`.
    - default: 240 generated units (`pipeline.data.maintenance_generator.generate_histories`,
      fixed seed DATA_SEED; the run seed drives split and training);
    - `--data train_FD001.txt`: a NASA C-MAPSS text file (space-separated, no header);
    - `--data folder/`: a folder with train_X.txt + test_X.txt + RUL_X.txt (C-MAPSS): the
      test file's units, with their true remaining life, are the test split;
    - `--data histories.csv`: a CSV with unit and cycle columns (text columns are groups).
* Per-reading tables (AI4I 2020 layout, or any CSV without unit/cycle columns): one row per
  process, through the generic tabular loader and the fraud domain's MLP. Label default
  "Machine failure", group default "Type". The failure-mode columns TWF, HDF, PWF, OSF,
  RNF (and "Machine failure" when another label is chosen) are dropped: they spell out the
  label. The group columns are product / machine properties the failure rules depend on
  (AI4I's overstrain limit depends on the type), so they are also model features (noted).
  The project's own AI4I-rule readings: `python -m pipeline.data.maintenance_generator
  readings readings.csv`, then `--data readings.csv` (or `generate_ai4i_readings()` in Python).

Quality adds two maintenance metrics to the generic ones: the miss rate (share of failing
windows / readings not flagged; missed failures are the costly error) and false alarms per
1,000 cycles (each window or reading is one cycle of operation). An extra analysis
("missed_failures_by_group") puts the miss rate by group, with intervals, for every model
in the model card. Explanations of windows are SHAP values per (sensor, time block) cell,
drawn as heatmaps (`pipeline.explainers.window`); readings use the tabular explainer.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data import sensor_histories as histories
from pipeline.data.maintenance_generator import AI4I_FAILURE_MODES, AI4I_GROUP, AI4I_LABEL, generate_histories
from pipeline.data.tabular import FORMAT as TABULAR_FORMAT
from pipeline.data.tabular import encode_tabular, load_tabular, read_csv_file
from pipeline.data.tabular_columns import drop_named_columns
from pipeline.domain import DataSource, Domain, DomainData
from pipeline.domains.tabular import DROPOUT_RATE, HIDDEN_UNITS, build_mlp
from pipeline.errors import InputError
from pipeline.explainers.tabular import TabularExplainer
from pipeline.explainers.window import WindowExplainer
from pipeline.options import DomainOption
from pipeline.search_step import ENSEMBLE_MEMBERS_OPTION, SEARCH_TRIALS_OPTION

DATA_SEED = 0
DEFAULT_UNITS = 240
ARCHITECTURES = ("cnn", "gru")
CNN_FILTERS = 32
CNN_KERNEL_SIZE = 5
GRU_UNITS = 32
DENSE_UNITS = 32
WINDOW_DROPOUT_RATE = 0.2


# The physical quantities the published AI4I failure rules are stated in (Matzka 2020):
# heat dissipation fails on a small temperature difference, power failure on the power,
# overstrain on tool wear x torque. Added as inputs when the AI4I columns are present.
AI4I_DERIVED = [
    {"name": "Temperature difference [K]", "formula": "Process temperature [K] - Air temperature [K]",
     "inputs": ["Process temperature [K]", "Air temperature [K]"], "operation": "difference", "factor": 1.0},
    {"name": "Power [W]", "formula": "Torque [Nm] * Rotational speed [rpm] * 2 * pi / 60",
     "inputs": ["Torque [Nm]", "Rotational speed [rpm]"], "operation": "product", "factor": 2.0 * math.pi / 60.0},
    {"name": "Strain [min Nm]", "formula": "Tool wear [min] * Torque [Nm]",
     "inputs": ["Tool wear [min]", "Torque [Nm]"], "operation": "product", "factor": 1.0},
]
AI4I_IDENTIFIERS = ("UDI", "Product ID")
DERIVED_HOW_TO_USE = (
    "First add the columns listed in 'derived_columns' to the raw row: 'difference' is inputs[0] - inputs[1], "
    "'product' is inputs[0] * inputs[1], each times 'factor' (missing when an input is missing or not a number)."
)


def with_derived_columns(derived: Sequence[dict], rows: Any) -> pd.DataFrame:
    """Raw rows (DataFrame, a mapping or a list of mappings) plus the derived columns of the spec."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(
        [dict(rows)] if isinstance(rows, Mapping) else list(rows))
    for column in derived:
        absent = [c for c in column["inputs"] if c not in frame.columns]
        if absent:
            raise InputError(f"the rows to encode lack column(s) {', '.join(map(repr, absent))}, needed for "
                             f"{column['name']!r}", fix="supply every column the model was trained on")
        first, second = (pd.to_numeric(frame[c], errors="coerce").astype(float) for c in column["inputs"])
        value = first - second if column["operation"] == "difference" else first * second
        frame[column["name"]] = value * float(column["factor"])
    return frame


# --------------------------------------------------------------------------- models


def build_window_cnn(keras: Any, input_shape: Sequence[int], *, filters: int = CNN_FILTERS,
                     kernel_size: int = CNN_KERNEL_SIZE, dense_units: int = DENSE_UNITS,
                     dropout_rate: float = WINDOW_DROPOUT_RATE, batch_size: int | None = None) -> Any:
    """Input (W, S) -> Conv1D x 2 (relu, 'same') -> global average over time -> Dense(relu) -> Dense(1, sigmoid)."""
    window, sensors = (int(d) for d in input_shape)
    inputs = keras.Input(shape=(window, sensors), batch_size=batch_size, name="window")
    x = keras.layers.Conv1D(int(filters), int(kernel_size), padding="same", activation="relu", name="conv_0")(inputs)
    x = keras.layers.Conv1D(int(filters), int(kernel_size), padding="same", activation="relu", name="conv_1")(x)
    x = keras.layers.GlobalAveragePooling1D(name="average_over_time")(x)
    x = keras.layers.Dense(int(dense_units), activation="relu", name="dense_0")(x)
    if dropout_rate:
        x = keras.layers.Dropout(float(dropout_rate), name="dropout_0")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="maintenance_cnn")


def build_window_gru(keras: Any, input_shape: Sequence[int], *, units: int = GRU_UNITS, unroll: bool = False,
                     dense_units: int = DENSE_UNITS, dropout_rate: float = WINDOW_DROPOUT_RATE,
                     batch_size: int | None = None) -> Any:
    """Input (W, S) -> GRU -> Dense(relu) -> Dense(1, sigmoid). Convert with batch_size=1 and unroll=True.

    unroll only changes how the layer is computed (no WHILE loop), not its weights.
    """
    window, sensors = (int(d) for d in input_shape)
    inputs = keras.Input(shape=(window, sensors), batch_size=batch_size, name="window")
    x = keras.layers.GRU(int(units), unroll=bool(unroll), name="gru_0")(inputs)
    x = keras.layers.Dense(int(dense_units), activation="relu", name="dense_0")(x)
    if dropout_rate:
        x = keras.layers.Dropout(float(dropout_rate), name="dropout_0")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="maintenance_gru")


def build_maintenance_model(keras: Any, input_shape: Any, *, architecture: str = "cnn", **options: Any) -> Any:
    """The domain's one builder (module-level, so it pickles): 'cnn' / 'gru' for windows, 'mlp' for readings.

    `keras` is Keras 3 or tf_keras; every layer with weights has an explicit name, the same in both.
    """
    if architecture == "cnn":
        return build_window_cnn(keras, input_shape, **options)
    if architecture == "gru":
        return build_window_gru(keras, input_shape, **options)
    if architecture == "mlp":
        if options.pop("batch_size", None) is not None:
            raise ValueError("the per-reading MLP converts with a free batch size; do not pass batch_size")
        return build_mlp(keras, input_shape, **options)
    raise ValueError(f"unknown architecture {architecture!r}; expected one of 'cnn', 'gru', 'mlp'")


# --------------------------------------------------------------------------- the domain


class MaintenanceDomain(Domain):
    name = "maintenance"
    title = "Predictive maintenance"
    description = ("Predict machine failures from sensor histories (windows of the last cycles, 1D-CNN) or "
                   "per-reading tables (AI4I 2020 layout, MLP); audited by machine make, operating regime and "
                   "product type, with the miss rate by group as the headline.")
    modality = "window"
    headline_metric = "pr_auc"
    default_label = "fails within --horizon cycles (histories); 'Machine failure' (readings)"
    default_sensitive = ("make", "regime")
    model_builder = staticmethod(build_maintenance_model)
    # The sensor CNN is small (8,416 weights in a 38.6 KB float32 file), so most of its int8 file is not
    # weights: at 75 % sparsity its pruned_int8 gzips to 0.154x float32, at 80 % to 0.141x, for a PR-AUC
    # drop against float of 0.003 and 0.002 (default data, seed 0, test split; measured 2026-11-28).
    target_sparsity = 0.8
    reads_tables = True  # per-reading tables (AI4I layout); sensor histories refuse --drop in load
    options = (
        DomainOption("window", type=int, default=30, minimum=2, metavar="CYCLES",
                     help="sensor histories: cycles per input window"),
        DomainOption("horizon", type=int, default=30, minimum=1, metavar="CYCLES",
                     help="sensor histories: a window is positive if the unit fails within this many cycles"),
        dataclasses.replace(SEARCH_TRIALS_OPTION, help="per-reading tables: " + SEARCH_TRIALS_OPTION.help),
        dataclasses.replace(ENSEMBLE_MEMBERS_OPTION, help="per-reading tables: " + ENSEMBLE_MEMBERS_OPTION.help),
    )

    def __init__(self, architecture: str = "cnn"):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {architecture!r}: expected one of {', '.join(ARCHITECTURES)}")
        self.architecture = architecture

    # ---- data ----------------------------------------------------------------------------
    def load(self, config) -> DomainData:
        given = [flag for flag, value in (("--positive-label", config.positive_label), ("--drop", config.drop_columns))
                 if value]
        if given and (config.data_path is None or histories.detect_layout(config.data_path) != "readings_csv"):
            raise InputError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to a per-reading table; "
                             "a sensor history's label is made "
                             "by the tool ('fails within --horizon cycles') from its own columns",
                             fix=f"leave out {' and '.join(given)}, or pass a per-reading CSV (such as AI4I 2020) "
                                 "with --data", source=str(config.data_path or "the default maintenance data"))
        if config.data_path is None:
            frame = generate_histories(DEFAULT_UNITS, DATA_SEED)
            table = histories.histories_from_frame(frame, source="the default maintenance data (generated)")
            data = histories.load_histories(
                table, window=config.option("window"), horizon=config.option("horizon"), sensitive_columns=config.sensitive_columns,
                seed=config.seed, max_rows=config.max_rows, min_group_size=config.min_group_size, kind="generated",
                description=f"generated run-to-failure histories of {DEFAULT_UNITS} units (3 makes, 3 operating "
                            f"regimes, seed {DATA_SEED}), {len(frame)} cycles")
            data = _with_notes(data, [f"default data: {DEFAULT_UNITS} run-to-failure histories generated with the "
                                      f"fixed seed {DATA_SEED} (the run seed {config.seed} drives the split)"])
        elif histories.detect_layout(config.data_path) == "readings_csv":
            data = self._load_readings(config)
        else:
            train, test, remaining = histories.read_history_path(config.data_path)
            data = histories.load_histories(
                train, test=test, test_remaining_life=remaining, window=config.option("window"), horizon=config.option("horizon"),
                sensitive_columns=config.sensitive_columns, seed=config.seed, max_rows=config.max_rows,
                min_group_size=config.min_group_size, kind="file", path=str(config.data_path))
        if data.preprocessing["format"] == histories.FORMAT and config.label_column:
            data = _with_notes(data, [f"--label {config.label_column!r} ignored: for histories the label is "
                                      f"'fails within --horizon ({config.option('horizon')}) cycles'"])
        return data

    def modality_of(self, data: DomainData) -> str:
        """The class says "window" (the default data); a per-reading table is tabular, and its manifest
        and model card say so."""
        return "window" if data.preprocessing["format"] == histories.FORMAT else "tabular"

    def _load_readings(self, config) -> DomainData:
        path = str(config.data_path)
        frame, fingerprint, read_notes = read_csv_file(path)
        columns = [str(c).strip() for c in frame.columns]
        frame.columns = columns
        notes = list(read_notes)
        if config.drop_columns:  # the user's --drop comes first: before the automatic drops and derived inputs
            frame = drop_named_columns(frame, config.drop_columns, path, notes)
            columns = list(frame.columns)
        label = config.label_column or (AI4I_LABEL if AI4I_LABEL in columns else None)
        sensitive = tuple(config.sensitive_columns) or ((AI4I_GROUP,) if AI4I_GROUP in columns else ())
        if label is None:
            raise InputError(f"a per-reading table without a {AI4I_LABEL!r} column and no --label",
                             fix="pass --label COLUMN naming the 0/1 failure column (or give the file unit and "
                                 "cycle columns to read it as run-to-failure histories)", source=path)
        identifiers = [c for c in AI4I_IDENTIFIERS if c in columns and c != label and c not in sensitive]
        if identifiers:
            frame = frame.drop(columns=identifiers)
            notes.append(f"dropped the identifier columns {', '.join(repr(c) for c in identifiers)} (AI4I's row "
                         f"number and product serial): they name a reading, they do not describe it")
        leaking = [c for c in (AI4I_LABEL, *AI4I_FAILURE_MODES) if c in columns and c != label]
        if leaking and label in (AI4I_LABEL, *AI4I_FAILURE_MODES):
            frame = frame.drop(columns=leaking)
            notes.append(f"dropped the failure columns {', '.join(repr(c) for c in leaking)}: they record the "
                         f"failure that {label!r} labels, so as features they would leak the label")
        derived = [d for d in AI4I_DERIVED if all(c in frame.columns for c in d["inputs"])
                   and d["name"] not in frame.columns]
        if derived and label in (AI4I_LABEL, *AI4I_FAILURE_MODES):
            frame = with_derived_columns(derived, frame)
            notes.append("added the physical quantities the AI4I failure rules are stated in, as model inputs "
                         "(recorded in the preprocessing spec, so a device computes them the same way): "
                         + "; ".join(f"{d['name']} = {d['formula']}" for d in derived))
        else:
            derived = []
        data = load_tabular(frame, label_column=label, sensitive_columns=sensitive, seed=config.seed,
                            min_group_size=config.min_group_size, max_rows=config.max_rows,
                            use_sensitive_as_features=True, positive_label=config.positive_label,
                            merge_small_groups=config.merge_small_groups,
                            positive_class="machine failure"
                            if label == AI4I_LABEL else None, kind="file", source_name=path,
                            description=f"{Path(path).name}: per-reading table, label {label!r}")
        if sensitive:
            notes.append(f"group columns {', '.join(repr(c) for c in sensitive)} describe the product or machine, "
                         f"not people, and the failure rules can depend on them (AI4I's overstrain limit depends "
                         f"on the product type): they are model features as well as audit groups")
        source = dataclasses.replace(data.source, path=path, fingerprint=fingerprint,
                                     notes=(*notes, *data.source.notes))
        preprocessing = data.preprocessing
        if derived:
            preprocessing = {**preprocessing, "derived_columns": derived,
                             "how_to_use": DERIVED_HOW_TO_USE + " " + preprocessing["how_to_use"]}
        return dataclasses.replace(data, source=source, preprocessing=preprocessing)

    def encode(self, preprocessing: dict, raw: Any) -> np.ndarray:
        if isinstance(preprocessing, dict) and preprocessing.get("format") == histories.FORMAT:
            return histories.encode_windows(preprocessing, raw)
        if isinstance(preprocessing, dict) and preprocessing.get("derived_columns"):
            raw = with_derived_columns(preprocessing["derived_columns"], raw)
        return encode_tabular(preprocessing, raw)

    # ---- model ---------------------------------------------------------------------------
    def model_options(self, data: DomainData, config) -> dict:
        if data.preprocessing["format"] == TABULAR_FORMAT:
            return {"architecture": "mlp", "hidden_units": HIDDEN_UNITS, "dropout_rate": DROPOUT_RATE}
        if self.architecture == "gru":
            return {"architecture": "gru", "units": GRU_UNITS, "dense_units": DENSE_UNITS,
                    "dropout_rate": WINDOW_DROPOUT_RATE}
        return {"architecture": "cnn", "filters": CNN_FILTERS, "kernel_size": CNN_KERNEL_SIZE,
                "dense_units": DENSE_UNITS, "dropout_rate": WINDOW_DROPOUT_RATE}

    def searches_model(self, data: DomainData) -> bool:
        """A per-reading table's MLP is searched (`--search-trials`); a window model is not."""
        return data.preprocessing["format"] == TABULAR_FORMAT

    def twin_model_options(self, data: DomainData) -> dict:
        # LiteRT converts a recurrent layer only with a fixed batch (STACK_NOTES.md); and the
        # GRU's WHILE loop crashed the int8 converter (SIGSEGV, measured here for int8, pruned,
        # QAT and PQAT alike), while the same GRU unrolled over the window converts to plain ops.
        if data.preprocessing["format"] == histories.FORMAT and self.architecture == "gru":
            return {"batch_size": 1, "unroll": True}
        return {}

    # ---- quality ---------------------------------------------------------------------------
    def quality(self, labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
        from pipeline.metrics import binary_quality

        quality = binary_quality(labels, scores, threshold)
        recall = quality["sensitivity"]
        quality["miss_rate"] = None if recall is None else 1.0 - recall
        rows = quality["rows"]
        quality["false_alarms_per_1000_cycles"] = 1000.0 * quality["confusion"]["fp"] / rows if rows else None
        return quality

    # ---- explanations ----------------------------------------------------------------------
    # Sensor histories: SHAP per (sensor, time block) cell of a window (pipeline/explainers/window.py),
    # the default data's; per-reading tables: the tabular explainer (explainer_for chooses by the data).
    explainer = WindowExplainer()

    def explainer_for(self, data: DomainData):
        return self.explainer if self.modality_of(data) == "window" else TabularExplainer()

    # ---- the headline: missed failures by group -------------------------------------------
    def extra_analyses(self, *, predict_functions: dict, thresholds: dict, preprocessing: dict, data: DomainData,
                       config) -> dict:
        return {"missed_failures_by_group": missed_failures_by_group(
            predict_functions=predict_functions, thresholds=thresholds,
            test_features=self.encode(preprocessing, data.test.raw), test_labels=data.test.labels,
            groups=data.test.groups, ship_variant=config.ship_variant, bootstrap_samples=config.bootstrap_samples,
            min_group_size=config.min_group_size, seed=config.seed, units=data.test.clusters)}

    def extra_figures(self, analyses: dict) -> dict:
        analysis = analyses.get("missed_failures_by_group")
        return {"miss_rate_by_group": miss_rate_figure(analysis)} if analysis and analysis.get("groups") else {}


# --------------------------------------------------------------------------- miss rate by group


def _interval(missed: np.ndarray, units: np.ndarray | None, samples: int,
              rng: np.random.Generator) -> list[float] | None:
    """Percentile bootstrap 95 % interval of a miss rate over a group's failing cases.

    missed: 1 where a failing case was not flagged. With `units` (the unit of each case),
    whole units are resampled, as the audit does: one machine's failing windows are not
    independent evidence.
    """
    from pipeline.stages.audit import bootstrap_counts

    if missed.size == 0:
        return None
    counts = bootstrap_counts(missed.size, samples, rng=rng, clusters=units)
    totals = counts.sum(axis=1)
    draws = (counts @ missed.astype(np.float64))[totals > 0] / totals[totals > 0]
    return [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))]


def missed_failures_by_group(*, predict_functions: dict, thresholds: dict, test_features: np.ndarray,
                             test_labels: np.ndarray, groups, ship_variant: str, bootstrap_samples: int,
                             min_group_size: int, seed: int, units: np.ndarray | None = None) -> dict:
    """Miss rate (false-negative rate) and false alarms per 1,000 cycles of every model in every group.

    Each model is judged at its own threshold (`thresholds`, the evaluation's), so the numbers
    match the audit's TPR (miss rate = 1 - TPR). With `units` (the unit of each test row),
    the intervals resample whole units.
    """
    from pipeline.config import FLOAT_MODEL

    labels = np.asarray(test_labels).astype(np.int64)
    decisions = {name: (np.asarray(predict(test_features)) >= thresholds[name]).astype(np.int64)
                 for name, predict in predict_functions.items()}
    names = list(decisions)
    shown = [n for n in (FLOAT_MODEL, ship_variant) if n in decisions]
    result: dict = {"title": "Missed failures by group (the headline of this audit)", "groups": {}}
    rows, worst = [], None
    for column in groups.columns:
        values = groups[column].astype(str).to_numpy()
        result["groups"][column] = {}
        for group in sorted(set(values)):
            members = values == group
            positives = int(labels[members].sum())
            entry = {"windows": int(members.sum()), "failing": positives, "models": {}}
            measurable = members.sum() >= min_group_size and positives > 0
            for name in names:
                caught = decisions[name][members]
                alarms = int(((caught == 1) & (labels[members] == 0)).sum())
                rng = np.random.default_rng([seed, zlib.crc32(f"{column}={group}".encode())])
                failing = members & (labels == 1)
                missed = (decisions[name][failing] == 0).astype(np.int64)
                misses = int(missed.sum())
                entry["models"][name] = {
                    "miss_rate": misses / positives if positives else None,
                    "interval": _interval(missed, None if units is None else np.asarray(units)[failing],
                                          bootstrap_samples, rng) if measurable else None,
                    "false_alarms_per_1000_cycles": 1000.0 * alarms / int(members.sum()),
                }
            result["groups"][column][group] = entry
            cells = [f"{column} = {group}", entry["windows"], positives]
            for name in shown:
                model = entry["models"][name]
                if model["miss_rate"] is None:
                    cells.append("n/a (no failures)")
                elif model["interval"] is None:
                    cells.append(f"{model['miss_rate']:.3f} (too few to measure)")
                else:
                    low, high = model["interval"]
                    cells.append(f"{model['miss_rate']:.3f} [{low:.3f}, {high:.3f}]")
            others = [entry["models"][n]["miss_rate"] for n in names if n not in shown
                      and entry["models"][n]["miss_rate"] is not None]
            cells.append(f"{min(others):.3f}–{max(others):.3f}" if others else "—")
            cells += [f"{entry['models'][n]['false_alarms_per_1000_cycles']:.1f}" for n in shown]
            rows.append(cells)
            if measurable and shown:
                rate = entry["models"][shown[-1]]["miss_rate"]
                if worst is None or rate > worst[0]:
                    worst = (rate, column, group)
    result["table"] = {
        "headers": ["group", "test cycles", "failing cycles", *[f"`{n}` miss rate [95 % interval]" for n in shown],
                    "other variants' miss rate (range)", *[f"`{n}` false alarms / 1,000 cycles" for n in shown]],
        "rows": rows,
    }
    result["summary"] = (
        "Miss rate = share of the cycles that precede a failure (label 1) that the model does not flag; a missed "
        "failure is the costly error. Each model at its own validation-chosen threshold; bootstrap intervals "
        f"({bootstrap_samples} resamples of each group's failing cycles"
        + (", whole units at a time: one unit's cycles are not independent)." if units is not None else ").")
        + (f" Highest miss rate of `{shown[-1]}`: {worst[1]} = {worst[2]} ({worst[0]:.3f})." if worst else ""))
    result["settings"] = {"models": names, "shown": shown, "min_group_size": int(min_group_size),
                          "bootstrap_samples": int(bootstrap_samples),
                          "resampling": "rows" if units is None else "whole units"}
    return result


def miss_rate_figure(analysis: dict):
    """Bars of the miss rate by group (with intervals) for the float and the shipped model."""
    from matplotlib.figure import Figure

    shown = analysis["settings"]["shown"]
    labels, series = [], {n: ([], []) for n in shown}
    for column, groups in analysis["groups"].items():
        for group, entry in groups.items():
            labels.append(f"{column} = {group}")
            for n in shown:
                model = entry["models"][n]
                rate = model["miss_rate"] if model["miss_rate"] is not None else np.nan
                low, high = model["interval"] or (rate, rate)
                series[n][0].append(rate)
                series[n][1].append((rate - low, high - rate))
    fig = Figure(figsize=(8, 1.5 + 0.45 * len(labels)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    height = 0.8 / max(len(shown), 1)
    for m, n in enumerate(shown):
        rates, errors = series[n]
        ax.barh(y + (m - (len(shown) - 1) / 2) * height, rates, height=height, label=n,
                xerr=np.asarray(errors, dtype=np.float64).T, capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("miss rate (share of failing cycles not flagged), 95 % interval")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Missed failures by group", fontsize=10)
    fig.tight_layout()
    return fig


def _with_notes(data: DomainData, notes: list[str]) -> DomainData:
    source: DataSource = dataclasses.replace(data.source, notes=(*notes, *data.source.notes))
    return dataclasses.replace(data, source=source)
