"""Tables the dashboard's pages and the static report share: trade-off rows with their Pareto fronts,
where to print labels on a scatter, configuration differences between runs, and cell formatting.

Pure functions over the runs' JSON (dicts), no file I/O.
"""

from __future__ import annotations

from typing import Any

# Metrics where a smaller value is better (everything else: larger is better).
_LOWER_IS_BETTER = {"brier", "expected_calibration_error", "loss", "mae", "rmse", "mse", "log_loss"}


def higher_is_better(metric: str | None) -> bool:
    """Whether a larger value of this metric is better (Brier, losses and errors are not)."""
    return (metric or "") not in _LOWER_IS_BETTER


def pareto_flags(points: list[tuple[float, ...]], larger_is_better: tuple[bool, ...]) -> list[bool]:
    """For each point, whether no other point is at least as good on every axis and better on one."""
    def at_least(a: float, b: float, larger: bool) -> bool:
        return a >= b if larger else a <= b

    flags = []
    for i, point in enumerate(points):
        dominated = any(
            all(at_least(other[k], point[k], larger_is_better[k]) for k in range(len(point)))
            and any(other[k] != point[k] for k in range(len(point)))
            for j, other in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def _number(value: Any) -> float | None:
    """A number as float, or None for anything else (booleans included)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]..., or None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def tradeoff_rows(manifest: dict, metrics: dict | None, compression: dict | None = None,
                  gate: dict | None = None) -> list[dict]:
    """One row per variant: quality, decision threshold, size, latency, sparsity, agreement, shipped, Pareto.

    `pareto_size` is the front of (smaller file, better headline metric); `pareto_all` the
    front of (smaller file, lower latency, better headline metric). Variants that failed
    to build are listed with their reason and no numbers. Unknown keys are ignored.
    """
    metrics = metrics or {}
    headline = metrics.get("headline_metric") or manifest.get("headline_metric") or "pr_auc"
    ship = (gate or {}).get("ship_variant") or manifest.get("ship_variant")
    rows = []
    for name, result in (metrics.get("variants") or {}).items():
        if not isinstance(result, dict):
            continue
        rows.append({
            "variant": name, "status": "ok", "reason": None, "shipped": name == ship,
            "headline": _number(_get(result, "quality", headline)),
            "threshold": _number(_get(result, "quality", "threshold")),
            "bytes": _number(_get(result, "size", "bytes")), "gzip_bytes": _number(_get(result, "size", "gzip_bytes")),
            "ratio_to_float32": _number(_get(result, "size", "ratio_to_float32")),
            "sparsity": _number(_get(result, "sparsity", "sparsity")),
            "latency_ms": _number(_get(result, "latency", "median_ms")),
            "identical_decisions": _number(_get(result, "agreement", "identical_decisions")),
            "changed_decisions": _number(_get(result, "agreement", "changed_decisions")),
            "max_score_difference": _number(_get(result, "agreement", "max_score_difference")),
        })
    known = {row["variant"] for row in rows}
    failed = {}
    for name, result in (compression or {}).items():
        if isinstance(result, dict) and result.get("status") not in (None, "ok") and name not in known:
            failed[name] = result.get("reason") or result.get("status")
    for variant in manifest.get("variants") or []:
        if isinstance(variant, dict) and variant.get("status") not in (None, "ok") and variant.get("name") not in known:
            failed.setdefault(variant["name"], variant.get("reason") or variant.get("status"))
    larger = higher_is_better(headline)
    measured = [row for row in rows if row["headline"] is not None and row["bytes"] is not None]
    for row, flag in zip(measured, pareto_flags([(r["bytes"], r["headline"]) for r in measured], (False, larger))):
        row["pareto_size"] = flag
    timed = [row for row in measured if row["latency_ms"] is not None]
    for row, flag in zip(timed, pareto_flags([(r["bytes"], r["latency_ms"], r["headline"]) for r in timed],
                                             (False, False, larger))):
        row["pareto_all"] = flag
    for row in rows:
        row.setdefault("pareto_size", False)
        row.setdefault("pareto_all", False)
    for name, reason in failed.items():
        rows.append({"variant": name, "status": "failed", "reason": str(reason), "shipped": name == ship,
                     "pareto_size": False, "pareto_all": False})
    return rows


def label_heights(xs: list[float], ys: list[float], *, plot_height_px: float, y_span: float | None = None,
                  line_px: float = 13.0, near_x: float = 0.12, lift_px: float = 8.0) -> list[float]:
    """Where to print each point's name on a scatter, in the y axis's units, so that no two names overlap.

    Names are printed to the right of their points. Points whose x lie within `near_x` of the x
    span of each other form one column of names; in a column, from the top down, each name goes
    `lift_px` above its point unless that is less than `line_px` below the name above it, in
    which case it goes exactly that far below. `plot_height_px` is the height `y_span` (by default
    the span of `ys`; larger when the axis shows more, such as a reference line) is drawn on.
    Returns one y per point, in the input's order."""
    if not ys:
        return []
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = y_span or (max(ys) - min(ys)) or 1.0
    per_px = span_y / max(plot_height_px, 1.0)
    columns: list[list[int]] = []
    for index in sorted(range(len(xs)), key=lambda i: xs[i]):
        if columns and abs(xs[index] - xs[columns[-1][0]]) < near_x * span_x:
            columns[-1].append(index)
        else:
            columns.append([index])
    heights = [0.0] * len(ys)
    for column in columns:
        previous = None
        for index in sorted(column, key=lambda i: -ys[i]):
            wanted = ys[index] + lift_px * per_px
            if previous is not None:
                wanted = min(wanted, previous - line_px * per_px)
            heights[index] = previous = wanted
    return heights


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": leaf} of a nested dict (lists kept as leaves), for config comparisons."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_differences(a: dict, b: dict) -> list[dict]:
    """[{setting, a, b}] for every configuration value that differs between two manifests."""
    first, second = flatten(a.get("config") or {}), flatten(b.get("config") or {})
    differences = []
    for key in sorted(set(first) | set(second)):
        if first.get(key) != second.get(key):
            differences.append({"setting": key, "a": first.get(key), "b": second.get(key)})
    return differences


def format_value(value: Any, digits: int = 4) -> str:
    """A value for a table cell: n/a, yes/no, 1,234 or 0.1234."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
