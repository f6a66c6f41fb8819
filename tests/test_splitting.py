"""The shared sampling, splitting and group checks of pipeline.data.splitting (no TensorFlow here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.data.splitting import (
    SPLIT_FRACTIONS,
    apportion,
    class_balance,
    grouped_partition,
    label_group_strata,
    make_splits,
    measurable_groups,
    partition_bounds,
    quote_list,
    require_measurable_groups,
    small_groups,
    split_by_cluster,
    stratified_partition,
    stratified_sample,
)
from pipeline.errors import InputError


def strata_of(sizes: dict[str, int], seed: int = 0) -> np.ndarray:
    """A shuffled strata array holding each key `sizes[key]` times."""
    values = np.concatenate([np.full(n, key, dtype=object) for key, n in sizes.items()])
    return np.random.default_rng(seed).permutation(values)


# --------------------------------------------------------------------------- apportion


@pytest.mark.parametrize("total", [0, 1, 7, 50, 99, 100])
def test_apportion_sums_to_the_total_and_stays_within_one_of_each_quota(total):
    sizes = np.array([50, 30, 15, 4, 1])
    take = apportion(total, sizes)
    quotas = total * sizes / sizes.sum()
    assert int(take.sum()) == total
    assert np.all(take >= np.floor(quotas)) and np.all(take <= np.ceil(quotas))
    assert np.all(take <= sizes)


def test_apportion_gives_the_units_left_to_the_largest_remainders_ties_to_the_earlier_stratum():
    # quotas 2.5, 2.5, 1.0 for 6 over (5, 5, 2): one unit left, the tie goes to the first stratum
    assert apportion(6, np.array([5, 5, 2])).tolist() == [3, 2, 1]
    # quotas 1.2, 2.7, 3.1 for 7 over (12, 27, 31): floors 1, 2, 3 and the unit left to 0.7
    assert apportion(7, np.array([12, 27, 31])).tolist() == [1, 3, 3]


def test_apportion_never_takes_more_than_a_stratum_holds():
    assert apportion(10, np.array([1, 1])).tolist() == [1, 1]


# --------------------------------------------------------------------------- sampling


def test_a_stratified_sample_keeps_every_stratum_share_and_draws_without_replacement():
    strata = strata_of({"0|a": 600, "0|b": 300, "1|a": 80, "1|b": 20})
    keep = stratified_sample(strata, 250, np.random.default_rng(4))
    assert keep.size == 250 and np.unique(keep).size == 250
    assert np.all(np.diff(keep) > 0)  # sorted
    kept = pd.Series(strata[keep]).value_counts()
    assert kept.to_dict() == {"0|a": 150, "0|b": 75, "1|a": 20, "1|b": 5}


def test_a_stratified_sample_depends_on_the_seed_only():
    strata = strata_of({"x": 70, "y": 30})
    first = stratified_sample(strata, 40, np.random.default_rng([3, 1]))
    again = stratified_sample(strata, 40, np.random.default_rng([3, 1]))
    other = stratified_sample(strata, 40, np.random.default_rng([4, 1]))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


# --------------------------------------------------------------------------- splitting


def test_partition_bounds_round_half_up_and_end_at_the_total():
    assert partition_bounds(10, SPLIT_FRACTIONS) == [0, 6, 8, 10]
    assert partition_bounds(7, SPLIT_FRACTIONS) == [0, 4, 6, 7]   # 4.2 -> 4, 5.6 -> 6
    assert partition_bounds(5, (0.9, 0.1)) == [0, 5, 5]           # 4.5 -> 5
    assert partition_bounds(3, (0.5, 0.5))[-1] == 3


def test_a_stratified_partition_covers_every_row_once_and_keeps_each_class_share():
    labels = np.r_[np.zeros(900, dtype=np.int64), np.ones(100, dtype=np.int64)]
    strata = label_group_strata(labels, None)
    parts = stratified_partition(strata, SPLIT_FRACTIONS, np.random.default_rng(0))
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(labels.size))
    assert [p.size for p in parts] == [600, 200, 200]
    assert [int(labels[p].sum()) for p in parts] == [60, 20, 20]
    assert all(p.dtype == np.int64 for p in parts)


def test_without_shuffling_a_partition_lists_its_rows_stratum_by_stratum():
    strata = np.array(["b", "a", "b", "a", "a", "b"], dtype=object)
    parts = stratified_partition(strata, (0.5, 0.5), np.random.default_rng(1), shuffle_parts=False)
    for part in parts:
        keys = strata[part].tolist()
        assert keys == sorted(keys)  # all of "a" (sorted first), then all of "b"


def test_a_grouped_partition_keeps_every_group_whole():
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 60, size=500)
    strata = label_group_strata(rng.integers(0, 2, size=500), None)
    parts = grouped_partition(groups, strata, SPLIT_FRACTIONS, np.random.default_rng(3))
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(500))
    seen = [set(groups[p].tolist()) for p in parts]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_a_split_by_cluster_keeps_every_unit_in_one_split_and_both_classes_in_each():
    rng = np.random.default_rng(5)
    units = np.array([f"customer {i}" for i in rng.integers(0, 120, size=900)], dtype=object)
    positive_units = {f"customer {i}" for i in range(0, 120, 4)}
    labels = np.array([int(u in positive_units) for u in units], dtype=np.int64)
    parts = split_by_cluster(units, labels, np.random.default_rng([0, 2]))
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(units.size))
    held = [set(units[p].tolist()) for p in parts]
    assert not (held[0] & held[1]) and not (held[0] & held[2]) and not (held[1] & held[2])
    assert all(0 < labels[p].sum() < p.size for p in parts)
    assert len(held[0]) > len(held[1]) and len(held[0]) > len(held[2])  # about 60 / 20 / 20 of the units


def test_label_group_strata_join_the_label_and_the_group():
    strata = label_group_strata(np.array([0, 1, 1]), pd.Series(["F", "M", "F"]))
    assert strata.tolist() == ["0|F", "1|M", "1|F"]
    assert label_group_strata(np.array([0, 1]), None).tolist() == ["0", "1"]


# --------------------------------------------------------------------------- group sizes


def test_small_groups_count_a_group_absent_from_the_test_split_as_zero_when_all_values_are_given():
    values = pd.Series(["b", "a", "a", "c", "a", "b"])
    test = values.iloc[[1, 2, 5]]
    assert small_groups(test, 2, all_values=values) == [("b", 1), ("c", 0)]
    # without all_values only the groups present in the test split are judged
    assert small_groups(test, 2) == [("b", 1)]


def test_measurable_groups_are_those_with_enough_test_rows():
    values = pd.Series(["x", "x", "y", "x", "y", "z"])
    test_mask = np.array([True, True, True, True, False, True])
    assert measurable_groups(values, test_mask, 3) == ["x"]
    assert sorted(measurable_groups(values, test_mask, 1)) == ["x", "y", "z"]


def test_the_measurable_group_check_names_the_column_the_group_and_the_fix():
    groups = {"sex": pd.Series(["F"] * 40 + ["M"] * 40), "age": pd.Series(["18-25"] * 5 + ["26-35"] * 75)}
    test_index = np.arange(0, 80, 2)   # 20 F, 20 M; 3 of "18-25"
    with pytest.raises(InputError) as caught:
        require_measurable_groups(groups, test_index, 10, column_role="sensitive column", unit="rows",
                                  remedy=lambda group: f"merge group {group!r} into a neighbouring group",
                                  max_rows=500, source="claims.csv")
    error = caught.value
    assert error.problem == ("sensitive column 'age': group '18-25' has 3 rows in the test split, fewer than the "
                             "10 needed to measure it (--min-group-size)")
    assert error.fix == ("merge group '18-25' into a neighbouring group (raise --max-rows), or lower "
                         "--min-group-size (now 10)")
    assert error.source == "claims.csv"


def test_the_measurable_group_check_passes_when_every_group_is_large_enough():
    groups = {"site": pd.Series(["A", "B"] * 50)}
    require_measurable_groups(groups, np.arange(100), 50, column_role="group column", unit="images",
                              remedy=lambda group: "use more images", max_rows=None, source="x")
    with pytest.raises(InputError, match=r"group column 'site': group 'A' has 50 images, 'B' has 50 images"
                                         r"(.|\n)*use more images, or lower --min-group-size \(now 51\)"):
        require_measurable_groups(groups, np.arange(100), 51, column_role="group column", unit="images",
                                  remedy=lambda group: "use more images", max_rows=None, source="x")


# --------------------------------------------------------------------------- the result


def test_quote_list_shows_the_first_values_and_counts_the_rest():
    assert quote_list(["a", "b"]) == "'a', 'b'"
    assert quote_list(range(5), 2) == "0, 1, ... (3 more)"
    assert quote_list({"x": 1, "y": 2}) == "'x', 'y'"


def test_make_splits_and_class_balance_describe_each_split():
    labels = np.array([0, 1, 0, 1, 1, 0])
    raw = np.arange(6) * 10
    parts = [np.array([0, 1, 2]), np.array([3]), np.array([4, 5])]
    splits = make_splits(parts, raw_of=lambda index: raw[index], labels=labels,
                         groups={"sex": pd.Series(["F", "M", "F", "M", "F", "M"])},
                         clusters=np.array([1, 1, 2, 3, 3, 4], dtype=object))
    assert splits[0].raw.tolist() == [0, 10, 20]
    assert splits[0].labels.dtype == np.int64
    assert splits[2].groups["sex"].tolist() == ["F", "M"]
    assert list(splits[2].groups.index) == [0, 1]
    assert splits[1].clusters.tolist() == ["3"]
    balance = class_balance(splits, positive_rate=0.5, positives=3)
    assert list(balance) == ["positive_rate", "positives", "train_rows", "validation_rows", "test_rows",
                             "train_positive_rate", "validation_positive_rate", "test_positive_rate"]
    assert balance["validation_positive_rate"] == 1.0 and balance["test_rows"] == 2
