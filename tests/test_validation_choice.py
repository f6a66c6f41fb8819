"""Choosing a fine-tuned candidate on validation: a lead inside the noise is a tie, broken toward the float model."""

import numpy as np
import pytest

from pipeline.metrics import pr_auc
from pipeline.stages.validation_choice import choose_candidate


def _labels_and_signal(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.3).astype(np.int64)
    signal = labels + rng.normal(scale=0.8, size=rows)
    return rng, labels, signal


def test_a_clear_lead_wins_whatever_the_float_model_decides():
    rng, labels, signal = _labels_and_signal(2000)
    strong = signal
    weak = signal + rng.normal(scale=2.0, size=len(signal))  # far noisier: PR-AUC clearly lower
    float_scores = weak + 0.01  # closer to the weak candidate, which must not matter
    choice = choose_candidate(labels, {"strong": strong, "weak": weak}, float_scores)
    assert choice["chosen"] == "strong" and choice["tied"] == ["strong"]
    record = choice["candidates"]["weak"]
    assert record["tied_with_leader"] is False and record["behind_leader_interval"][0] > 0
    assert record["behind_leader"] == pytest.approx(pr_auc(labels, strong) - pr_auc(labels, weak), abs=1e-5)
    assert "ahead of every other candidate" in choice["chosen_because"]


def test_a_lead_within_the_noise_goes_to_the_candidate_closer_to_the_float_model():
    rng, labels, signal = _labels_and_signal(400)
    float_scores = signal
    close = float_scores + rng.normal(scale=0.02, size=len(signal))    # a gentle change: few flips
    moved = float_scores + rng.normal(scale=0.25, size=len(signal))    # a larger change
    # that leads on PR-AUC by a hair: a few positives lifted above the rest
    moved[np.flatnonzero(labels == 1)[:8]] += 1.0
    assert pr_auc(labels, moved) > pr_auc(labels, close)
    choice = choose_candidate(labels, {"moved": moved, "close": close}, float_scores, seed=3)
    assert choice["leader_on_pr_auc"] == "moved"
    records = choice["candidates"]
    assert records["close"]["tied_with_leader"] is True
    assert records["close"]["rank_correlation_with_float"] > records["moved"]["rank_correlation_with_float"]
    assert records["close"]["mean_score_difference_to_float"] == pytest.approx(np.abs(close - float_scores).mean(),
                                                                               abs=1e-6)
    assert choice["chosen"] == "close"
    assert "rank the rows most like the float model's" in choice["chosen_because"]


def test_a_tie_is_broken_by_ranking_not_by_how_far_the_scores_moved():
    # Fine-tuning that sharpens every probability keeps the float model's ranking but moves every score; a candidate
    # with small score noise moves them less and reorders rows. The ranking is what ROC-AUC and PR-AUC measure.
    rng, labels, signal = _labels_and_signal(400, seed=5)
    float_scores = 1 / (1 + np.exp(-signal))
    sharpened = 1 / (1 + np.exp(-3 * signal))                          # same order, scores far from the float's
    jittered = np.clip(float_scores + rng.normal(scale=0.005, size=len(signal)), 0, 1)
    choice = choose_candidate(labels, {"sharpened": sharpened, "jittered": jittered}, float_scores)
    records = choice["candidates"]
    assert set(choice["tied"]) == {"sharpened", "jittered"}
    assert records["sharpened"]["mean_score_difference_to_float"] > records["jittered"]["mean_score_difference_to_float"]
    assert records["sharpened"]["rank_correlation_with_float"] == pytest.approx(1.0)
    assert choice["chosen"] == "sharpened"

def test_without_float_decisions_a_tie_keeps_the_best_score():
    rng, labels, signal = _labels_and_signal(400)
    first = signal + rng.normal(scale=0.3, size=len(signal))
    second = signal + rng.normal(scale=0.3, size=len(signal))
    leader = "first" if pr_auc(labels, first) > pr_auc(labels, second) else "second"
    choice = choose_candidate(labels, {"first": first, "second": second}, None)
    assert choice["chosen"] == leader and set(choice["tied"]) == {"first", "second"}
    assert "no float scores" in choice["chosen_because"]


def test_the_choice_is_reproducible_and_checks_its_input():
    rng, labels, signal = _labels_and_signal(300)
    candidates = {"a": signal, "b": signal + rng.normal(scale=0.3, size=len(signal))}
    assert choose_candidate(labels, candidates, signal, seed=1) == choose_candidate(labels, candidates, signal, seed=1)
    with pytest.raises(ValueError, match="candidate 'b' has 299 validation scores for 300 labels"):
        choose_candidate(labels, {"a": signal, "b": signal[:-1]}, signal)
    with pytest.raises(ValueError, match="the float model has 299 validation scores for 300 labels"):
        choose_candidate(labels, candidates, signal[:-1])
    with pytest.raises(ValueError, match="no candidate"):
        choose_candidate(labels, {}, signal)
