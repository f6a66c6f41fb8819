"""Results made JSON-able: numpy scalars become Python ones, NaN and infinities become None."""

from __future__ import annotations

import numpy as np

from pipeline.metrics import finite_or_none


def _json_safe(value):
    """Recursively turn numpy scalars into Python ones and NaN / infinities into None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    return value
