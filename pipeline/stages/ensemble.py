"""A deep ensemble of the chosen tabular recipe: members trained with other seeds, their scores averaged.

On small tables one network's test metric swings with its seed (AI4I, 6,000 train rows: PR-AUC
0.77 to 0.86 over three seeds with the same search), and averaging independently trained networks
(Lakshminarayanan et al., 2017, "Simple and scalable predictive uncertainty estimation using deep
ensembles") removes much of that variance. Measured (BENCHMARKS.md, tabular-models, seeds 0, 1,
2, 5 members): AI4I mean test PR-AUC 0.827 -> 0.840 against HistGradientBoosting's 0.878 (0.942x ->
0.957x), every seed gaining; training the members jointly as one averaged model was worse than one
network.

The first member is the model the run trained already (the search's, or the fixed recipe's); the
others are the same recipe trained again with the seeds that follow the run's (seed + 1, ...).
`build_mlp(members=k)` holds them side by side with their probabilities averaged, so the ensemble
is one Functional model that compresses and converts like any other. Whether it ships is decided on validation: the ensemble is
kept when its validation PR-AUC beats the mean of the members trained here (the first member's own
score is not used: the search chose it for its validation score, so it is biased upwards).

Nothing here reads or writes files; `run.py` records what `EnsembleOutcome.record` says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pipeline.metrics import pr_auc
from pipeline.stages.train import TrainedModel, batched_predict_function
from pipeline.stages.twin import build_with_weights, weights_by_layer_name

KEEP_RULE = ("kept when the ensemble's validation PR-AUC beats the mean of the members trained for it "
             "(the first member, chosen for its validation score, is left out of that mean)")


@dataclass(frozen=True)
class EnsembleOutcome:
    trained: TrainedModel        # the ensemble when kept, else the first member unchanged
    model_options: dict          # the builder's options of `trained` (members=k when kept)
    record: dict                 # training.json's "ensemble"


def ensemble_weights(member_weights: list[dict[str, list[np.ndarray]]],
                     layer_name: Callable[[int, str], str]) -> dict[str, list[np.ndarray]]:
    """{ensemble layer name: weights} from each member's {layer name: weights}, renamed by `layer_name(m, name)`."""
    weights: dict[str, list[np.ndarray]] = {}
    for member, layers in enumerate(member_weights):
        for name, arrays in layers.items():
            weights[layer_name(member, name)] = arrays
    return weights


def keep_ensemble(ensemble_score: float, fresh_member_scores: list[float]) -> bool:
    """The validation rule (KEEP_RULE): does averaging beat a member trained without selection?"""
    return bool(fresh_member_scores) and ensemble_score > float(np.mean(fresh_member_scores))


def train_deep_ensemble(first: TrainedModel, *, members: int, model_builder: Callable[..., Any],
                        input_shape: tuple[int, ...], model_options: dict, layer_name: Callable[[int, str], str],
                        train_member: Callable[[int], TrainedModel], validation_features: np.ndarray,
                        validation_labels: np.ndarray, progress: Callable[[str], None] = print) -> EnsembleOutcome:
    """Trains members 2..`members` with `train_member(m)`, averages all of them, keeps the ensemble by KEEP_RULE.

    `first` is member 1 (already trained); `train_member(m)` trains member m (1-based, m >= 2) of the
    same recipe with its own seed; `model_builder(keras, input_shape, **model_options, members=k)`
    builds the averaged model whose layers `layer_name(m, name)` names.
    """
    import keras

    started = time.monotonic()

    def validation_score(model) -> float:
        return float(pr_auc(validation_labels, batched_predict_function(model)(validation_features)))

    trained = [first]
    scores = [validation_score(first.model)]
    progress(f"  deep ensemble: member 1/{members} is the model above, validation PR-AUC {scores[0]:.4f}")
    for member in range(2, members + 1):
        result = train_member(member)
        trained.append(result)
        scores.append(validation_score(result.model))
        progress(f"  deep ensemble: member {member}/{members} trained, validation PR-AUC {scores[-1]:.4f} "
                 f"(best epoch {result.best_epoch} of {result.epochs_run}, {result.seconds:.1f} s)")
    options = {**model_options, "members": members}
    model = build_with_weights(keras, model_builder, input_shape, options,
                               ensemble_weights([weights_by_layer_name(t.model) for t in trained], layer_name))
    ensemble_score = validation_score(model)
    kept = keep_ensemble(ensemble_score, scores[1:])
    fresh_mean = float(np.mean(scores[1:]))   # members >= 2: never empty
    progress(f"  deep ensemble of {members}: validation PR-AUC {ensemble_score:.4f} against {fresh_mean:.4f} for "
             f"a member trained for it: " + ("kept" if kept else "not kept, the first member ships alone"))
    record = {"members": members, "kept": kept, "validation_pr_auc": round(ensemble_score, 6),
              "member_validation_pr_auc": [round(score, 6) for score in scores],
              "fresh_member_mean_validation_pr_auc": round(fresh_mean, 6),
              "member_seconds": [round(t.seconds, 2) for t in trained],
              "seconds": round(time.monotonic() - started, 2), "rule": KEEP_RULE}
    if not kept:
        return EnsembleOutcome(trained=first, model_options=dict(model_options), record=record)
    summary = TrainedModel(
        model=model, history=first.history, seconds=sum(t.seconds for t in trained), epochs_run=first.epochs_run,
        best_epoch=first.best_epoch, class_weights=first.class_weights, optimizer=first.optimizer,
        distributed=first.distributed, input_pipeline=first.input_pipeline)
    return EnsembleOutcome(trained=summary, model_options=options, record=record)


def ensemble_sentence(record: dict | None) -> str | None:
    """The model card's sentence on the deep ensemble (None when none was trained)."""
    if not record:
        return None
    members = record["members"]
    if record["kept"]:
        return (f"Deep ensemble: {members} networks of the chosen recipe, trained with different seeds, their "
                f"probabilities averaged in the model (validation PR-AUC {record['validation_pr_auc']:.4f} against "
                f"{record['fresh_member_mean_validation_pr_auc']:.4f} for one member trained for it); every "
                f"compressed variant holds all {members}.")
    return (f"Deep ensemble of {members} tried and not kept: its validation PR-AUC "
            f"{record['validation_pr_auc']:.4f} did not beat {record['fresh_member_mean_validation_pr_auc']:.4f} "
            f"for one member trained for it, so one network ships.")
