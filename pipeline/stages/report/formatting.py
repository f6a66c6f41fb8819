"""How the model card writes numbers, intervals, sizes and changes in its text and tables."""

from __future__ import annotations

from typing import Any

import numpy as np


def _number(value: Any, digits: int = 4) -> str:
    """n/a, 1,234 for integers, or a float with `digits` decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def _interval_text(interval, digits: int = 4) -> str:
    """`[0.1234, 0.5678]`, or empty without a full interval."""
    if not interval or interval[0] is None or interval[1] is None:
        return ""
    return f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _estimate(estimate: dict | None, digits: int = 3) -> str:
    """`0.812 [0.770, 0.851]` from {"value", "interval"}."""
    if not estimate or estimate.get("value") is None:
        return "n/a"
    interval = estimate.get("interval")
    text = f"{estimate['value']:.{digits}f}"
    if interval and interval[0] is not None and interval[1] is not None:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def _kilobytes(count: int | None) -> str:
    """`12.3 KB` from a byte count, or n/a."""
    return "n/a" if count is None else f"{count / 1024:.1f} KB"


def _cell(value: Any) -> str:
    """A table cell of an extra analysis: numbers as `_number` writes them, anything else as text."""
    return _number(value) if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        else str(value)


def _change(cell: dict | None) -> str:
    """`+0.012 [-0.010, +0.034]` from a compression change, in bold when flagged."""
    if not cell or cell.get("change") is None:
        return "n/a"
    interval = cell.get("interval") or [None, None]
    text = f"{cell['change']:+.3f}"
    if interval[0] is not None:
        text += f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"
    return ("**" + text + "**") if cell.get("flagged") else text


def _value(value):
    """The value of an estimate dict, or the value itself (mitigation reports hold either)."""
    return value.get("value") if isinstance(value, dict) else value
