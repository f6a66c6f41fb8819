"""--positive-label: the label value (or image class) that means 1, every other value 0.

One rule for every modality (tables, texts, image class folders): the user names the outcome
to detect, and the loader maps one-vs-rest and says so. A value that does not occur is an
error naming the values found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from pipeline.errors import InputError

OPTION = "--positive-label"


def match_positive(values: Sequence[str], positive: str, *, what: str, source: str) -> str:
    """The value of `values` that `positive` names: exactly, else the one equal to it ignoring case
    and surrounding spaces. InputError naming the values found (most frequent first) when none is."""
    counts = Counter(str(value) for value in values)
    wanted = str(positive).strip()
    if wanted in counts:
        return wanted
    folded = [value for value in counts if value.strip().casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    found = sorted(counts, key=lambda value: (-counts[value], value))
    shown = ", ".join(f"{value!r} ({counts[value]:,})" for value in found[:12])
    more = f", ... ({len(found) - 12} more)" if len(found) > 12 else ""
    raise InputError(f"{OPTION} {positive!r} is not a value of {what}; it holds {shown}{more}",
                     fix=f"pass one of the values found, e.g. {OPTION} {found[-1] if found else '1'!r}"
                         " (the outcome to detect; every other value becomes 0)", source=source)


def one_vs_rest(values: Sequence[str], positive: str, *, what: str, source: str) -> tuple[np.ndarray, str, str]:
    """0/1 labels with `positive` -> 1 and every other value -> 0; (labels, the matched value, a note
    naming the mapping and the class counts)."""
    values = [str(value) for value in values]
    matched = match_positive(values, positive, what=what, source=source)
    labels = np.array([value == matched for value in values], dtype=np.int64)
    counts = Counter(values)
    others = [value for value in sorted(counts, key=lambda value: (-counts[value], value)) if value != matched]
    if not others:
        raise InputError(f"{what} holds only {matched!r}; with {OPTION} {positive!r} there is no class 0",
                         fix="use data that also holds other values, or name another positive value", source=source)
    note = (f"{what}: {matched!r} -> 1 ({int(labels.sum()):,} rows, {OPTION}), every other value -> 0 "
            f"({len(labels) - int(labels.sum()):,} rows: " + ", ".join(f"{value!r} {counts[value]:,}"
                                                                        for value in others[:8])
            + (", ..." if len(others) > 8 else "") + ")")
    return labels, matched, note
