"""The model card's deployment section: which variant ships and why, every variant on every target,
where the two runtimes disagree, and what a device needs to run the shipped variant.
"""

from __future__ import annotations

from pipeline.stages.deploy import decision_rows
from pipeline.stages.report.card import Bullets, Code, Heading, Paragraph, Table
from pipeline.stages.report.formatting import _kilobytes, _number


def _deployment(deployment: dict, manifest: dict) -> list:
    """Which variant ships and why; every variant on every target; what a device needs."""
    blocks = _shipped_variant(deployment["decision"])
    blocks += _every_target(deployment, manifest["headline_metric"])
    blocks += _runtime_differences(deployment)
    blocks += _device_needs(deployment, deployment["decision"]["ship_variant"])
    return blocks


def _shipped_variant(decision: dict) -> list:
    """The variant that ships, why, which targets were named, and the threshold a device must use."""
    ship = decision["ship_variant"]
    named = decision["named_targets"]
    threshold = decision.get("threshold")
    return [Heading(2, "Deployment"), Paragraph(
        f"**`{ship}` ships**: {decision['explanation']}. "
        + ("Targets named for this run: " + ", ".join(f"`{t}`" for t in named) + ". " if named else
           "No target was named (`--target`), so any variant LiteRT runs could ship; the table still shows every "
           "built-in target. ")
        + f"Order of preference: {decision['order_rule']}. Every gate check of every candidate was measured on "
          f"the validation split; the test split only reports and gates the choice."
        + (f" A device must flag a case when the output reaches **{threshold:.4f}**, the threshold of "
           f"`{ship}` (chosen on validation)." if threshold is not None else ""))]


def _every_target(deployment: dict, headline: str) -> list:
    """One row per variant: flash, arena, agreement and quality on tflite-micro, fit per target, why not chosen."""
    named = deployment["decision"]["named_targets"]
    targets = [t["name"] for t in deployment["targets"]]
    rows = [[f"`{row['variant']}`" + (" (ships)" if row["ships"] else ""), _kilobytes(row["flash_bytes"]),
             _kilobytes(row["arena_bytes"]) if row["runs_on_microcontroller"] else "does not run",
             _number(row["agreement_with_litert"]) if row["runs_on_microcontroller"] else "—",
             _number(row["micro_quality"].get(headline)) if row["runs_on_microcontroller"] else "—",
             *[("fits" if row["targets"][t]["fits"] else "**no**") for t in targets],
             row["validation_verdict"] if row["validation_verdict"] == "pass" else f"**{row['validation_verdict']}**",
             row["why_not_chosen"] or "chosen"] for row in decision_rows(deployment)]
    return [Heading(3, "Every variant on every target"),
            Table(["variant", "flash", "arena (tflite-micro)", "same decisions as LiteRT", f"{headline} on tflite-micro",
                   *[f"{t}{' (named)' if t in named else ''}" for t in targets], "validation checks",
                   "why not chosen"], rows)]


def _runtime_differences(deployment: dict) -> list:
    """Variants the microcontroller runtime rejects, and test decisions the two runtimes disagree on."""
    blocks: list = []
    unsupported = [f"`{v}`: {e['microcontroller']['first_unsupported']}" for v, e in deployment["variants"].items()
                   if e.get("microcontroller") and not e["microcontroller"]["supported"]]
    if unsupported:
        blocks += [Paragraph("Rejected by the microcontroller runtime (its own words, first operator it refused):"),
                   Bullets(unsupported)]
    disagreeing = [(v, e["microcontroller"]["agreement_with_litert"]) for v, e in deployment["variants"].items()
                   if (e.get("microcontroller") or {}).get("agreement_with_litert")
                   and e["microcontroller"]["agreement_with_litert"]["changed_decisions"]]
    if disagreeing:
        audited = [v for v, e in deployment["variants"].items() if e.get("audited_runtime") == "tflite-micro"]
        blocks.append(Paragraph(
            "The two runtimes disagree on some test decisions: " + "; ".join(
                f"`{v}` {a['changed_decisions']} of {_number(a['rows'])}" for v, a in disagreeing) + ". "
            + ("The choice (on validation), the audit and the gate above judge the microcontroller runtime's "
               "decisions for " + ", ".join(f"`{v}`" for v in audited) + ", as a named microcontroller target "
               "runs them."
               if audited else "No microcontroller target was named, so the audit judges LiteRT's decisions.")))
    return blocks


def _device_needs(deployment: dict, ship: str) -> list:
    """What a device needs to run the shipped variant: tensors, preprocessing, operators, arena, sources, snippet."""
    blocks: list = []
    device = deployment.get("device") or {}
    if device.get("input"):
        tensor = device["input"]
        quantization = tensor.get("quantization")
        blocks += [Heading(3, f"What a device needs to run `{ship}`"), Bullets([
            f"Model: `{device['tflite']}` ({_kilobytes(device['flash_bytes'])} of flash)"
            + (", also as C source for a firmware build: " + ", ".join(f"`{p}`" for p in device["sources"])
               if device.get("sources") else "") + ".",
            f"Input tensor: shape {tensor['shape']}, {tensor['dtype']}"
            + (f", quantized with scale {quantization['scales'][0]:g} and zero point {quantization['zero_points'][0]}"
               if quantization else
               ", not quantized: the model quantizes its input inside (a QUANTIZE operator), so it takes and "
               "returns float32, and an int8-only accelerator cannot run it as is" if "QUANTIZE" in device["operators"]
               else ", not quantized") + ".",
            f"Output: {device['output']['shape']} {device['output']['dtype']}, the probability of class 1.",
            f"Preprocessing: apply `{device['preprocessing']}` to every raw example before the model, exactly as "
            f"`edgeaudit`'s domain `encode` does (the snippet below); the device must reproduce it.",
            "Operators to register (`tflite::MicroMutableOpResolver`): "
            + ", ".join(f"`{o}`" for o in device["operators"]) + ".",
            f"Tensor arena: {_number(device['arena_bytes'])} bytes, the smallest it allocated in "
            f"(measured in TensorFlow Lite Micro); flash: {_number(device['flash_bytes'])} bytes of model.",
        ])]
    with_sources = [v for v, e in deployment["variants"].items() if e.get("device_files")]
    if with_sources:
        blocks.append(Paragraph(
            "C source and header (`device/<variant>_model_data.{h,cc}`: the model as a 16-byte-aligned array, the "
            "arena size as a constant) are written for every variant that fits at least one microcontroller target "
            "above: " + ", ".join(f"`{v}`" for v in with_sources) + "."))
    elif device:
        blocks += [Heading(3, f"What a device needs to run `{ship}`"), Paragraph(
            f"`{ship}` does not run in the microcontroller runtime; it runs in LiteRT (Linux, phones) with "
            f"`{device['preprocessing']}` applied first.")]
    if device.get("python_snippet"):
        blocks += [Paragraph("Run the shipped model on one raw example, from the run folder:"),
                   Code(device["python_snippet"], "python")]
    return blocks
