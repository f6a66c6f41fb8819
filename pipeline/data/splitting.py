"""The one place for sampling, splitting and group checks, shared by every loader.

Every loader (tabular, text, images, sensor histories) does the same few things once it
has its rows, labels and groups: keep a stratified subsample (`stratified_sample`, with
largest-remainder `apportion`), cut train / validation / test stratified by label (and a
group) per stratum (`stratified_partition`), keep rows that belong together on one side
(`grouped_partition`, `split_by_cluster`), check that every audit group has enough test
rows (`small_groups`, `measurable_groups`, `require_measurable_groups`), and assemble the
result (`make_splits`, `class_balance`, `domain_data`). They live here so that each idea
is written once and the loaders read as a list of named steps.

Everything is seeded by the `numpy.random.Generator` the caller passes: the caller owns
the seed streams (e.g. `[seed, 1]` for subsampling, `[seed, 2]` for splitting), so a
loader's numbers do not depend on which helper it calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.domain import DataSource, DomainData, Split
from pipeline.errors import InputError

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def quote_list(values: Sequence[Any] | Any, limit: int = 12) -> str:
    """`'a', 'b', ... (3 more)`: the first `limit` values as reprs, for error messages and notes."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")


# --------------------------------------------------------------------------- sampling


def apportion(total: int, sizes: np.ndarray) -> np.ndarray:
    """Largest-remainder apportionment of `total` over strata of `sizes`, at most `sizes` each.

    Each stratum gets the floor of its proportional quota; the units left go to the largest
    remainders, ties to the earlier stratum. The result sums to `total` whenever
    `total <= sizes.sum()`.
    """
    sizes = np.asarray(sizes)
    quotas = total * sizes / sizes.sum()
    base = np.floor(quotas).astype(np.int64)
    rest = total - int(base.sum())
    order = np.lexsort((np.arange(sizes.size), -(quotas - base)))
    base[order[:rest]] += 1
    return np.minimum(base, sizes)


