"""The run's "fit devices and choose" step: every variant in the microcontroller runtime, every
target's fit, the variant to ship chosen on the validation split, and the files a device needs.
Called by pipeline/run.py; writes through the run folder (pipeline.artifacts.RunFolder)."""

from __future__ import annotations

import numpy as np

from pipeline import artifacts
from pipeline.config import FLOAT_MODEL, RunConfig
from pipeline.domain import Domain, DomainData
from pipeline.metrics import Predictions
from pipeline.progress import Progress


def deploy(config: RunConfig, domain: Domain, data: DomainData, folder: artifacts.RunFolder,
            evaluations: dict[str, dict], predictions: dict[str, Predictions],
            validation_predictions: dict[str, Predictions], *, validation_x: np.ndarray, test_x: np.ndarray,
            progress: Progress) -> tuple[dict, dict[str, Predictions], dict[str, dict]]:
    """Every variant in the microcontroller runtime, every target's fit, and the choice of the variant to
    ship, made on the validation split. Writes deployment.json and the device files.

    Returns the deployment, and the test predictions and qualities the audit and the gate judge: the
    decisions a device makes. Where a named target is a microcontroller, those are the microcontroller
    runtime's own outputs for every variant it runs, on validation (the choice) as on test (the report).
    """
    from pipeline.stages import audit as audit_stage
    from pipeline.stages import deploy
    from pipeline.stages.gate import apply_gate
    from pipeline.stages.microcontroller import run_on_microcontroller
    from pipeline.targets import builtin_targets, resolve_targets

    named = resolve_targets(config.targets)
    shown = {**builtin_targets(), **{target.name: target for target in named}}
    micro_named = any(target.is_microcontroller for target in named)
    deployments: dict[str, dict] = {}
    judged_validation, judged_test, judged_qualities = dict(validation_predictions), dict(predictions), {}
    rows_validation = len(validation_x)
    for name, evaluation in evaluations.items():
        content = folder.read_bytes(artifacts.model_path(name))
        threshold = predictions[name].threshold  # the variant's own, chosen on its LiteRT validation scores
        micro = run_on_microcontroller(content, np.concatenate([validation_x, test_x]))
        micro_test = micro_quality = None
        if micro.supported:
            micro_test = Predictions(micro.outputs[rows_validation:], threshold)
            micro_quality = domain.quality(data.test.labels, micro_test.scores, threshold)
            if micro_named:
                judged_validation[name] = Predictions(micro.outputs[:rows_validation], threshold)
                judged_test[name], judged_qualities[name] = micro_test, micro_quality
        deployments[name] = deploy.variant_deployment(
            model_bytes=len(content), latency_ms=evaluation["latency"]["median_ms"], micro=micro,
            litert_test=predictions[name], micro_test=micro_test, micro_quality=micro_quality,
            litert_quality=evaluation["quality"], headline_metric=domain.headline_metric)
        deployments[name]["audited_runtime"] = "tflite-micro" if name in judged_qualities else "litert"
        agreement = (deployments[name]["microcontroller"] or {}).get("agreement_with_litert") or {}
        same = agreement.get("identical_decisions")
        progress(f"  {name:14s} tflite-micro: " + (
            f"arena {micro.arena_bytes:>9,} B, decisions agree with LiteRT on "
            + ("n/a" if same is None else f"{same:.4f}") if micro.supported
            else f"does not run ({micro.first_unsupported})"))
    fits = deploy.target_fits(list(shown.values()), deployments)

    # The choice: every candidate's gate checks on the validation split (the test split only reports).
    validation_audit = audit_stage.audit_variants(
        labels=data.validation.labels, groups=data.validation.groups, predictions=judged_validation,
        reference=FLOAT_MODEL, bootstrap_samples=config.bootstrap_samples, seed=config.seed,
        min_group_size=config.min_group_size, clusters=data.validation.clusters)
    validation_qualities = {name: domain.quality(data.validation.labels, p.scores, p.threshold)
                            for name, p in judged_validation.items()}
    validation_gates = {name: apply_gate(thresholds=config.gate, ship_variant=name,
                                         headline_metric=domain.headline_metric, qualities=validation_qualities,
                                         audit=validation_audit, split="validation",
                                         runtime="tflite-micro" if name in judged_qualities else None)
                        for name in deployments}
    decision = deploy.choose_variant(requested=config.ship_variant, named_targets=[t.name for t in named],
                                     deployments=deployments, fits=fits, validation_gates=validation_gates,
                                     inconclusive=config.gate.inconclusive)
    if decision["ship_variant"] is None:  # nothing was built: the gate says so about the variant asked for
        decision["ship_variant"] = "int8" if "int8" in config.variants else config.variants[0]
    ship = decision["ship_variant"]
    decision["threshold"] = float(predictions[ship].threshold) if ship in predictions else None
    progress(f"  ships {ship}: {decision['explanation']}")

    device_files = write_device_files(folder, domain, data, deployments, fits, shown, ship)
    deployment = {"format": "edgeaudit.deployment.v1", "targets": [t.to_json() for t in shown.values()],
                  "named_targets": [t.name for t in named],
                  "flash_note": "flash_bytes is the model's own bytes; each target's reserved_flash_bytes stands for "
                                "the rest of the firmware (interpreter, kernels, application)",
                  "variants": {name: {**entry, "targets": fits[name], "device_files": device_files.get(name, [])}
                               for name, entry in deployments.items()},
                  "decision": decision, "device": device_files.get("_shipped")}
    folder.write_json(artifacts.DEPLOYMENT, deployment, role="deployment")
    return deployment, judged_test, judged_qualities


