"""`selective_int8`: full-integer int8 with the layers that hurt a group most kept in float.

Users of TFLite ask for per-layer error they can map to their layers and for keeping the harmful
layers in float (tensorflow#61720, #62923, #46073, #52266). Overall accuracy is the usual target of
such a search; ours is the audit's: the *worst group's* change of TPR or FPR against the float
model, on the validation split (every choice is made there; the test split only reports).

The search is greedy. It starts from int8 as the quantization debugger quantizes it
(layer_errors.Debugger: the same calibration and per-channel settings as the int8 variant) and,
while the worst group's change is over the gate's limit (`max_gap_widening`), tries keeping each
remaining quantized layer in float (the quantizer's `denylisted_nodes`), evaluates each candidate
in LiteRT on the validation rows with its own threshold chosen there, and keeps the layer whose
restoration lowers the worst change most (ties: the smaller file). A step that does not help is
still taken: keeping one layer in float changes nothing while its int8 neighbour still quantizes
the same tensor, and helps once the neighbour follows. The search stops inside the limit, when the
next file would pass the byte budget (1.25x the int8 file by default), or after 8 layers; the best
set seen is kept, and every layer in it that it does not need is dropped again (backward pass).

Where int8 is already inside the limit on validation there is nothing to repair: the variant is
skipped and says so. A restored layer whose ops are still int8 in the file (a denylisted name that
did not match: TensorFlow ignores those silently) is reported, not counted.

`search` runs in the compression child, on the models it is handed (it imports no TensorFlow); a
candidate is judged by group_harm.py, as the calibration-set audit judges its candidates.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from pipeline.stages.group_harm import HarmTarget, describe, judge

# The largest file selective int8 may grow to, as a multiple of the int8 file.
BYTE_BUDGET_RATIO = 1.25
# The most layers the forward search keeps in float.
MAX_RESTORED = 8


def search(*, quantize: Callable[[list[str]], bytes], predict: Callable[[bytes, np.ndarray], np.ndarray],
           float_tensors: Callable[[bytes], set[str]], latency: Callable[[bytes], float], layers: list[dict],
           int8_bytes: int, features: np.ndarray, labels: np.ndarray, target: HarmTarget,
           byte_budget_ratio: float = BYTE_BUDGET_RATIO, report: Callable[[str], None] = lambda _: None) -> dict:
    """The greedy search. Returns {"status": "ok" | "skipped", "tflite": bytes | None, "details": {...}}.

    quantize(denylist): the model with those tensors' ops in float; predict(model, features): its scores;
    float_tensors(model): the names of its float32 tensors (to check a restored layer really is float);
    latency(model): its median single-example latency in ms (LiteRT, one thread);
    layers: layers.json's rows of int8 (candidates, tried from the largest RMSE / scale down).
    """
    def judged(model: bytes) -> dict:
        result = judge(predict(model, features), labels, target)
        return {"worst": result["worst"], "threshold": result["threshold"], "bytes": len(model), "model": model}

    started = time.monotonic()
    budget = int(byte_budget_ratio * int8_bytes)
    start = judged(quantize([]))
    start["latency_ms"] = latency(start["model"])
    limit = target.max_change
    details = {"limit": limit, "byte_budget": budget, "int8_bytes": int(int8_bytes),
               "start": _public(start), "restored": [], "tried": 0}
    if abs(start["worst"]["change"]) <= limit:
        details["seconds"] = round(time.monotonic() - started, 3)
        return {"status": "skipped", "tflite": None, "details": details,
                "reason": (f"int8 already keeps every group's TPR and FPR within {limit} of the float model on "
                           f"validation (worst {describe(start['worst'])}): no layer to restore")}
    candidates: list[dict] = []
    for row in sorted(layers, key=lambda r: -(r.get("rmse_over_scale") or 0.0)):
        if row["tensor_name"] not in [c["tensor_name"] for c in candidates]:
            candidates.append(row)
    by_name = {row["tensor_name"]: row for row in candidates}

    def key(result: dict) -> tuple[float, int]:
        return abs(result["worst"]["change"]), result["bytes"]

    # Forward: restore the best layer each step, even one that does not help alone (keeping one layer of an
    # int8 pair in float can change nothing until its neighbour follows), and remember the best set seen.
    current, denylist = start, []
    best, best_denylist = start, []
    while abs(current["worst"]["change"]) > limit and candidates and len(denylist) < MAX_RESTORED:
        step = None
        for row in candidates:
            model = quantize(denylist + [row["tensor_name"]])
            details["tried"] += 1
            if len(model) > budget:
                continue
            result = judged(model)
            if step is None or key(result) < key(step[1]):
                step = (row, result)
        if step is None:
            details["stopped"] = "the byte budget"
            break
        row, current = step
        denylist.append(row["tensor_name"])
        candidates.remove(row)
        if key(current) < key(best):
            best, best_denylist = current, list(denylist)
    # Backward: drop every restored layer the best set does not need (its worst change no worse without it).
    for name in list(best_denylist):
        trial = [other for other in best_denylist if other != name]
        result = judged(quantize(trial))
        details["tried"] += 1
        if abs(result["worst"]["change"]) <= max(limit, abs(best["worst"]["change"])) and result["bytes"] <= budget:
            best, best_denylist = result, trial
    # What each kept layer cost, added in order.
    previous = start
    for index, name in enumerate(best_denylist):
        result = judged(quantize(best_denylist[:index + 1]))
        result["latency_ms"] = latency(result["model"])
        row = by_name[name]
        details["restored"].append({
            "keras_layer": row.get("keras_layer"), "tensor_name": name, "op": row.get("op"),
            "rmse_over_scale": row.get("rmse_over_scale"), "float_in_file": name in float_tensors(result["model"]),
            "worst_after": result["worst"], "bytes_after": result["bytes"],
            "bytes_added": result["bytes"] - previous["bytes"], "latency_ms_after": result["latency_ms"],
            "latency_ms_added": result["latency_ms"] - previous["latency_ms"]})
        report(f"kept {row.get('keras_layer') or name} in float: worst group change {describe(result['worst'])}, "
               f"{result['bytes']:,} bytes")
        previous = result
    final = previous
    details["final"] = _public(final)
    details["within_limit"] = bool(abs(final["worst"]["change"]) <= limit)
    details.setdefault("stopped", "inside the limit" if details["within_limit"] else
                       "no set of restored layers within the budget brought it inside the limit")
    details["seconds"] = round(time.monotonic() - started, 3)
    return {"status": "ok", "tflite": final["model"], "details": details, "reason": None}


def _public(judgement: dict) -> dict:
    return {"worst": judgement["worst"], "threshold": judgement["threshold"], "bytes": judgement["bytes"],
            "latency_ms": judgement.get("latency_ms")}
