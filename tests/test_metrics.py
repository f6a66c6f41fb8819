"""Decision thresholds: each rule picks the threshold that maximises its own criterion."""

import numpy as np
import pytest

from pipeline.config import THRESHOLD_RULES, RunConfig
from pipeline.errors import InputError
from pipeline.metrics import choose_threshold


def _criterion(rule: str, labels: np.ndarray, decisions: np.ndarray) -> float:
    true_positive = int(((decisions == 1) & (labels == 1)).sum())
    false_positive = int(((decisions == 1) & (labels == 0)).sum())
    false_negative = int(((decisions == 0) & (labels == 1)).sum())
    true_negative = int(((decisions == 0) & (labels == 0)).sum())
    if rule == "f1":
        return 2 * true_positive / max(2 * true_positive + false_positive + false_negative, 1)
    if rule == "accuracy":
        return (true_positive + true_negative) / labels.size
    return true_positive / (true_positive + false_negative) - false_positive / (false_positive + true_negative)


@pytest.mark.parametrize("rule", list(THRESHOLD_RULES))
@pytest.mark.parametrize("positive_rate", [0.05, 0.5])
def test_each_rule_finds_the_best_threshold_of_its_criterion(rule, positive_rate):
    rng = np.random.default_rng(3)
    labels = (rng.random(1500) < positive_rate).astype(np.int64)
    scores = np.clip(rng.normal(0.35 + 0.25 * labels, 0.18), 0, 1).round(3)  # rounded: ties exist
    threshold = choose_threshold(labels, scores, rule)
    achieved = _criterion(rule, labels, (scores >= threshold).astype(np.int64))
    best = max(_criterion(rule, labels, (scores >= c).astype(np.int64)) for c in np.unique(scores))
    assert achieved == pytest.approx(best, abs=1e-12)
    assert threshold in set(scores.tolist())  # a real score, so a device reproduces the decisions


def test_the_rules_disagree_where_they_should():
    # Balanced classes; where the scores overlap, negatives are denser: accuracy flags only
    # above the overlap, F1 (which never counts true negatives) flags all of it.
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 2000)
    scores = np.concatenate([rng.uniform(0.0, 0.6, 2000), rng.uniform(0.3, 1.0, 2000)])
    f1, accuracy = choose_threshold(labels, scores, "f1"), choose_threshold(labels, scores, "accuracy")
    assert f1 < accuracy
    assert ((scores >= accuracy) == labels).mean() > ((scores >= f1) == labels).mean()


def test_one_class_falls_back_to_one_half_and_an_unknown_rule_is_refused():
    assert choose_threshold(np.zeros(10), np.linspace(0, 1, 10), "accuracy") == 0.5
    with pytest.raises(ValueError, match="'median' is unknown"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), "median")


def test_the_run_option_is_checked_with_a_fix():
    assert RunConfig(domain="fraud", threshold_rule="youden").validate().threshold_rule == "youden"
    with pytest.raises(InputError, match="--threshold-rule is 'median'") as caught:
        RunConfig(domain="fraud", threshold_rule="median").validate()
    assert "accuracy" in caught.value.fix
