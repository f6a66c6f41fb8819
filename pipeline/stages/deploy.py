"""Deploy: which variant fits which device, and which one ships.

Pure functions over measured values (no file I/O, no timing of their own):

  * `variant_deployment` puts together what one variant needs on a device: flash (its
    model bytes), what the microcontroller runtime made of it (pipeline.stages.microcontroller),
    and how the microcontroller's decisions on the test split compare with LiteRT's;
  * `choose_variant` is the decision rule of `--ship auto`: among the variants that fit
    every named target, the first in `ORDER` whose gate checks, **measured on the
    validation split**, all pass. The test split only reports and gates the choice
    afterwards (pipeline.stages.gate), so the choice is never tuned on test data;
  * `device_sources` writes the C source and header a firmware build compiles in, and
    `python_snippet` the few lines that run the shipped `.tflite` on one raw example.
"""

from __future__ import annotations

import functools
import json

import numpy as np

from pipeline.config import ALL_VARIANTS
from pipeline.metrics import Predictions
from pipeline.stages.gate import counts_as_passed, verdict_of
from pipeline.targets import DeviceTarget

AUTO = "auto"
# Host latency orders two variants only when one takes under half the other's time: between variants of
# one architecture (int8, pruned_int8, qat_int8, pqat_int8) the measured µs differ by noise alone (28 % seen
# between int8 and pruned_int8 of one fraud model), and noise must not pick the variant that ships.
LATENCY_TIE = 0.5
ORDER = ("smallest flash (model bytes) first; then the smallest tensor arena measured in the microcontroller "
         "runtime (variants it cannot run last); then the lower single-example LiteRT latency on the host only when "
         f"it is under half the other's (closer is timing noise); then the fixed variant order "
         f"({', '.join(ALL_VARIANTS)})")
CHOICE_CHECK = "variant chosen on validation"
TARGET_CHECK = "fits the named targets"


def variant_deployment(*, model_bytes: int, latency_ms: float | None, micro, litert_test: Predictions,
                       micro_test: Predictions | None, micro_quality: dict | None, litert_quality: dict,
                       headline_metric: str) -> dict:
    """deployment.json's entry for one variant (`micro`: a MicrocontrollerResult, None when not measured)."""
    entry = {"flash_bytes": model_bytes, "runs_in_litert": True, "litert_latency_ms": latency_ms,
             "microcontroller": None}
    if micro is None:
        return entry
    summary = micro.summary()
    if micro_test is not None:
        same = micro_test.decisions == litert_test.decisions
        difference = np.abs(micro_test.scores - litert_test.scores)
        summary["agreement_with_litert"] = {
            "identical_decisions": float(same.mean()) if same.size else None,
            "changed_decisions": int((~same).sum()), "rows": int(same.size),
            "max_output_difference": float(difference.max()) if difference.size else None,
            "threshold": float(litert_test.threshold)}
        summary["quality"] = {headline_metric: (micro_quality or {}).get(headline_metric),
                              f"litert_{headline_metric}": litert_quality.get(headline_metric)}
    else:
        summary["agreement_with_litert"] = None
    entry["microcontroller"] = summary
    return entry


