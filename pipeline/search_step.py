"""The training recipe of a run: the domain's fixed one, or the one the tabular model search chose.

run.py asks for the recipe before it writes the preprocessing file, because the search may
choose a numeric encoding (piecewise-linear) that changes the model's inputs. Here: which
encodings are offered, the gradient-boosting teacher, how many trials, and what the run
records (training.json's "search", the model card's sentence). The search itself is
`pipeline.stages.model_search`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.domain import Domain, DomainData
from pipeline.options import DomainOption

SEARCH_TRIALS_OPTION = DomainOption(
    "search_trials", type=int, default=6, minimum=0, metavar="N",
    help="trials of the model search on the validation split (KerasTuner; the first is the fixed recipe): "
         "encoding of numeric columns, width, dropout, weight decay, learning rate and schedule, loss, "
         "distillation from gradient boosting; 0 trains the fixed recipe; --quick runs at most 2")
QUICK_TRIALS = 2

# The deep ensemble (pipeline/stages/ensemble.py): how many networks by default, on which tables.
# Each member multiplies the cost of every later stage (compression fine-tuning, SHAP, the
# device's flash and latency), and buys most where one network's seed matters most: small
# tables. Measured (BENCHMARKS.md, tabular-models, seeds 0-2): AI4I, 6,000 train rows, 0.942x ->
# 0.957x HistGradientBoosting's PR-AUC with 5 members, the int8 file 5x larger; the vehicle
# claims, 9,252 rows, 0.979x -> 0.981x; the default fraud data (14,401 train rows)
# already beats HistGradientBoosting with one network and is explained exactly (2^12
# coalitions), where 5 members would add minutes to its run.
AUTO_ENSEMBLE_MEMBERS = 5
AUTO_ENSEMBLE_MAX_TRAIN_ROWS = 10_000
QUICK_ENSEMBLE_MEMBERS = 2
ENSEMBLE_MEMBERS_OPTION = DomainOption(
    "ensemble_members", type=int, default=None, minimum=1, metavar="K",
    help=f"networks of the chosen recipe trained with different seeds and averaged in one model (a deep "
         f"ensemble), kept only when averaging beats its members on validation; default "
         f"{AUTO_ENSEMBLE_MEMBERS} for tables of at most {AUTO_ENSEMBLE_MAX_TRAIN_ROWS:,} train rows, 1 above "
         f"(each member multiplies the model's bytes, latency and explanation time); 1 trains one network; "
         f"--quick trains at most {QUICK_ENSEMBLE_MEMBERS}")


@dataclass(frozen=True)
class Recipe:
    """How the float model is trained, and on which inputs."""

    data: DomainData                      # with the preprocessing the model is trained on
    model_options: dict
    learning_rate: float
    loss: str = "binary_crossentropy"
    learning_rate_schedule: str = "constant"
    train_targets: np.ndarray | None = None   # distillation targets; None: the labels
    extra_rows: tuple[np.ndarray, np.ndarray] | None = None   # synthetic rows and the teacher's scores
    search: dict | None = None            # what training.json records under "search"
    trained: Any = None                   # the search's model of this recipe, when it trained on every train row

    def training_options(self) -> dict:
        """The keyword arguments of `train.train_model` that the recipe decides."""
        return {"model_options": self.model_options, "learning_rate": self.learning_rate, "loss": self.loss,
                "learning_rate_schedule": self.learning_rate_schedule, "train_targets": self.train_targets,
                "extra_rows": self.extra_rows}


def _declares(domain: Domain, option: DomainOption) -> bool:
    """Whether the domain offers `option` (its own declaration may differ in help text)."""
    return any(declared.name == option.name for declared in domain.options)


def trials_in_force(config, domain: Domain) -> int:
    """The number of search trials this run makes (0 when the domain does not search)."""
    if not _declares(domain, SEARCH_TRIALS_OPTION):
        return 0
    trials = int(config.option(SEARCH_TRIALS_OPTION.name))
    return min(trials, QUICK_TRIALS) if config.quick else trials


def ensemble_members_in_force(config, domain: Domain, data: DomainData, *, cluster=None) -> int:
    """How many networks the float model averages (1: one network; a multi-worker run trains one)."""
    if (cluster is not None or not domain.searches_model(data)
            or not _declares(domain, ENSEMBLE_MEMBERS_OPTION)):
        return 1
    members = config.option(ENSEMBLE_MEMBERS_OPTION.name)
    if members is None:
        members = AUTO_ENSEMBLE_MEMBERS if len(data.train.labels) <= AUTO_ENSEMBLE_MAX_TRAIN_ROWS else 1
    members = int(members)
    return min(members, QUICK_ENSEMBLE_MEMBERS) if config.quick else members


def recipe(config, domain: Domain, data: DomainData, runtime: Any, progress, *, cluster=None) -> Recipe:
    """The fixed recipe, or the search's choice where the domain searches its model for these data."""
    fixed = Recipe(data=data, model_options=domain.model_options(data, config), learning_rate=domain.learning_rate)
    trials = trials_in_force(config, domain)
    if trials == 0 or not domain.searches_model(data):
        return fixed
    if cluster is not None:
        progress("  model search skipped: a multi-worker run trains the fixed recipe")
        return dataclasses.replace(fixed, search={"skipped": "multi-worker training takes the fixed recipe"})
    return _searched(config, domain, data, runtime, progress, trials, fixed)


