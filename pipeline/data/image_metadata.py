"""The image loader's metadata CSV: group columns (and labels, units) for every image id.

The id column is found by matching its values against the image ids (file names with or
without extension, relative paths; "<split>_<index>" for a .npz). Group columns are
`--sensitive`, or else every column whose name says sex / gender, age, or site / hospital /
centre / institution / scanner; continuous ages are banded as in the tabular loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.delimited_files import read_csv_file
from pipeline.data.splitting import quote_list
from pipeline.data.tabular_columns import binary_label, group_column, name_tokens
from pipeline.errors import InputError

GROUP_NAME_TOKENS = {"sex": "sex", "gender": "sex", "age": "age", "site": "site", "hospital": "site",
                     "centre": "site", "center": "site", "institution": "site", "scanner": "site"}


@dataclass(frozen=True)
class MetadataJoin:
    """What the metadata gives the images, aligned with their ids."""

    groups: pd.DataFrame           # one str column per group column, aligned with the image ids
    labels: np.ndarray | None      # with label_column
    positive_value: str | None
    notes: list[str]
    digest: str                    # sha256 of the CSV bytes
    clusters: np.ndarray | None = None  # with cluster_column: each image's unit (a patient id), str


def _default_group_columns(columns: Sequence[str]) -> list[str]:
    """The first column whose name says sex / gender, age, site ... (one per kind)."""
    chosen, kinds = [], set()
    for column in columns:
        tokens = set(name_tokens(column))
        for token, kind in GROUP_NAME_TOKENS.items():
            if token in tokens and kind not in kinds:
                chosen.append(column)
                kinds.add(kind)
                break
    return chosen


def _match_rows(frame: pd.DataFrame, ids: list[str], alternates: dict[str, list[str]], source: str,
                notes: list[str]) -> tuple[pd.DataFrame, str, list[str]]:
    """(the metadata row of every image, in image order; the id column; the ids matched).

    The id column is the one whose values match the most image ids, of any kind of id that
    names every image once."""
    # a key that names two images (the same file name in two class folders) cannot identify them
    keys = {kind: values for kind, values in {"image id": ids, **alternates}.items()
            if len(set(values)) == len(values)}
    best: tuple[int, str, str] | None = None
    for column in frame.columns:
        values = set(frame[column].dropna().astype(str).str.strip())
        for kind, candidates in keys.items():
            matches = sum(1 for c in candidates if c in values)
            if matches and (best is None or matches > best[0]):
                best = (matches, column, kind)
    if best is None:
        examples = list(alternates.get("file name", ids))[:3]
        raise InputError(
            f"no column of the metadata holds the image ids: the images are named like {quote_list(examples)}, "
            f"the metadata columns are {quote_list(list(frame.columns), 20)}",
            fix="add a column holding each image's file name (with or without extension) to the metadata",
            source=source)
    _, id_column, kind = best
    candidates = keys[kind]
    id_values = frame[id_column].astype(str).str.strip()
    wanted = set(candidates)
    repeated = id_values[id_values.duplicated() & id_values.isin(wanted)]
    if len(repeated):
        raise InputError(f"metadata column {id_column!r} lists image {repeated.iloc[0]!r} more than once "
                         f"({len(repeated)} repeated ids)", fix="keep one row per image in the metadata", source=source)
    position = dict(zip(id_values, range(len(frame))))
    missing = [c for c in candidates if c not in position]
    if missing:
        raise InputError(
            f"the images and the metadata do not match: {len(missing)} of {len(candidates)} images have no row "
            f"(matched by {kind} in column {id_column!r}), e.g. {quote_list(missing, 5)}",
            fix="add a metadata row for every image, or remove the images that have none", source=source)
    rows = frame.iloc[[position[c] for c in candidates]].reset_index(drop=True)
    unused = len(frame) - len(candidates)
    notes.append(f"metadata matched to the images by {kind} in column {id_column!r}"
                 + (f"; {unused} metadata rows without an image were ignored" if unused else ""))
    return rows, id_column, candidates


def _require_values(rows: pd.DataFrame, column: str, role: str, fix: str, ids: list[str], source: str) -> None:
    """InputError when some image has no value in `column`, naming a few of those images."""
    empty = rows[column].isna().to_numpy()
    if empty.any():
        raise InputError(f"{role} column {column!r} is empty for {int(empty.sum())} images, e.g. "
                         f"{quote_list([ids[i] for i in np.flatnonzero(empty)[:3]])}",
                         fix=fix, source=source)


def join_metadata(metadata_path: str, ids: list[str], alternates: dict[str, list[str]], *,
                  sensitive_columns: Sequence[str] = (), label_column: str | None = None,
                  cluster_column: str | None = None, positive_label: str | None = None) -> MetadataJoin:
    """Group columns (and labels, with label_column) for every image id, from a metadata CSV."""
    frame, digest, read_notes = read_csv_file(metadata_path)
    source = str(metadata_path)
    notes = [f"metadata {Path(metadata_path).name}: {len(frame)} rows, {frame.shape[1]} columns", *read_notes]
    frame.columns = [str(c).strip() for c in frame.columns]
    rows, id_column, matched = _match_rows(frame, ids, alternates, source, notes)
    available = [c for c in frame.columns if c != id_column]
    columns = list(dict.fromkeys(str(c) for c in sensitive_columns)) or _default_group_columns(
        [c for c in available if c != label_column])
    if not columns:
        raise InputError(f"no group columns found in the metadata; its columns are {quote_list(available, 20)}",
                         fix="pass --sensitive naming the metadata columns to audit by (e.g. --sensitive sex age site)",
                         source=source)
    for column in columns + ([label_column] if label_column else []) + ([cluster_column] if cluster_column else []):
        if column not in frame.columns:
            raise InputError(f"column {column!r} not found in the metadata; its columns are "
                             f"{quote_list(available, 20)}",
                             fix="pass column names spelled exactly as in the metadata header", source=source)
    if not sensitive_columns:
        notes.append(f"group columns chosen by their names: {quote_list(columns)} (pass --sensitive to choose)")
    groups = {}
    for column in columns:
        if rows[column].isna().all():
            raise InputError(f"group column {column!r} has no values for these images",
                             fix="fill in the column, or pass other columns with --sensitive", source=source)
        groups[column], group_notes = group_column(rows[column], column)
        notes += group_notes
    labels = positive = None
    if label_column is not None:
        _require_values(rows, label_column, "label", "fill in the label of every image", matched, source)
        labels, positive, label_note = binary_label(rows[label_column], label_column, source, positive_label)
        notes.append(label_note)
    clusters = None
    if cluster_column is not None:
        _require_values(rows, cluster_column, "cluster", "fill in every image's patient (or other unit) id", matched,
                        source)
        clusters = rows[cluster_column].astype(str).str.strip().to_numpy(dtype=object)
    groups_frame = pd.DataFrame({c: g.to_numpy(dtype=object) for c, g in groups.items()}).astype(str)
    return MetadataJoin(groups=groups_frame, labels=labels, positive_value=positive, notes=notes, digest=digest,
                        clusters=clusters)