def target_fits(targets: list[DeviceTarget], deployments: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """variant -> target name -> {"fits", "why_not"}."""
    return {variant: {target.name: target.fit(entry) for target in targets} for variant, entry in deployments.items()}


def deployment_order(deployments: dict[str, dict]) -> list[str]:
    """The variants in ORDER: flash, then arena, then latency beyond the tie band, then the fixed order.
    Every step but latency is measured deterministically, so the same files give the same order."""
    def arena(variant: str) -> float:
        micro = deployments[variant].get("microcontroller") or {}
        return micro["arena_bytes"] if micro.get("supported") and micro.get("arena_bytes") else float("inf")

    def compare(a: str, b: str) -> int:
        flash_a, flash_b = deployments[a]["flash_bytes"], deployments[b]["flash_bytes"]
        if flash_a != flash_b:
            return -1 if flash_a < flash_b else 1
        if arena(a) != arena(b):
            return -1 if arena(a) < arena(b) else 1
        latency_a, latency_b = deployments[a].get("litert_latency_ms"), deployments[b].get("litert_latency_ms")
        if latency_a and latency_b:
            if latency_a < (1 - LATENCY_TIE) * latency_b:
                return -1
            if latency_b < (1 - LATENCY_TIE) * latency_a:
                return 1
        return _position(a) - _position(b)

    return sorted(deployments, key=functools.cmp_to_key(compare))


def _position(variant: str) -> int:
    return ALL_VARIANTS.index(variant) if variant in ALL_VARIANTS else len(ALL_VARIANTS)


def choose_variant(*, requested: str, named_targets: list[str], deployments: dict[str, dict],
                   fits: dict[str, dict[str, dict]], validation_gates: dict[str, dict], inconclusive: str) -> dict:
    """The decision of which variant ships, and why each other one was passed over.

    requested:        "auto", or the variant --ship named (then it ships, and the table still says how it fares)
    named_targets:    the targets the user named (--target); none: only "runs in LiteRT" is required
    deployments:      variant -> deployment entry (flash_bytes, litert_latency_ms, ...), every variant LiteRT ran
    fits:             target_fits(...) over at least the named targets
    validation_gates: variant -> apply_gate(...) on the validation split
    inconclusive:     the gate's policy for an inconclusive check ("fail" or "pass")

    Rule (auto): in deployment_order, the first variant that fits every named target and whose
    validation checks all pass; if none, the first whose checks are at worst inconclusive (the
    choice is then inconclusive, counted as the policy says); if none, the fitting variant with
    the fewest failed checks ships and the choice fails. If nothing fits, the first variant in
    the order ships and the choice fails.
    """
    order = deployment_order(deployments)
    rows = {}
    for variant in order:
        gate = validation_gates[variant]
        misfits = {name: fits[variant][name]["why_not"] for name in named_targets if not fits[variant][name]["fits"]}
        rows[variant] = {
            "fits_named_targets": not misfits,
            "validation_verdict": verdict_of(gate),
            "checks": [{"name": c["name"], "verdict": verdict_of(c), "explanation": c["explanation"]}
                       for c in gate["checks"]],
            "targets": fits[variant],
            "why_not_chosen": None,
        }
    if not order:  # nothing was built: the gate's "shipped variant built" check fails
        ship = None if requested == AUTO else requested
        return {"requested": requested, "ship_variant": ship, "chosen_on": "validation split", "order_rule": ORDER,
                "order": [], "named_targets": list(named_targets), "verdict": "fail", "passed": False,
                "explanation": "no variant was built, so none could be chosen (see compression.json)", "table": {}}
    fitting = [v for v in order if rows[v]["fits_named_targets"]]
    clear = [v for v in fitting if rows[v]["validation_verdict"] == "pass"]
    unsure = [v for v in fitting if rows[v]["validation_verdict"] == "inconclusive"]
    where = f" on {', '.join(named_targets)}" if named_targets else ""
    if requested != AUTO:
        ship = requested
        verdict = "pass"
        explanation = f"{ship} ships because --ship named it; the automatic rule was not applied"
    elif clear:
        ship, verdict = clear[0], "pass"
        explanation = (f"{ship} is the first variant, in order of {_short_order()}, that fits{where or ' LiteRT'} "
                       f"and passes every gate check on the validation split")
    elif unsure:
        ship, verdict = unsure[0], "inconclusive"
        explanation = (f"no variant passes every check on the validation split; {ship} is the first that fits"
                       f"{where} with no failed check, only inconclusive ones")
    elif fitting:
        ship = min(fitting, key=lambda v: (sum(c["verdict"] == "fail" for c in rows[v]["checks"]), order.index(v)))
        verdict = "fail"
        explanation = (f"no variant that fits{where} passes the gate checks on the validation split; {ship} "
                       f"ships as the one with the fewest failed checks")
    else:
        ship, verdict = order[0], "fail"
        explanation = f"no variant fits{where}; {ship} ships as the first in order, and the gate fails"
    for variant in order:
        rows[variant]["why_not_chosen"] = None if variant == ship else _why_not(
            variant, rows[variant], named_targets, ship, order, named_by_user=requested != AUTO)
    return {"requested": requested, "ship_variant": ship, "chosen_on": "validation split", "order_rule": ORDER,
            "order": order, "named_targets": list(named_targets), "verdict": verdict,
            "passed": counts_as_passed(verdict, inconclusive), "explanation": explanation, "table": rows}


def _short_order() -> str:
    return "smallest flash, then arena"


def _misfits(row: dict, named_targets: list[str]) -> str:
    return "; ".join(f"{name}: {', '.join(row['targets'][name]['why_not'])}" for name in named_targets
                     if not row["targets"][name]["fits"])


def _why_not(variant: str, row: dict, named_targets: list[str], ship: str, order: list[str], *,
             named_by_user: bool) -> str:
    if not row["fits_named_targets"]:
        return _misfits(row, named_targets)
    failed = [c["explanation"] for c in row["checks"] if c["verdict"] == "fail"]
    if failed:
        return "on validation: " + "; ".join(failed)
    unsure = [c["explanation"] for c in row["checks"] if c["verdict"] == "inconclusive"]
    if unsure:
        return "on validation, inconclusive: " + "; ".join(unsure)
    if named_by_user:
        return f"qualifies, but --ship named {ship}" + ("" if ship in order else " (which was not built)")
    return f"qualifies, but {ship} comes first in the order ({_short_order()})"


def choice_checks(decision: dict, *, ship_variant: str) -> list[dict]:
    """The gate's checks about the choice itself: fits the named targets; chosen on validation (auto)."""
    checks = []
    row = decision["table"].get(ship_variant)
    if decision["named_targets"]:
        fits = bool(row and row["fits_named_targets"])
        checks.append({"name": TARGET_CHECK, "verdict": "pass" if fits else "fail", "value": None, "limit": None,
                       "explanation": (f"{ship_variant} fits {', '.join(decision['named_targets'])}" if fits else
                                       f"{ship_variant} does not fit: "
                                       f"{_misfits(row, decision['named_targets']) if row else 'it was not built'}")})
    if decision["requested"] == AUTO:
        checks.append({"name": CHOICE_CHECK, "verdict": decision["verdict"], "value": None, "limit": None,
                       "explanation": decision["explanation"]})
    return checks


def decision_rows(deployment: dict) -> list[dict]:
    """The decision table as plain rows, in the order the choice considered the variants: the one
    row builder behind the model card's table and the dashboard's. Per row: variant, ships,
    flash_bytes, runs_on_microcontroller, arena_bytes, agreement_with_litert (identical decisions),
    micro_quality ({metric: value} on the microcontroller runtime), targets ({name: {fits, why_not}}),
    validation_verdict, why_not_chosen (None for the shipped one)."""
    decision = deployment["decision"]
    rows = []
    for variant in decision["order"]:
        entry = deployment["variants"][variant]
        row = decision["table"][variant]
        micro = entry.get("microcontroller") or {}
        runs = bool(micro.get("supported"))
        rows.append({
            "variant": variant, "ships": variant == decision["ship_variant"], "flash_bytes": entry["flash_bytes"],
            "runs_on_microcontroller": runs, "arena_bytes": micro.get("arena_bytes") if runs else None,
            "agreement_with_litert": (micro.get("agreement_with_litert") or {}).get("identical_decisions")
            if runs else None,
            "micro_quality": (micro.get("quality") or {}) if runs else {},
            "targets": {name: {"fits": bool(fit["fits"]), "why_not": list(fit.get("why_not") or [])}
                        for name, fit in row["targets"].items()},
            "validation_verdict": row["validation_verdict"], "why_not_chosen": row["why_not_chosen"],
        })
    return rows


# --------------------------------------------------------------------------------------
# What a device needs
# --------------------------------------------------------------------------------------

def c_identifier(variant: str) -> str:
    return "edgeaudit_" + "".join(ch if ch.isalnum() else "_" for ch in variant)


def device_sources(*, variant: str, model_content: bytes, arena_bytes: int, operators: list[str],
                   input_detail: dict, domain: str, run_id: str) -> dict[str, str]:
    """A C header and source holding the model as a 16-byte-aligned array and the arena size."""
    name = c_identifier(variant)
    guard = f"{name.upper()}_MODEL_DATA_H_"
    header = "\n".join([
        f"// {variant} model of EdgeAudit run {run_id} ({domain}); generated, do not edit.",
        "// Register these operators with tflite::MicroMutableOpResolver: " + ", ".join(operators) + ".",
        f"// Input 0: shape {input_detail['shape']}, {input_detail['dtype']}"
        + (f", quantization {json.dumps(input_detail['quantization'])}" if input_detail.get("quantization") else "")
        + "; apply preprocessing.json first.",
        f"#ifndef {guard}", f"#define {guard}", "", "#include <cstddef>", "",
        f"// Smallest tensor arena this model allocated in, measured in TensorFlow Lite Micro.",
        f"constexpr size_t k{_camel(variant)}ArenaBytes = {arena_bytes};",
        f"constexpr size_t k{_camel(variant)}ModelBytes = {len(model_content)};",
        f"extern const unsigned char {name}_model[];", "", f"#endif  // {guard}", ""])
    rows = [", ".join(f"0x{byte:02x}" for byte in model_content[start:start + 12])
            for start in range(0, len(model_content), 12)]
    source = "\n".join([
        f"// {variant} model of EdgeAudit run {run_id} ({domain}); generated, do not edit.",
        f'#include "{variant}_model_data.h"', "",
        "// 16-byte alignment: TensorFlow Lite Micro reads the flatbuffer in place.",
        f"alignas(16) const unsigned char {name}_model[] = {{",
        *(f"    {row}," for row in rows), "};", ""])
    return {"h": header, "cc": source}


def _camel(variant: str) -> str:
    return "".join(part.capitalize() for part in variant.replace("-", "_").split("_"))


def raw_example(raw, index: int, preprocessing: dict) -> tuple[str, dict | None]:
    """Python lines that set `raw` to one raw example of a split, as the domain's `encode` takes it, and
    the JSON payload they read (None when the example fits in the lines themselves)."""
    import pandas as pd

    read = ("example = json.load(open(\"device/example_input.json\"))\n"
            "raw = np.array(example[\"values\"], dtype=example[\"dtype\"])  # one raw example, shape "
            "(1, ...)")
    if isinstance(raw, pd.DataFrame):
        from pipeline.domain import plain_value

        row = {str(column): plain_value(value) for column, value in raw.iloc[index].items()}
        return f"raw = pd.DataFrame([{row!r}])  # one raw row, as the data file holds it", None
    if hasattr(raw, "channels") and hasattr(raw, "values"):  # sensor windows: channels in the spec's order
        order = [list(raw.channels).index(c) for c in [*preprocessing["settings"], *preprocessing["sensors"]]]
        values = np.asarray(raw.values[index])[..., order]
        return read, {"dtype": "float32", "channels": [*preprocessing["settings"], *preprocessing["sensors"]],
                      "values": values[None, ...].tolist()}
    array = np.asarray(raw)
    if array.dtype == object or array.dtype.kind in "US":
        return f"raw = np.array([{str(array[index])!r}], dtype=object)  # one raw text", None
    return read, {"dtype": array.dtype.name, "values": array[index:index + 1].tolist()}


def python_snippet(*, domain: str, variant: str, raw_code: str) -> str:
    """Lines that run the shipped `.tflite` on one raw example with the shipped preprocessing,
    from inside the run folder (the tests run them as written)."""
    return "\n".join([
        "import json",
        "import numpy as np",
        "import pandas as pd",
        "from ai_edge_litert.interpreter import Interpreter",
        "from pipeline.registry import get_domain",
        "",
        "preprocessing = json.load(open(\"models/preprocessing.json\"))",
        raw_code,
        f"interpreter = Interpreter(model_path=\"models/{variant}.tflite\")",
        "interpreter.allocate_tensors()",
        "model_input = interpreter.get_input_details()[0]",
        f"features = get_domain({domain!r}).encode(preprocessing, raw).astype(model_input[\"dtype\"])",
        "interpreter.set_tensor(model_input[\"index\"], features[:1])",
        "interpreter.invoke()",
        "score = float(interpreter.get_tensor(interpreter.get_output_details()[0][\"index\"]).reshape(-1)[-1])",
        "threshold = json.load(open(\"deployment.json\"))[\"decision\"][\"threshold\"]",
        "print(f\"score {score:.4f}, decision {int(score >= threshold)} (threshold {threshold:.4f})\")",
    ])
