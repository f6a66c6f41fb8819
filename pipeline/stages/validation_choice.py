"""Choosing one of several fine-tuned candidates on the validation split, without being fooled by its noise.

The best validation PR-AUC alone is a poor rule when the split is small or saturated: on PneumoniaMNIST
(seed 0, 2026-11-28, an AMD EPYC CPU) pruning at learning rate 1e-3 scored 0.99862 and at 1e-4 0.99841, and
the rule took 1e-3, which lost 0.012 ROC-AUC on test against 1e-4's 0.001 (on an Intel CPU, which trains a
different float model: 0.0146 against 0.0029). A difference that small is what resampling the same 524 rows
produces.

Not telling two candidates apart is not the same as their being equal, though: on AI4I (2026-11-28) 1e-3
led by 0.020 with a 95 % interval of [-0.006, 0.045] for the lead, and taking that for a tie shipped 1e-4,
which lost 0.030 PR-AUC on test. So the rule asks for equivalence (a two one-sided test):

1. the candidate with the best validation PR-AUC is the leader;
2. another candidate is *tied* with it when the paired bootstrap's 90 % percentile interval of
   (leader - candidate) PR-AUC lies inside +-EQUIVALENCE_MARGIN (0.005, half the gate's default limit on
   a variant's quality drop): the same resampled rows score both, stratified by class so every resample
   holds both classes. A split too small to bound the difference that tightly ties nothing, and the
   best score wins as before;
3. among the leader and the candidates tied with it, the one that ranks the validation rows most like
   the float model wins (Spearman correlation of the scores): compression is meant to change the model as
   little as it can, and the headline metrics (ROC-AUC, PR-AUC) are functions of the ranking. Equal
   correlation goes to the better PR-AUC.

Recorded beside it, and not decided by: the mean absolute score difference, which fine-tuning moves by
sharpening every score (on PneumoniaMNIST both rates moved it by 0.083, while their Spearman correlations
were 0.956 at 1e-3 and 0.982 at 1e-4), and the share of decisions that agree (each model at its own
threshold, by the run's rule), which on a few hundred rows differs between candidates by one or two
examples.

Rows are resampled one by one: where rows are correlated (several per patient) the interval is too
narrow, and more candidates may pass for equivalent than should.
No file I/O.
"""

from __future__ import annotations

import numpy as np

from pipeline.explainers.common import spearman
from pipeline.metrics import Predictions, choose_threshold, pr_auc

RESAMPLES = 200
LEVEL = 0.90   # of the interval; a two one-sided test at 5 % each
EQUIVALENCE_MARGIN = 0.005  # validation PR-AUC


def choose_candidate(labels: np.ndarray, candidate_scores: dict[str, np.ndarray],
                     reference_scores: np.ndarray | None, *, threshold_rule: str = "f1", seed: int = 0,
                     resamples: int = RESAMPLES) -> dict:
    """{"chosen": name, "chosen_because": sentence, "candidates": {name: record}, ...} of the candidates'
    validation scores (same rows as `labels`); `reference_scores`: the float model's validation scores (None:
    the best PR-AUC wins, ties or not)."""
    if not candidate_scores:
        raise ValueError("no candidate to choose from")
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = {name: np.asarray(values, dtype=np.float64).ravel() for name, values in candidate_scores.items()}
    for name, values in scores.items():
        if len(values) != len(labels):
            raise ValueError(f"candidate {name!r} has {len(values)} validation scores for {len(labels)} labels")
    observed = {name: float(pr_auc(labels, values)) for name, values in scores.items()}
    leader = max(scores, key=lambda name: observed[name])
    records: dict[str, dict] = {name: {"validation_pr_auc": round(observed[name], 5)} for name in scores}

    replicates = _paired_replicates(labels, scores, resamples=resamples, seed=seed)
    tied = [leader]
    for name in scores:
        if name == leader:
            continue
        differences = replicates[leader] - replicates[name]
        low, high = np.quantile(differences, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
        equivalent = bool(-EQUIVALENCE_MARGIN < low and high < EQUIVALENCE_MARGIN)
        records[name].update({"behind_leader": round(observed[leader] - observed[name], 5),
                              "behind_leader_interval": [round(float(low), 5), round(float(high), 5)],
                              "tied_with_leader": equivalent})
        if equivalent:
            tied.append(name)

    if reference_scores is not None:
        reference = np.asarray(reference_scores, dtype=np.float64).ravel()
        if len(reference) != len(labels):
            raise ValueError(f"the float model has {len(reference)} validation scores for {len(labels)} labels")
        reference_decisions = _decisions(labels, reference, threshold_rule)
        for name, values in scores.items():
            records[name]["mean_score_difference_to_float"] = round(float(np.mean(np.abs(values - reference))), 6)
            correlation = spearman(values, reference)   # None where undefined (a constant candidate)
            records[name]["rank_correlation_with_float"] = None if correlation is None else round(correlation, 6)
            records[name]["agreement_with_float"] = round(
                float(np.mean(_decisions(labels, values, threshold_rule) == reference_decisions)), 5)

    interval = f"the paired bootstrap's {LEVEL:.0%} interval of the difference"
    if len(tied) == 1:
        chosen, because = leader, (f"best validation PR-AUC, and no other candidate provably within "
                                   f"{EQUIVALENCE_MARGIN} of it ({interval})")
    elif reference_scores is None:
        chosen, because = leader, (f"best validation PR-AUC (others within {EQUIVALENCE_MARGIN} of it by "
                                   f"{interval}, and no float scores to break the tie)")
    else:
        chosen = max(tied, key=lambda name: (_or_lowest(records[name]["rank_correlation_with_float"]), observed[name]))
        because = (f"equivalent on validation PR-AUC to {_listed([n for n in tied if n != chosen])} ({interval} "
                   f"lies within ±{EQUIVALENCE_MARGIN}); of the equivalent, the one whose validation scores rank "
                   "the rows most like the float model's")
    return {"chosen": chosen, "chosen_because": because, "leader_on_pr_auc": leader, "tied": tied,
            "resamples": resamples, "interval_level": LEVEL, "equivalence_margin": EQUIVALENCE_MARGIN,
            "candidates": records}


def _paired_replicates(labels: np.ndarray, scores: dict[str, np.ndarray], *, resamples: int,
                       seed: int) -> dict[str, np.ndarray]:
    """Every candidate's PR-AUC on the same class-stratified bootstrap resamples of the rows."""
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    replicates = {name: np.empty(resamples) for name in scores}
    for b in range(resamples):
        rows = np.concatenate([rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))])
        for name, values in scores.items():
            replicates[name][b] = pr_auc(labels[rows], values[rows])
    return replicates


def _decisions(labels: np.ndarray, scores: np.ndarray, threshold_rule: str) -> np.ndarray:
    return Predictions(scores, choose_threshold(labels, scores, threshold_rule)).decisions


def _or_lowest(value: float | None) -> float:
    return float("-inf") if value is None else value


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