def _searched(config, domain: Domain, data: DomainData, runtime: Any, progress, trials: int,
              fixed: Recipe) -> Recipe:
    from pipeline.data.tabular_preprocessing import with_piecewise_linear, with_spec
    from pipeline.stages.baselines import fit_teacher, teacher_scores
    from pipeline.stages.model_search import (
        SEARCH_SPACE,
        SearchData,
        gather_columns,
        model_options_of,
        search_tabular_model,
        swap_noise_sources,
        synthetic_rows,
        training_targets,
    )

    def encoded(spec: dict) -> tuple[np.ndarray, np.ndarray]:
        return domain.encode(spec, data.train.raw), domain.encode(spec, data.validation.raw)

    specs = {"standardised": data.preprocessing}
    standardised = encoded(data.preprocessing)
    encodings = {"standardised": standardised}
    piecewise = with_piecewise_linear(data.preprocessing, standardised[0])
    if any(column.get("edges") for column in piecewise["columns"]):
        specs["piecewise_linear"] = piecewise
        encodings["piecewise_linear"] = encoded(piecewise)
    progress("  teacher for distillation: HistGradientBoosting, out-of-fold scores of the train rows, and the "
             "scores of synthetic rows (augmented distillation)")
    teacher = teacher_scores(standardised[0], data.train.labels, config.seed)
    sources = swap_noise_sources(len(data.train.labels), len(data.preprocessing["columns"]),
                                 max(SEARCH_SPACE["augmentation"]), seed=config.seed)
    synthetic = {name: gather_columns(
        train_x, [column["indices"] for column in specs[name]["columns"]], sources)
        for name, (train_x, _) in encodings.items()}
    synthetic_scores = fit_teacher(standardised[0], data.train.labels, config.seed).predict_proba(
        synthetic["standardised"])[:, 1].astype(np.float32)
    search_data = SearchData(encodings=encodings, train_labels=data.train.labels,
                             validation_labels=data.validation.labels, teacher_scores=teacher,
                             synthetic=synthetic, synthetic_scores=synthetic_scores)
    progress(f"  model search: {trials} trials on the validation split (KerasTuner)")
    result = search_tabular_model(
        search_data,
        model_builder=domain.model_builder, runtime=runtime, epochs=config.epochs, patience=5, trials=trials,
        seed=config.seed, optimizer=domain.optimizer, base_model_options=fixed.model_options, progress=progress)
    chosen = result.chosen
    spec = specs[chosen["numeric_encoding"]]
    chosen_data = with_spec(data, spec)
    progress("  chosen on validation: " + ", ".join(f"{name} {value}" for name, value in chosen.items()))
    return Recipe(
        data=chosen_data, model_options={**fixed.model_options, **model_options_of(chosen)},
        learning_rate=float(chosen["learning_rate"]), loss=chosen["loss"],
        learning_rate_schedule=chosen["learning_rate_schedule"],
        train_targets=training_targets(data.train.labels, teacher, float(chosen["teacher_weight"])),
        extra_rows=synthetic_rows(search_data, chosen, len(data.train.labels)),
        trained=result.best_model if result.rows_searched == len(data.train.labels) else None,
        search={**result.to_json(),
                "teacher": "HistGradientBoostingClassifier: out-of-fold scores of the train rows (5 stratified "
                           "folds), and the scores of the synthetic rows by the one fitted on the whole train split "
                           "(pipeline.stages.baselines)"})