def stratified_sample(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a subsample of `k` rows keeping every stratum's share (`apportion`).

    Strata are visited in sorted order (`np.unique`); pass integer codes to choose another
    order. Rows are drawn without replacement within each stratum.
    """
    keys, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    take = apportion(k, sizes)
    chosen = [rng.choice(np.flatnonzero(inverse == i), size=int(take[i]), replace=False)
              for i in range(keys.size)]
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------- splitting


def partition_bounds(n: int, fractions: Sequence[float]) -> list[int]:
    """Cut points 0 = b0 <= b1 <= ... = n: b_k rounds (sum of the first k fractions) x n half up."""
    bounds = [0] + [int(math.floor(c * n + 0.5)) for c in np.cumsum(fractions)]
    bounds[-1] = n
    return bounds


def stratified_partition(strata: np.ndarray, fractions: Sequence[float], rng: np.random.Generator, *,
                         shuffle_parts: bool = True) -> list[np.ndarray]:
    """Indices split into len(fractions) parts, each stratum cut by `partition_bounds`.

    Strata are visited in sorted order; each stratum's members are shuffled before the cut.
    With `shuffle_parts` each part is shuffled again at the end (a seeded random row order);
    without, a part lists its rows stratum by stratum.
    """
    keys, inverse = np.unique(strata, return_inverse=True)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for i in range(keys.size):
        members = rng.permutation(np.flatnonzero(inverse == i))
        bounds = partition_bounds(members.size, fractions)
        for k in range(len(fractions)):
            parts[k].append(members[bounds[k]:bounds[k + 1]])
    if not shuffle_parts:
        return [np.concatenate(p).astype(np.int64) for p in parts]
    return [rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts]


def partition_clusters(cluster_of_row: np.ndarray, cluster_strata: np.ndarray, fractions: Sequence[float],
                       rng: np.random.Generator) -> list[np.ndarray]:
    """Rows split by whole clusters: the clusters are partitioned (stratified by `cluster_strata`,
    one entry per cluster), then each part lists the rows of its clusters in a seeded random order.

    cluster_of_row: each row's cluster as an integer code 0..len(cluster_strata)-1.
    """
    parts = stratified_partition(cluster_strata, fractions, rng)
    out = []
    for part in parts:
        chosen = np.zeros(len(cluster_strata), dtype=bool)
        chosen[part] = True
        out.append(rng.permutation(np.flatnonzero(chosen[cluster_of_row])).astype(np.int64))
    return out


def grouped_partition(groups: np.ndarray, strata: np.ndarray, fractions: Sequence[float],
                      rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified partition of whole groups (a group's stratum: that of its first row)."""
    unique, first = np.unique(groups, return_index=True)
    return partition_clusters(np.searchsorted(unique, groups), strata[first], fractions, rng)


def label_group_strata(labels: np.ndarray, group: pd.Series | None) -> np.ndarray:
    """Stratum of each row: "label|group", or the label alone (group None). `group` has a RangeIndex."""
    if group is None:
        return labels.astype(str).astype(object)
    return (pd.Series(labels).astype(str) + "|" + group.astype(str)).to_numpy(dtype=object)


def split_by_cluster(clusters: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                     fractions: Sequence[float] = SPLIT_FRACTIONS) -> list[np.ndarray]:
    """60 / 20 / 20 of the units (all rows of a unit in one split), stratified by whether a unit
    holds a positive row.

    Units are taken in sorted order. (The tabular loader's first version meant to stratify by
    the unit's most common group as well, but that stratum never formed: its group series and
    label series did not share an index, so every unit fell back to the label. The label alone
    is what every split so far used, and is kept so the splits stay the same.)
    """
    frame = pd.DataFrame({"unit": clusters, "label": labels})
    per_unit = frame.groupby("unit", sort=True)["label"].max()
    strata = label_group_strata(per_unit.to_numpy(), None)
    row_unit = pd.Categorical(clusters, categories=per_unit.index).codes
    return partition_clusters(row_unit, strata, fractions, rng)


# --------------------------------------------------------------------------- group sizes


def small_groups(test_values: pd.Series, min_group_size: int, *,
                 all_values: pd.Series | None = None) -> list[tuple[Any, int]]:
    """(group, test rows) of every group with fewer than `min_group_size` test rows.

    all_values: every row's group (not only the test rows): groups are then taken from it in
    sorted order, and a group absent from the test split counts 0. Without it, only groups
    present in the test split are judged, most frequent first (pandas' value_counts order).
    """
    counts = test_values.value_counts()
    if all_values is None:
        return [(group, int(count)) for group, count in counts.items() if count < min_group_size]
    return [(group, int(counts.get(group, 0))) for group in sorted(all_values.unique())
            if counts.get(group, 0) < min_group_size]


def measurable_groups(values: pd.Series, test_mask: np.ndarray, min_group_size: int) -> list[str]:
    """Groups with at least `min_group_size` rows where `test_mask` is true (value_counts order)."""
    counts = values[test_mask].value_counts()
    return [str(g) for g, n in counts.items() if n >= min_group_size]


def require_measurable_groups(groups: Mapping[str, pd.Series], test_index: np.ndarray, min_group_size: int, *,
                              column_role: str, unit: str, remedy: Callable[[Any], str], max_rows: int | None,
                              source: str, exempt: Mapping[str, Sequence[Any]] | None = None) -> None:
    """InputError naming the first column with a group under `min_group_size` test rows, and the fix.

    column_role: how the message names a column ("sensitive column", "group column").
    unit:        what a row is ("rows", "images").
    remedy:      the first advice of the fix, given the first small group ("merge group ... use
                 more rows"); " (raise --max-rows)" and the --min-group-size advice follow.
    exempt:      column -> groups that may be small (the audit reports them as not measurable).
    """
    for column, values in groups.items():
        small = [(group, count) for group, count in small_groups(values.iloc[test_index], min_group_size,
                                                                   all_values=values)
                 if group not in (exempt or {}).get(column, ())]
        if small:
            listed = ", ".join(f"{g!r} has {n} {unit}" for g, n in small)
            raise InputError(
                f"{column_role} {column!r}: group {listed} in the test split, fewer than the "
                f"{min_group_size} needed to measure it (--min-group-size)",
                fix=(remedy(small[0][0]) + (" (raise --max-rows)" if max_rows is not None else "")
                     + f", or lower --min-group-size (now {min_group_size})"),
                source=source)


# --------------------------------------------------------------------------- the result


def make_splits(parts: Sequence[np.ndarray], *, raw_of: Callable[[np.ndarray], Any], labels: np.ndarray,
                groups: Mapping[str, pd.Series], clusters: np.ndarray | None = None) -> list[Split]:
    """One `Split` per index array: raw rows (`raw_of(index)`), int64 labels, one str column per
    group (RangeIndex), and each row's cluster as text when rows belong to units."""
    splits = []
    for index in parts:
        split_groups = pd.DataFrame({c: values.iloc[index].to_numpy(dtype=object)
                                     for c, values in groups.items()}).astype(str)
        splits.append(Split(raw=raw_of(index), labels=labels[index].astype(np.int64), groups=split_groups,
                            clusters=None if clusters is None else clusters[index].astype(str)))
    return splits


def class_balance(splits: Sequence[Split], *, positive_rate: float, positives: int | None = None,
                  units: bool = False) -> dict:
    """The `DomainData.class_balance` every loader reports: the positive rate (and count), then
    each split's rows and positive rate (and, for windows of units, its units)."""
    balance: dict[str, Any] = {"positive_rate": positive_rate}
    if positives is not None:
        balance["positives"] = positives
    balance.update({f"{name}_rows": len(s) for name, s in zip(SPLIT_NAMES, splits)})
    balance.update({f"{name}_positive_rate": float(s.labels.mean()) for name, s in zip(SPLIT_NAMES, splits)})
    if units:
        balance.update({f"{name}_units": int(np.unique(s.raw.units).size) for name, s in zip(SPLIT_NAMES, splits)})
    return balance


def domain_data(splits: Sequence[Split], *, preprocessing: dict, feature_names: Sequence[str],
                feature_groups: dict[str, list[int]], sensitive_columns: Sequence[str], label_name: str,
                positive_class: str, source: DataSource, balance: dict) -> DomainData:
    """The loaders' result from its train / validation / test splits and the rest, named."""
    train, validation, test = splits
    return DomainData(train=train, validation=validation, test=test, preprocessing=preprocessing,
                      feature_names=tuple(feature_names), feature_groups=feature_groups,
                      sensitive_columns=tuple(sensitive_columns), label_name=label_name,
                      positive_class=positive_class, source=source, class_balance=balance)


# --------------------------------------------------------------------------- groups that heal


_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_INTERVAL = re.compile(rf"^([\[(])({_NUMBER}), ({_NUMBER})\]$")   # a quartile: "[0, 24.75]", "(1.5e+06, 2e+06]"
_AGE = re.compile(r"^(\d+)(?:-(\d+)|\+)$")                       # an age band: "18-25", "66+"


def band_bounds(name: str) -> tuple[str, str, str | None] | None:
    """(opening bracket or "", lower bound, upper bound or None for "66+") of a band the tool named; None
    for any other name."""
    interval = _INTERVAL.match(name)
    if interval:
        return interval.group(1), interval.group(2), interval.group(3)
    age = _AGE.match(name)
    if age:
        return "", age.group(1), age.group(2)
    return None


def joined_band(left: str, right: str) -> str:
    """The name of two adjacent bands made one: "56-65" + "66+" -> "56+", "18-25" + "26-35" -> "18-35",
    "[0, 24.75]" + "(24.75, 49.5]" -> "[0, 49.5]"; other names -> "left + right"."""
    first, last = band_bounds(left), band_bounds(right)
    if first is None or last is None:
        return f"{left} + {right}"
    if first[0]:
        return f"{first[0]}{first[1]}, {last[2]}]"
    return f"{first[1]}+" if last[2] is None else f"{first[1]}-{last[2]}"


def merge_small_bands(values: pd.Series, test_index: np.ndarray, min_group_size: int, order: list[str],
                      column: str) -> tuple[pd.Series, list[str]]:
    """Bands the tool made (ages, quartiles) too small to measure in the test split, each merged with
    its smaller neighbour until every band is measurable or one is left. Returns the groups and a
    note per merge (the card and the audit name them)."""
    order, notes = list(order), []
    while len(order) > 1:
        counts = values.iloc[test_index].value_counts()
        small = [band for band in order if counts.get(band, 0) < min_group_size]
        if not small:
            break
        band = min(small, key=lambda name: (counts.get(name, 0), order.index(name)))
        at = order.index(band)
        neighbours = [i for i in (at - 1, at + 1) if 0 <= i < len(order)]
        other = min(neighbours, key=lambda i: (counts.get(order[i], 0), i))
        first, second = sorted((at, other))
        merged = joined_band(order[first], order[second])
        values = values.replace({order[first]: merged, order[second]: merged})
        notes.append(f"group column {column!r}: band {band!r} had {int(counts.get(band, 0))} rows in the test split "
                     f"(fewer than --min-group-size {min_group_size}), so it was merged with its neighbour "
                     f"{order[other]!r} into {merged!r}")
        order[first:second + 1] = [merged]
    return values, notes


OTHER_GROUP = "other"


def merge_small_categories(values: pd.Series, test_index: np.ndarray, min_group_size: int,
                           column: str) -> tuple[pd.Series, list[str]]:
    """--merge-small-groups: every group of the user's own categories under `min_group_size` test rows
    merged into OTHER_GROUP (noted). A group already named "other" takes them."""
    counts = values.iloc[test_index].value_counts()
    small = [group for group in values.unique() if counts.get(group, 0) < min_group_size and group != OTHER_GROUP]
    if not small:
        return values, []
    merged = values.where(~values.isin(small), OTHER_GROUP)
    listed = ", ".join(f"{group!r} ({int(counts.get(group, 0))})" for group in sorted(small, key=str))
    return merged, [f"group column {column!r}: groups {listed} had fewer than --min-group-size {min_group_size} "
                    f"rows in the test split and were merged into {OTHER_GROUP!r} (--merge-small-groups)"]
