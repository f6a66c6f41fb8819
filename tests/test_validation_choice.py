"""Choosing a fine-tuned candidate on validation: a lead shown to be small (an equivalence test) is a tie, broken
toward the candidate that ranks rows like the float model; a lead the split cannot bound is not."""

import numpy as np
import pytest

from pipeline.metrics import pr_auc
from pipeline.stages.validation_choice import EQUIVALENCE_MARGIN, choose_candidate


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
    assert record["tied_with_leader"] is False and record["behind_leader_interval"][0] > EQUIVALENCE_MARGIN
    assert record["behind_leader"] == pytest.approx(pr_auc(labels, strong) - pr_auc(labels, weak), abs=1e-5)
    assert "no other candidate provably within 0.005" in choice["chosen_because"]


def test_a_lead_the_split_cannot_bound_is_not_a_tie():
    # AI4I's lesson: a lead whose interval reaches 0 but also far past the margin is no evidence of equality; the
    # leader wins although the other candidate ranks the rows more like the float model
    rng, labels, signal = _labels_and_signal(400)
    float_scores = signal
    close = float_scores + rng.normal(scale=0.02, size=len(signal))    # a gentle change
    moved = float_scores + rng.normal(scale=0.25, size=len(signal))    # a larger change
    moved[np.flatnonzero(labels == 1)[:8]] += 1.0                     # that leads: a few positives lifted
    choice = choose_candidate(labels, {"moved": moved, "close": close}, float_scores, seed=3)
    records = choice["candidates"]
    low, high = records["close"]["behind_leader_interval"]
    assert choice["leader_on_pr_auc"] == "moved" and low < 0 < EQUIVALENCE_MARGIN < high
    assert records["close"]["tied_with_leader"] is False
    assert records["close"]["rank_correlation_with_float"] > records["moved"]["rank_correlation_with_float"]
    assert records["close"]["mean_score_difference_to_float"] == pytest.approx(np.abs(close - float_scores).mean(),
                                                                               abs=1e-6)
    assert choice["chosen"] == "moved"


def _sharpened_and_nudged():
    """The float model's scores, a candidate that sharpens them all (same ranking, every score moved) and one that
    lifts five positives a little (a small real lead on PR-AUC, a few rows reordered)."""
    rng, labels, signal = _labels_and_signal(1000, seed=5)
    float_scores = 1 / (1 + np.exp(-signal))
    sharpened = 1 / (1 + np.exp(-3 * signal))
    nudged = float_scores.copy()
    nudged[np.flatnonzero(labels == 1)[:5]] += 0.02
    return labels, float_scores, {"sharpened": sharpened, "nudged": nudged}


def test_an_equivalent_candidate_that_ranks_like_the_float_model_wins_the_tie():
    # The leader's lead is real (its interval excludes 0) and provably small (inside the margin): a tie, broken by
    # ranking, which is what ROC-AUC and PR-AUC measure, and not by how far the scores moved.
    labels, float_scores, candidates = _sharpened_and_nudged()
    choice = choose_candidate(labels, candidates, float_scores)
    records = choice["candidates"]
    assert choice["leader_on_pr_auc"] == "nudged" and set(choice["tied"]) == {"sharpened", "nudged"}
    low, high = records["sharpened"]["behind_leader_interval"]
    assert 0 < low and high < EQUIVALENCE_MARGIN
    assert records["sharpened"]["mean_score_difference_to_float"] > records["nudged"]["mean_score_difference_to_float"]
    assert records["sharpened"]["rank_correlation_with_float"] == pytest.approx(1.0)
    assert choice["chosen"] == "sharpened"
    assert "rank the rows most like the float model's" in choice["chosen_because"]


def test_without_float_scores_a_tie_keeps_the_best_score():
    labels, _, candidates = _sharpened_and_nudged()
    choice = choose_candidate(labels, candidates, None)
    assert choice["chosen"] == "nudged" and set(choice["tied"]) == {"sharpened", "nudged"}
    assert "no float scores" in choice["chosen_because"]
    assert "rank_correlation_with_float" not in choice["candidates"]["nudged"]


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


def test_a_candidate_with_constant_scores_has_no_rank_correlation_and_never_wins_a_tie_on_it():
    # a collapsed fine-tune: every row scored alike; the record stays JSON (no NaN) and the choice still works
    import json

    labels, float_scores, candidates = _sharpened_and_nudged()
    choice = choose_candidate(labels, {**candidates, "collapsed": np.full(len(labels), 0.5)}, float_scores)
    assert choice["candidates"]["collapsed"]["rank_correlation_with_float"] is None
    assert choice["chosen"] == "sharpened"
    json.dumps(choice, allow_nan=False)
