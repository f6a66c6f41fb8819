"""Model search: a small hyper-parameter search for the tabular model, with KerasTuner, on validation.

Plain multi-layer perceptrons trail gradient-boosted trees on real tables (BENCHMARKS.md, and
Grinsztajn et al., NeurIPS 2022). What the tabular deep-learning literature shows closes much
of the gap, and still converts to a full-integer `.tflite` that runs on the microcontroller
runtime, is searched here:

- numeric features as a piecewise-linear encoding (Gorishniy et al., NeurIPS 2022) or standardised;
- width, dropout and L2 weight decay of the MLP;
- learning rate, and a schedule that halves it when validation PR-AUC stalls;
- binary cross-entropy or focal loss (Lin et al., 2017) beside the class weights;
- distillation (Hinton et al., 2015): the target mixes the label with the out-of-fold score of
  a gradient-boosting teacher (`baselines.teacher_scores`), by the teacher weight;
- augmented distillation (Fakoor et al., "Fast, Accurate, and Simple Models for Tabular Data via
  Augmented Distillation", NeurIPS 2020): 4 or 8 synthetic rows per train row, each a train row
  with every column swapped, with probability SWAP_PROBABILITY, for another train row's value,
  labelled by the teacher fitted on the whole train split. The student then learns the
  teacher's function where the train rows are sparse, not only at the train rows.

Categorical columns are one-hot inputs to the first dense layer, which is an embedding lookup
(one-hot times a weight matrix) whose width the search chooses. KerasTuner's RandomSearch draws
the trials; the first trial is always the fixed recipe of earlier versions, so a search never
picks a model worse on validation than the one without a search, and the second the recipe the
literature and our measurements recommend (RECOMMENDED_RECIPE). Every trial trains through the
one training path (`train.train_model`), early-stopped on validation PR-AUC; the trial with the
best validation PR-AUC is chosen, and its trained model is the run's float model when the search
trained on every train row (otherwise the chosen recipe trains again on all of them). The test
split plays no part.

KerasTuner keeps its trial records in a directory: a temporary one, removed when the search ends.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pipeline.stages.fitting import LEARNING_RATE_SCHEDULES, LOSSES

# What may be searched, each with its value under the fixed recipe first (the default trial).
SEARCH_SPACE: dict[str, tuple] = {
    "numeric_encoding": ("standardised", "piecewise_linear"),
    "hidden_units": ("256-128", "128-64"),
    "dropout_rate": (0.2, 0.1, 0.3),
    "l2": (0.0, 1e-4, 1e-3),
    "learning_rate": (1e-3, 3e-3),
    "learning_rate_schedule": LEARNING_RATE_SCHEDULES,
    "loss": LOSSES,
    "teacher_weight": (0.0, 0.5, 1.0),
    "augmentation": (0, 4, 8),
}
# Per column of a synthetic row: swap noise, a cheap stand-in for the Gibbs sampler of Fakoor et
# al.; 0.3 is the one value tried (on the validation splits of the vehicle claims and AI4I).
SWAP_PROBABILITY = 0.3
SYNTHETIC_MAX_ROWS = 400_000
# The second trial: what the literature above recommends for a table (piecewise-linear numbers,
# a narrower net with weight decay, the teacher's scores on train and synthetic rows), checked on
# the validation splits of the vehicle claims and AI4I before it was written here; names these
# data cannot offer fall back to the fixed recipe's value.
RECOMMENDED_RECIPE = {"numeric_encoding": "piecewise_linear", "hidden_units": "128-64", "dropout_rate": 0.2,
                      "l2": 1e-4, "learning_rate": 1e-3, "learning_rate_schedule": "constant",
                      "loss": "binary_crossentropy", "teacher_weight": 1.0, "augmentation": 8}
OBJECTIVE = "val_pr_auc"
# The search trains on at most this many train rows (stratified); the chosen recipe then trains on all.
SEARCH_MAX_ROWS = 50_000


@dataclass(frozen=True)
class SearchData:
    """What every trial reads: the train and validation inputs under each numeric encoding offered."""

    encodings: dict[str, tuple[np.ndarray, np.ndarray]]   # numeric_encoding -> (train_x, validation_x)
    train_labels: np.ndarray
    validation_labels: np.ndarray
    teacher_scores: np.ndarray | None    # out-of-fold teacher score per train row; None: no distillation
    # Synthetic rows (augmented distillation), in the order drawn, per numeric encoding, and the
    # teacher's score of each; a trial with augmentation k takes the first k x train rows.
    synthetic: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic_scores: np.ndarray | None = None


@dataclass
class SearchResult:
    chosen: dict                          # the chosen trial's values (SEARCH_SPACE's names)
    trials: list[dict] = field(default_factory=list)   # {"trial", "values", "val_pr_auc", "epochs_run", "seconds"}
    seconds: float = 0.0
    rows_searched: int = 0
    space: dict = field(default_factory=dict)          # name -> the values offered
    best_model: Any = None   # the chosen trial's train.TrainedModel (not written anywhere)

    def to_json(self) -> dict:
        return {"tuner": "keras_tuner.RandomSearch after the fixed and the recommended recipe", "objective": OBJECTIVE,
                "chosen": self.chosen, "trials": self.trials, "seconds": round(self.seconds, 3),
                "rows_searched": self.rows_searched, "space": self.space}


def default_recipe(space: dict[str, tuple] | None = None) -> dict:
    """The value under the fixed recipe (the first) of every searched name."""
    return {name: values[0] for name, values in (space or SEARCH_SPACE).items()}


def recommended_recipe(space: dict[str, tuple]) -> dict:
    """RECOMMENDED_RECIPE within `space` (a value not offered falls back to the fixed recipe's)."""
    return {name: RECOMMENDED_RECIPE[name] if RECOMMENDED_RECIPE[name] in values else values[0]
            for name, values in space.items()}


def model_options_of(values: dict) -> dict:
    """The builder's options of a trial: {"hidden_units": (256, 128), "dropout_rate", "l2"}."""
    return {"hidden_units": tuple(int(units) for units in str(values["hidden_units"]).split("-")),
            "dropout_rate": float(values["dropout_rate"]), "l2": float(values["l2"])}


def training_targets(labels: np.ndarray, teacher_scores: np.ndarray | None, teacher_weight: float) -> np.ndarray | None:
    """(1 - w) * label + w * teacher score; None (train on the labels) when w is 0 or there is no teacher."""
    if teacher_scores is None or not teacher_weight:
        return None
    return ((1.0 - teacher_weight) * np.asarray(labels, dtype=np.float64)
            + teacher_weight * np.asarray(teacher_scores, dtype=np.float64)).astype(np.float32)


def synthetic_rows(data: SearchData, values: dict, train_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, teacher scores) of the first augmentation x train_rows synthetic rows; None without augmentation."""
    multiplier = int(values.get("augmentation") or 0)
    if not multiplier or data.synthetic_scores is None:
        return None
    count = min(multiplier * train_rows, len(data.synthetic_scores))
    return data.synthetic[values["numeric_encoding"]][:count], data.synthetic_scores[:count]


def search_space_for(data: SearchData) -> dict[str, tuple]:
    """SEARCH_SPACE less what these data cannot offer (an encoding not built, distillation without a teacher)."""
    space = dict(SEARCH_SPACE)
    space["numeric_encoding"] = tuple(v for v in SEARCH_SPACE["numeric_encoding"] if v in data.encodings)
    if data.teacher_scores is None:
        space["teacher_weight"] = (0.0,)
    if data.synthetic_scores is None:
        space["augmentation"] = (0,)
    return {name: values for name, values in space.items() if values}


def swap_noise_sources(rows: int, columns: int, multiplier: int, seed: int,
                       swap_probability: float = SWAP_PROBABILITY) -> np.ndarray:
    """(multiplier x rows, columns) train row ids: synthetic row s takes column c from train row ids[s, c].

    Each synthetic row starts from one random train row, and each of its columns is swapped,
    with probability `swap_probability`, for the same column of another random train row.
    Capped at SYNTHETIC_MAX_ROWS rows.
    """
    rng = np.random.default_rng(seed)
    count = min(int(multiplier) * int(rows), SYNTHETIC_MAX_ROWS)
    base = rng.integers(0, rows, size=count)
    sources = np.repeat(base[:, None], columns, axis=1)
    swapped = rng.random((count, columns)) < swap_probability
    sources[swapped] = rng.integers(0, rows, size=int(swapped.sum()))
    return sources


def gather_columns(train_x: np.ndarray, column_indices: list[list[int]], sources: np.ndarray) -> np.ndarray:
    """The synthetic rows' encoded inputs: column c's inputs (column_indices[c]) from train row sources[:, c]."""
    out = np.empty((len(sources), train_x.shape[1]), dtype=train_x.dtype)
    for column, indices in enumerate(column_indices):
        out[:, indices] = train_x[np.ix_(sources[:, column], indices)]
    return out


def subsample_rows(labels: np.ndarray, most: int, seed: int) -> np.ndarray:
    """Row ids of at most `most` rows, stratified by label, in their original order (all rows if fewer)."""
    labels = np.asarray(labels)
    if len(labels) <= most:
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(np.arange(len(labels)), train_size=most, stratify=labels, random_state=seed)
    return np.sort(kept)


def search_tabular_model(data: SearchData, *, model_builder: Callable[..., Any], runtime: Any, epochs: int,
                         patience: int, trials: int, seed: int, optimizer: str,
                         base_model_options: dict | None = None,
                         progress: Callable[[str], None] = print) -> SearchResult:
    """Run `trials` trials (the first is the fixed recipe) and return the one best on validation PR-AUC.

    base_model_options: the builder's options a trial does not set (maintenance's architecture "mlp").
    """
    import keras_tuner

    from pipeline.stages.train import train_model

    space = search_space_for(data)
    rows = subsample_rows(data.train_labels, SEARCH_MAX_ROWS, seed)
    records: list[dict] = []
    best: dict = {}   # the best trial so far: {"score", "trained"}

    hyperparameters = keras_tuner.HyperParameters()
    for name, values in space.items():
        hyperparameters.Choice(name, list(values), default=values[0])

    first_trials = [default_recipe(space), recommended_recipe(space)]

    class RecipesFirstOracle(keras_tuner.oracles.RandomSearchOracle):
        """RandomSearch, after the fixed and the recommended recipe."""

        def populate_space(self, trial_id):
            for values in first_trials[len(self.trials):]:
                if not self._duplicate(values):
                    return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": dict(values)}
            return super().populate_space(trial_id)

    class Tuner(keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            values = dict(trial.hyperparameters.values)
            train_x, validation_x = data.encodings[values["numeric_encoding"]]
            labels = data.train_labels[rows]
            teacher = None if data.teacher_scores is None else data.teacher_scores[rows]
            extra = synthetic_rows(data, values, len(rows))
            trained = train_model(
                model_builder=model_builder, input_shape=tuple(train_x.shape[1:]),
                model_options={**(base_model_options or {}), **model_options_of(values)},
                train_features=train_x[rows], train_labels=labels,
                validation_features=validation_x, validation_labels=data.validation_labels, runtime=runtime,
                epochs=epochs, optimizer=optimizer, learning_rate=float(values["learning_rate"]), patience=patience,
                progress=lambda line: None, loss=values["loss"],
                learning_rate_schedule=values["learning_rate_schedule"],
                train_targets=training_targets(labels, teacher, float(values["teacher_weight"])), extra_rows=extra)
            score = float(max(trained.history.get(OBJECTIVE) or [0.0]))
            if not best or score > best["score"]:
                best.update(score=score, trained=trained, values=values)
            records.append({"trial": len(records) + 1, "values": values, OBJECTIVE: round(score, 6),
                            "epochs_run": trained.epochs_run, "seconds": round(trained.seconds, 2)})
            progress(f"  trial {len(records)}/{trials}: validation PR-AUC {score:.4f}  "
                     + ", ".join(f"{name} {value}" for name, value in values.items()))
            return {OBJECTIVE: score}

    started = time.monotonic()
    oracle = RecipesFirstOracle(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), max_trials=trials,
                                seed=seed, hyperparameters=hyperparameters, allow_new_entries=False,
                                tune_new_entries=False)
    with tempfile.TemporaryDirectory(prefix="edgeaudit-search-") as scratch:
        tuner = Tuner(oracle=oracle, directory=scratch, project_name="search", overwrite=True)
        tuner.search(verbose=0)
        tuner_best = tuner.oracle.get_best_trials(1)[0].score
    if tuner_best != best["score"]:   # KerasTuner and this record agree on the best score (ties: the earlier trial)
        raise RuntimeError(f"the tuner's best score {tuner_best} is not the best one recorded {best['score']}")
    return SearchResult(chosen=dict(best["values"]), trials=records, seconds=time.monotonic() - started,
                        rows_searched=int(len(rows)), space={name: list(values) for name, values in space.items()},
                        best_model=best["trained"])


def search_sentence(search: dict | None) -> str | None:
    """The model card's sentence on how the recipe was chosen (None when nothing was searched)."""
    if not search:
        return None
    if "skipped" in search:
        return f"Model search skipped: {search['skipped']}."
    chosen = search["chosen"]
    best = max(trial["val_pr_auc"] for trial in search["trials"])
    first = search["trials"][0]["val_pr_auc"]
    distilled = (f"distilled from gradient boosting (teacher weight {chosen['teacher_weight']:g})"
                 if chosen.get("teacher_weight") else "trained on the labels alone")
    if chosen.get("augmentation"):
        distilled += (f", with {chosen['augmentation']} synthetic rows per train row labelled by the teacher "
                      "(augmented distillation)")
    return (f"Recipe chosen on the validation split by a KerasTuner search of {len(search['trials'])} trials "
            f"(the first is the fixed recipe, validation PR-AUC {first:.4f}; chosen {best:.4f}): numeric columns "
            f"{chosen['numeric_encoding'].replace('_', '-')}, hidden units {chosen['hidden_units']}, dropout "
            f"{chosen['dropout_rate']:g}, L2 {chosen['l2']:g}, learning rate {chosen['learning_rate']:g} "
            f"({chosen['learning_rate_schedule'].replace('_', ' ')}), loss {chosen['loss'].replace('_', ' ')}, "
            f"{distilled}.")
