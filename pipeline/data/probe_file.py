"""The user's counterfactual probe file (--probe), read and validated by the sentiment domain's
loader; pipeline.explainers.probes runs it. Its format is described there."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.splitting import quote_list as _quote_list
from pipeline.data.text_read import find_column as _find_column
from pipeline.data.text_read import map_labels, read_text_table
from pipeline.errors import InputError

REFERENCE_AXIS = "reference"
REFERENCE_NAMES = ("reference", "unmarked", "neutral", "none", "baseline")
MIN_GROUP_ROWS = 2


@dataclass(frozen=True)
class Probe:
    texts: tuple[str, ...]
    axes: tuple[str, ...]                 # per text; the reference rows have axis REFERENCE_AXIS
    groups: tuple[str, ...]               # per text
    reference_group: str
    templates: tuple[str, ...] | None     # pairing key per text; None: unpaired
    labels: tuple[int | None, ...] | None
    subjects: tuple[str, ...] | None      # the swapped words per text (default probe), for OOV checks
    source: str
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.texts)



def read_probe_file(path: str) -> Probe:
    """The user's probe file (text, group[, label][, axis][, template]), validated."""
    if not Path(path).is_file():
        raise InputError("probe file not found" if not Path(path).exists() else "the probe path is not a file",
                         fix="check the path given with --probe (a CSV with columns text, group[, label])",
                         source=str(path))
    frame, _, read_notes = read_text_table(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = list(frame.columns)

    def column(*names: str, required: bool) -> str | None:
        for name in names:
            found = _find_column(frame, name)
            if found is not None:
                return found
        if required:
            raise InputError(f"the probe file has no {names[0]!r} column (columns: {_quote_list(columns)})",
                             fix="give the probe file a header with the columns text, group and optionally label, "
                                 "axis and template, e.g. 'text,group,label'", source=path)
        return None

    text_column = column("text", "sentence", required=True)
    group_column = column("group", required=True)
    label_column = column("label", "sentiment", required=False)
    axis_column = column("axis", required=False)
    template_column = column("template", "pair", "pair_id", required=False)
    texts = [str(v) for v in frame[text_column].tolist()]
    groups = [str(v).strip() for v in frame[group_column].tolist()]
    for what, values in (("text", texts), ("group", groups)):
        empty = [i + 1 for i, v in enumerate(values) if not v.strip()]
        if empty:
            raise InputError(f"the probe file has an empty {what} in row(s) {_quote_list(empty, 8)} (counting rows "
                             f"after the header)", fix=f"fill in every {what}, or delete those rows", source=path)
    counts = Counter(groups)
    if len(counts) < 2:
        raise InputError(f"the probe file has a single group ({_quote_list(list(counts))}); a probe compares groups",
                         fix="add the same sentences for at least one other group (and ideally a 'reference' "
                             "group with the identity term left out)", source=path)
    small = [g for g, n in counts.items() if n < MIN_GROUP_ROWS]
    if small:
        raise InputError(f"probe group(s) {_quote_list(small)} have fewer than {MIN_GROUP_ROWS} texts",
                         fix="give every group several sentences (the gap is an average with an interval)",
                         source=path)
    notes = list(read_notes)
    named = [g for g in counts if g.lower() in REFERENCE_NAMES]
    if named:
        reference = named[0]
        notes.append(f"reference group {reference!r} (named so)")
    else:
        reference = groups[0]
        notes.append(f"no group is named {' / '.join(REFERENCE_NAMES)}: the first group of the file, "
                     f"{reference!r}, is the reference")
    labels = None
    if label_column is not None:
        raw = [str(v).strip() for v in frame[label_column].tolist()]
        present = [v for v in raw if v]
        mapped = map_labels(present, label_column, path)[0] if present else np.zeros(0, dtype=np.int64)
        it = iter(mapped.tolist())
        labels = tuple(next(it) if v else None for v in raw)
    axes = tuple(str(v).strip() or "group" for v in frame[axis_column].tolist()) if axis_column else \
        tuple("group" for _ in groups)
    axes = tuple(REFERENCE_AXIS if g == reference else a for a, g in zip(axes, groups))
    templates = None
    if template_column is not None:
        templates = tuple(str(v).strip() for v in frame[template_column].tolist())
        notes.append(f"paired by column {template_column!r}: each group's texts are compared with the reference "
                     f"texts of the same template")
    else:
        notes.append("no template column: gaps are differences of group means (unpaired bootstrap); add a "
                     "'template' column shared by the versions of one sentence for paired, tighter intervals")
    return Probe(texts=tuple(texts), axes=axes, groups=tuple(groups), reference_group=reference,
                 templates=templates, labels=labels, subjects=None, source=str(path), notes=tuple(notes))