def mitigation_column(deployment: dict, ship: str, columns: list[str]) -> tuple[str | None, str]:
    """The column mitigation is fitted for, chosen on validation: the first whose equalized-odds check of the
    shipped variant did not pass there; else the first column. Returns (column, why, for the card)."""
    checks = (deployment["decision"]["table"].get(ship) or {}).get("checks") or []
    verdicts = {check["name"]: check["verdict"] for check in checks}
    for column in columns:
        verdict = verdicts.get(f"equalized odds difference by {column}")
        if verdict in ("fail", "inconclusive"):
            return column, (f"Fitted for `{column}`: the shipped variant's equalized-odds check by {column} was "
                            f"{verdict} on the validation split (the first column that did not pass).")
    first = columns[0] if columns else None
    return first, (f"Fitted for `{first}`, the first sensitive column: every equalized-odds check of the shipped "
                   "variant passed on the validation split.")


def write_device_files(folder: artifacts.RunFolder, domain: Domain, data: DomainData, deployments: dict,
                        fits: dict, targets: dict, ship: str) -> dict:
    """C source and header for every variant that fits a microcontroller target; the Python snippet and
    its raw example for the shipped variant. Returns variant -> paths, and "_shipped" -> what a device needs."""
    from pipeline.stages import deploy

    written: dict = {}
    micro_targets = [name for name, target in targets.items() if target.is_microcontroller]
    for name, entry in deployments.items():
        micro = entry.get("microcontroller") or {}
        if not any(fits[name][target]["fits"] for target in micro_targets):
            continue
        sources = deploy.device_sources(variant=name, model_content=folder.read_bytes(artifacts.model_path(name)),
                                        arena_bytes=micro["arena_bytes"], operators=micro["operators"],
                                        input_detail=micro["input"], domain=domain.name, run_id=folder.run_id)
        written[name] = []
        for extension, text in sources.items():
            path = artifacts.device_source_path(name, extension)
            folder.write_text(path, text, role="device_source", variant=name)
            written[name].append(path)
    if ship not in deployments:  # --ship named a variant that was not built: nothing to run on a device
        written["_shipped"] = None
        return written
    raw_code, payload = deploy.raw_example(data.test.raw, 0, folder.read_json(artifacts.PREPROCESSING))
    if payload is not None:
        folder.write_json(artifacts.DEVICE_EXAMPLE, payload, role="device_example")
    micro = (deployments.get(ship) or {}).get("microcontroller") or {}
    written["_shipped"] = {
        "variant": ship, "tflite": artifacts.model_path(ship), "preprocessing": artifacts.PREPROCESSING,
        "input": micro.get("input"), "output": micro.get("output"), "operators": micro.get("operators"),
        "arena_bytes": micro.get("arena_bytes"), "flash_bytes": (deployments.get(ship) or {}).get("flash_bytes"),
        "sources": written.get(ship, []),
        "python_snippet": deploy.python_snippet(domain=domain.name, variant=ship, raw_code=raw_code)}
    return written
