"""The rows of the test split split into groups: one partition per sensitive column, plus their intersection.

Every per-group number of the audit and of the mitigation is computed over these partitions, so
the groups' names, their report order and the intersection's naming live here only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# How the intersection of the sensitive columns is named.
INTERSECTION_JOIN = " × "
VALUE_JOIN = " | "


@dataclass(frozen=True)
class _Partition:
    """The rows of the test split split by one sensitive column (or the intersection)."""

    name: str
    values: np.ndarray  # one group name (str) per row
    groups: tuple[str, ...]  # report order
    rows: dict[str, np.ndarray]  # group -> row indices
    unmeasurable: dict[str, str]  # group -> reason (too few rows)

    @property
    def measurable_groups(self) -> list[str]:
        return [g for g in self.groups if g not in self.unmeasurable]


def intersection_name(columns: list[str] | tuple[str, ...]) -> str:
    """Name of the intersection of several sensitive columns, e.g. "Sex × AgeBand"."""
    return INTERSECTION_JOIN.join(columns)


def _group_order(column: pd.Series) -> list[str]:
    """Groups of a column in report order: category order if categorical, else sorted."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.astype(str))
        return [str(c) for c in column.cat.categories if str(c) in present]
    return sorted(set(column.astype(str)))


def _partitions(groups: pd.DataFrame, min_group_size: int) -> list[_Partition]:
    groups = groups.rename(columns=str)
    columns = list(groups.columns)
    as_text = {c: groups[c].astype(str).to_numpy(dtype=object) for c in columns}
    parts: list[tuple[str, np.ndarray, list[str]]] = [
        (c, as_text[c], _group_order(groups[c])) for c in columns
    ]
    if len(columns) >= 2:
        values = as_text[columns[0]].copy()
        for c in columns[1:]:
            values = values + VALUE_JOIN + as_text[c]
        orders = [_group_order(groups[c]) for c in columns]
        # Nested order of the single columns (Sex first, then AgeBand within it ...).
        present = set(values)
        order: list[str] = [""]
        for level in orders:
            order = [f"{prefix}{VALUE_JOIN}{v}" if prefix else v for prefix in order for v in level]
        parts.append((intersection_name(columns), values, [v for v in order if v in present]))

    result = []
    for name, values, order in parts:
        rows = {g: np.flatnonzero(values == g) for g in order}
        unmeasurable = {
            g: f"{len(r)} rows, fewer than min_group_size={min_group_size}"
            for g, r in rows.items() if len(r) < min_group_size
        }
        result.append(_Partition(name, np.asarray(values, dtype=object), tuple(order), rows, unmeasurable))
    return result


def _sensitive_values(groups: pd.DataFrame, column: str) -> np.ndarray:
    """The group name of every row for one sensitive column, or for the intersection by its name."""
    groups = groups.rename(columns=str)
    columns = list(groups.columns)
    if column in columns:
        return groups[column].astype(str).to_numpy(dtype=object)
    if len(columns) >= 2 and column == intersection_name(columns):
        values = groups[columns[0]].astype(str).to_numpy(dtype=object)
        for c in columns[1:]:
            values = values + VALUE_JOIN + groups[c].astype(str).to_numpy(dtype=object)
        return values
    raise ValueError(f"unknown sensitive column {column!r}; known: {', '.join(columns)}"
                     + (f", {intersection_name(columns)}" if len(columns) >= 2 else ""))
