"""Fairness audit of every model variant, and of what compression did to each group.

Pure functions: no file I/O, no TensorFlow. The caller hands in labels, the sensitive
groups and each variant's `Predictions` on the test split; everything returned is JSON-able
(str keys, Python scalars, lists, dicts; NaN becomes None) or a matplotlib `Figure`.

Three things are computed per variant (`audit_variants`):

* ``by_group``: count, positives, selection rate, TPR, FPR, precision and ROC-AUC of every
  group of every sensitive column and of their intersection, each with a bootstrap 95 %
  interval;
* ``disparities``: demographic-parity difference and ratio, equalized-odds difference
  (Fairlearn's functions) and the TPR / FPR gaps between the best and worst group;
* ``compression``: the change of TPR, FPR and ROC-AUC of each variant against the reference
  (the float Keras model) in every group, with a *paired* bootstrap interval, flagged where
  the interval excludes zero; and the change of the TPR / FPR gaps.

Why our own bootstrap rather than ``MetricFrame(n_boot=..., ci_quantiles=...)``: Fairlearn
0.15 re-samples the whole table with ``DataFrame.sample`` and re-runs every metric through
pandas ``groupby`` and scikit-learn for each replicate. Measured here (2 CPU cores) on 4,000
rows and one 6-group column, 200 replicates took 19 s for five decision metrics and 5 s more
for ROC-AUC; the audit needs 8 variants x 3 columns of that (about 10 minutes). It also
(a) resamples the whole table, so group sizes vary and a small group can vanish from a
replicate; (b) draws independently per MetricFrame, so the variant/reference pairing the
compression table needs is only an accident of equal seeds; (c) crashes when a metric
raises on a one-class replicate (ROC-AUC).

So every per-group number comes from one vectorised code path, stratified by group: for
every group one matrix of resampling counts is drawn (seeded by seed, column and group
name) and reused for every variant, so all variants see the same resamples (paired); TPR,
FPR, precision and selection rate are matrix products of those counts and ROC-AUC a
weighted rank (Mann-Whitney) formula. The point estimate is the same code with unit
weights, so value and interval cannot disagree. Even without a bootstrap, MetricFrame is
not used for the point estimates: with 8 variants x 3 columns it made the audit 10.7 s instead of 2.6 s
(its metric wrapper ``np.stack``-s every column per group and per metric), and Fairlearn's
``true_positive_rate`` returns 0.0, not "undefined", for a group without positives. The
tests check these numbers against MetricFrame and scikit-learn. The disparities use
Fairlearn's own ``demographic_parity_difference``, ``demographic_parity_ratio`` and
``equalized_odds_difference`` (on the rows of the groups where they are meaningful: the
measurable groups, and for equalized odds those with both classes, since Fairlearn would
count an undefined TPR as 0).

Intervals, each built for its statistic and each holding its own point value (their
coverage on simulated data with known truths is measured by benchmarks/interval_coverage.py
and shown in BENCHMARKS.md):

* a group's rate (selection rate, TPR, FPR, precision): the bootstrap percentile interval,
  widened where needed to Wilson's score interval, which a small group's bootstrap cannot
  reach (at 9 of 9 every replicate is 1);
* a gap (max - min over groups: TPR and FPR gaps, equalized odds, demographic-parity
  difference; and the ratio): the percentile interval shifted by the bootstrap's estimate of
  its bias. The plain percentile interval of a max - min gap is biased upwards (the maximum
  of noisy group values exceeds the true maximum): the point value fell outside its own
  "95 %" interval in 20 of 120 cases of a fraud run. Simultaneous (max-t) group intervals
  were tried too: they always cover, but measured 100 % coverage at 1.8 times the width;
* a group's rate change under compression (paired): change ± 1.96 errors, the error being
  the paired bootstrap's or Agresti-Min's for paired proportions, whichever is larger (with
  a handful of flipped decisions the bootstrap alone has a few discrete values);
* ROC-AUC, its change, and changes of gaps: paired percentile intervals.

Where each part lives (one module per idea):

* ``partitions.py``: the groups of each sensitive column and of the intersection, their order;
* ``bootstrap.py``: the resampling counts and every group metric of every replicate;
* ``intervals.py``: each statistic's estimate and 95 % interval (the list above);
* ``groups.py``: per group, point values, replicates and the table of estimates;
* ``disparities.py``: Fairlearn's disparities and the TPR / FPR gaps per partition;
* ``compression.py``: the paired changes against the reference, and the summary;
* ``variants.py``: ``audit_variants``, which puts the above together;
* ``predictions.py``: ``prediction_table``, the rows of ``predictions.csv``;
* ``mitigation.py``: ``mitigate_with_threshold_optimizer``;
* ``figures.py``: ``audit_figures``.
"""

from __future__ import annotations

# Re-exported: every name other modules and the tests import from pipeline.stages.audit.
from pipeline.stages.audit.bootstrap import _bootstrap_weights, _weighted_auc, bootstrap_counts
from pipeline.stages.audit.compression import COMPRESSION_METRICS
from pipeline.stages.audit.figures import DEFAULT_SHIP_VARIANT, audit_figures
from pipeline.stages.audit.groups import GROUP_METRICS
from pipeline.stages.audit.intervals import CI_QUANTILES
from pipeline.stages.audit.mitigation import mitigate_with_threshold_optimizer
from pipeline.stages.audit.partitions import INTERSECTION_JOIN, VALUE_JOIN, intersection_name
from pipeline.stages.audit.predictions import prediction_table
from pipeline.stages.audit.variants import audit_variants

__all__ = [
    "audit_variants",
    "mitigate_with_threshold_optimizer",
    "audit_figures",
    "intersection_name",
    "CI_QUANTILES",
    "GROUP_METRICS",
    "COMPRESSION_METRICS",
]
