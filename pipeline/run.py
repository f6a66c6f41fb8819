"""Wires the stages: load → train → compress → evaluate (LiteRT) → fit devices and choose the variant
to ship (on validation) → explain → audit → report → gate.

Stage functions take and return plain values; only this module talks to the run folder
(`pipeline.artifacts.RunFolder`). A run that fails for any reason is discarded, so the
reports folder only ever holds finished runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import resource
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline.config import FLOAT_MODEL, RunConfig
from pipeline.domain import Domain, DomainData
from pipeline.metrics import Predictions, choose_threshold
from pipeline.progress import Progress
from pipeline.registry import get_domain

STAGES = ["load data", "train", "compress", "evaluate on LiteRT", "fit devices and choose", "explain", "audit",
          "report"]
PACKAGES = ("tensorflow", "tf-keras", "keras", "tensorflow-model-optimization", "ai-edge-litert", "shap",
            "fairlearn", "scikit-learn", "numpy", "pandas", "streamlit", "matplotlib")


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path | None   # None for a non-chief worker, which writes no report
    gate: dict | None
    manifest: dict


def run_pipeline(config: RunConfig, *, progress: Progress | None = None) -> RunOutcome:
    """Run every stage for one domain and publish the run folder. Raises InputError on bad input."""
    config = config.validate()
    domain = get_domain(config.domain)
    config = config.with_domain_defaults(domain)
    progress = progress or Progress(STAGES)
    started_wall = time.monotonic()
    created = _dt.datetime.now(_dt.timezone.utc)

    cluster = check_before_work(config)

    with progress.stage("load data"):
        data = domain.load(config)
        progress(f"  {data.source.description}: {data.source.rows:,} rows; train {len(data.train):,}, "
                 f"validation {len(data.validation):,}, test {len(data.test):,}; "
                 f"{len(data.feature_names)} model inputs; groups by {', '.join(data.sensitive_columns)}")

    from pipeline.console import start_frameworks
    from pipeline.runtime import configure_runtime  # imports Keras: after the cheap input checks

    start_frameworks()  # TensorFlow's native start-up lines stay off the terminal (--verbose shows them)
    runtime = configure_runtime(seed=config.seed, batch_size=config.batch_size,
                                mixed_precision_pays=domain.mixed_precision_on_accelerator)
    progress(f"  training on {runtime.device} ({runtime.backend} backend, mixed precision "
             f"{'on' if runtime.mixed_precision else 'off'}, XLA {'on' if runtime.jit_compile else 'off'})"
             + (f", worker {cluster.index} of {len(cluster.workers)}" if cluster else ""))
    if cluster is not None and not cluster.is_chief:
        return _train_as_worker(config, domain, data, runtime, cluster, progress)
    folder = artifacts.RunFolder(config.output_dir, domain.name, artifacts.new_run_id(config.seed))
    try:
        manifest, gate = _run_stages(config, domain, data, runtime, folder, progress, cluster)
        manifest.update({
            "created_utc": created.isoformat(timespec="seconds"),
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(time.monotonic() - started_wall, 2),
            "stage_seconds": dict(progress.seconds),
            "peak_memory_mb": _peak_memory_mb(),
        })
        run_dir = folder.finish(manifest)
    except BaseException:
        folder.discard()
        raise
    return RunOutcome(run_dir=run_dir, gate=gate, manifest=manifest)


def check_before_work(config: RunConfig):
    """The checks that need no data, so that their errors come before any loading: EDGEAUDIT_THREADS,
    the cluster (--workers / TF_CONFIG) and, where this process writes the report, that --out can be
    written. Returns the cluster (None for single-machine training); raises InputError."""
    from pipeline.runtime import thread_count
    from pipeline.stages.distributed import resolve_cluster

    thread_count()  # EDGEAUDIT_THREADS, if set, is a usable number
    if config.cluster_column is not None and not get_domain(config.domain).supports_cluster_column:
        from pipeline.errors import InputError
        from pipeline.registry import domain_names

        takers = [name for name in domain_names() if get_domain(name).supports_cluster_column]
        raise InputError(f"--cluster-column is not read by the {config.domain} domain",
                         fix=f"leave it out; it applies to {', '.join(takers)} (sensor histories group their "
                             f"windows by unit on their own)")
    cluster = resolve_cluster(config.workers, config.worker_index)
    if cluster is None or cluster.is_chief:
        artifacts.check_output_dir(config.output_dir)
    return cluster


def _train_as_worker(config: RunConfig, domain: Domain, data: DomainData, runtime, cluster,
                     progress: Progress) -> RunOutcome:
    """A non-chief worker: trains its share of the model with the others, writes nothing."""
    from pipeline.stages.train import train_model

    preprocessing = artifacts.json_round_trip(data.preprocessing)  # what the chief ships and reads back
    train_x = domain.encode(preprocessing, data.train.raw)
    with progress.stage("train"):
        trained = train_model(
            model_builder=domain.model_builder, input_shape=tuple(train_x.shape[1:]),
            model_options=domain.model_options(data, config), train_features=train_x,
            train_labels=data.train.labels, validation_features=domain.encode(preprocessing, data.validation.raw),
            validation_labels=data.validation.labels, runtime=runtime, epochs=config.epochs,
            optimizer=domain.optimizer, learning_rate=domain.learning_rate, progress=progress,
            cluster=cluster, augmentation=domain.augmentation())
    return RunOutcome(run_dir=None, gate=None, manifest={"worker": cluster.index, **trained.summary()["distributed"]})


def _run_stages(config: RunConfig, domain: Domain, data: DomainData, runtime, folder: artifacts.RunFolder,
                progress: Progress, cluster=None) -> tuple[dict, dict]:
    from pipeline.stages import audit as audit_stage
    from pipeline.stages import explain as explain_stage
    from pipeline.stages import report as report_stage
    from pipeline.stages.compress import compress
    from pipeline.stages.evaluate import LiteRTModel, evaluate_variant, measure_keras_latency
    from pipeline.stages.deploy import choice_checks
    from pipeline.stages.gate import apply_gate
    from pipeline.stages.train import batched_predict_function, train_model

    # What ships beside every .tflite is written first and read back: every later stage
    # encodes with the file a device will get, not with an in-memory copy.
    folder.write_json(artifacts.PREPROCESSING, data.preprocessing, role="preprocessing")
    shipped_preprocessing = folder.read_json(artifacts.PREPROCESSING)
    train_x = domain.encode(shipped_preprocessing, data.train.raw)
    validation_x = domain.encode(shipped_preprocessing, data.validation.raw)
    test_x = domain.encode(shipped_preprocessing, data.test.raw)
    input_shape = tuple(train_x.shape[1:])
    model_options = domain.model_options(data, config)

    with progress.stage("train"):
        trained = train_model(
            model_builder=domain.model_builder, input_shape=input_shape, model_options=model_options,
            train_features=train_x, train_labels=data.train.labels,
            validation_features=validation_x, validation_labels=data.validation.labels,
            runtime=runtime, epochs=config.epochs, optimizer=domain.optimizer, learning_rate=domain.learning_rate,
            progress=progress, cluster=cluster, augmentation=domain.augmentation())
        progress(f"  best epoch {trained.best_epoch} of {trained.epochs_run}, {trained.seconds:.1f} s")
        predict_float = batched_predict_function(trained.model)
        float_validation_scores = predict_float(validation_x)
        float_threshold = choose_threshold(data.validation.labels, float_validation_scores, config.threshold_rule)
        float_predictions = Predictions(predict_float(test_x), float_threshold)
        folder.write_json(artifacts.TRAINING, {**trained.summary(), "runtime": runtime.to_json(),
                                               "model_options": model_options, "input_shape": input_shape},
                          role="training")

    with progress.stage("compress"):
        job = compression_job(config, domain, data, trained, model_options=model_options, train_x=train_x,
                              validation_x=validation_x, batch_size=runtime.batch_size,
                              threads=runtime.intra_op_threads, deterministic_ops=runtime.deterministic_ops)
        variants = compress(job, progress=progress)
        for result in variants.values():
            if result.tflite is not None:
                folder.write_bytes(artifacts.model_path(result.name), result.tflite, role="tflite",
                                   variant=result.name)
        folder.write_json(artifacts.COMPRESSION, {name: v.summary() for name, v in variants.items()},
                          role="compression")

    with progress.stage("evaluate on LiteRT"):
        evaluations: dict[str, dict] = {}
        predictions: dict[str, Predictions] = {FLOAT_MODEL: float_predictions}
        validation_predictions: dict[str, Predictions] = {
            FLOAT_MODEL: Predictions(float_validation_scores, float_threshold)}
        keras_latency = measure_keras_latency(trained.model.predict_on_batch, test_x[0], runs=config.latency_runs)
        for name, result in variants.items():
            if result.status != "ok":
                continue
            shipped_bytes = folder.read_bytes(artifacts.model_path(name))  # the file, as written
            evaluations[name], predictions[name], validation_predictions[name] = evaluate_variant(
                shipped_bytes, validation_features=validation_x, validation_labels=data.validation.labels,
                test_features=test_x, test_labels=data.test.labels, reference=float_predictions,
                latency_runs=config.latency_runs, quality=domain.quality, threshold_rule=config.threshold_rule)
            evaluation = evaluations[name]
            progress(f"  {name:14s} {domain.headline_metric} {_fmt(evaluation['quality'][domain.headline_metric])}"
                     f"  {evaluation['size']['bytes']:>9,} B  gzip {evaluation['size']['gzip_bytes']:>9,} B"
                     f"  {evaluation['latency']['median_ms']:.3f} ms"
                     f"  agreement {evaluation['agreement']['identical_decisions']:.4f}")
        float_quality = domain.quality(data.test.labels, float_predictions.scores, float_threshold)
        _add_ratios(evaluations, keras_latency)
        metrics = {
            "headline_metric": domain.headline_metric,
            "keras_float": {"quality": float_quality, "latency": keras_latency,
                            "latency_call": "model.predict_on_batch on one example",
                            "parameters": int(trained.model.count_params())},
            "variants": evaluations,
        }
        folder.write_json(artifacts.METRICS, metrics, role="metrics")

    with progress.stage("fit devices and choose"):
        deployment, predictions, device_qualities = _deploy(
            config, domain, data, folder, evaluations, predictions, validation_predictions,
            validation_x=validation_x, test_x=test_x, progress=progress)
        ship = deployment["decision"]["ship_variant"]
        shipping_config = dataclasses.replace(config, ship_variant=ship)  # what the later stages read

    with progress.stage("explain"):
        explanation = _explain(config, domain, data, folder, predict_float, float_predictions, train_x, test_x,
                               ship_variant=ship if ship in evaluations else None, lite_model=LiteRTModel)
        figures = domain.explanation_figures(explanation)
        explanation = explain_stage.without_arrays(explanation)
        folder.write_json(artifacts.EXPLANATIONS, explanation, role="explanations")
        for name, figure in figures.items():
            folder.write_figure(name, figure)
        for name, model_result in explanation["models"].items():
            progress(f"  {name}: {model_result['seconds']:.1f} s, additivity error "
                     f"{model_result['additivity']['max_abs_error']:.2e}")

    with progress.stage("audit"):
        audit = audit_stage.audit_variants(
            labels=data.test.labels, groups=data.test.groups, predictions=predictions, reference=FLOAT_MODEL,
            bootstrap_samples=config.bootstrap_samples, seed=config.seed, min_group_size=config.min_group_size,
            clusters=data.test.clusters)
        # Whose decisions each variant's figures are: the microcontroller runtime's where a named target runs it.
        audit["settings"]["decisions_from"] = {
            name: deployment["variants"].get(name, {}).get("audited_runtime", "keras" if name == FLOAT_MODEL else "litert")
            for name in predictions}
        folder.write_json(artifacts.AUDIT, audit, role="audit")
        folder.write_text(artifacts.PREDICTIONS, audit_stage.prediction_table(
            labels=data.test.labels, groups=data.test.groups, predictions=predictions,
            clusters=data.test.clusters).to_csv(index=False, float_format="%.8g"), role="predictions")
        mitigation_column, mitigation_reason = _mitigation_column(deployment, ship, list(data.sensitive_columns))
        mitigation = audit_stage.mitigate_with_threshold_optimizer(
            validation_labels=data.validation.labels, validation_scores=float_validation_scores,
            validation_groups=data.validation.groups, test_labels=data.test.labels,
            test_scores=float_predictions.scores, test_groups=data.test.groups, threshold=float_threshold,
            seed=config.seed, sensitive_column=mitigation_column)
        mitigation.setdefault("notes", []).insert(0, mitigation_reason)
        folder.write_json(artifacts.MITIGATION, mitigation, role="mitigation")
        shipped = ship if ship in evaluations else None  # None: not built
        for name, figure in audit_stage.audit_figures(audit, mitigation, ship_variant=shipped).items():
            folder.write_figure(name, figure)
        for name, summary in audit["summary"].items():
            progress(f"  {name:14s} equalized odds difference "
                     + ", ".join(f"{column} {_fmt(value)}" for column, value in
                                 summary["equalized_odds_difference"].items())
                     + f"; flagged cells {summary.get('flagged_cells', 0)}")

        predict_functions = {FLOAT_MODEL: predict_float, **{
            name: LiteRTModel(folder.read_bytes(artifacts.model_path(name))).predict for name in evaluations}}
        analyses = domain.extra_analyses(predict_functions=predict_functions,
                                         thresholds={name: p.threshold for name, p in predictions.items()},
                                         preprocessing=shipped_preprocessing, data=data, config=shipping_config)
        for name, analysis in analyses.items():
            folder.write_json(artifacts.analysis_path(name), analysis, role="analysis")
            if analysis.get("summary"):
                progress(f"  {analysis.get('title', name)}: {analysis['summary']}")
        for name, figure in domain.extra_figures(analyses).items():
            folder.write_figure(name, figure)

    with progress.stage("report"):
        qualities = {FLOAT_MODEL: float_quality, **{name: e["quality"] for name, e in evaluations.items()},
                     **device_qualities}  # the microcontroller runtime's, where a named target runs it
        gate = apply_gate(thresholds=config.gate, ship_variant=ship,
                          headline_metric=domain.headline_metric, qualities=qualities,
                          audit=audit, extra_checks=choice_checks(deployment["decision"], ship_variant=ship),
                          runtime="tflite-micro" if ship in device_qualities else None)
        folder.write_json(artifacts.GATE, gate, role="gate")
        manifest = _manifest(config, domain, data, runtime, variants, evaluations, gate, run_id=folder.run_id,
                             distributed=trained.distributed, ship_variant=ship)
        card = report_stage.model_card(
            manifest=manifest, metrics=metrics, compression={n: v.summary() for n, v in variants.items()},
            audit=audit, mitigation=mitigation, explanation=explanation, gate=gate, analyses=analyses,
            training=trained.summary(), plots=sorted(p for p in folder.artifacts if p.startswith("plots/")),
            deployment=deployment)
        for name, figure in report_stage.evaluation_figures(metrics, ship_variant=ship).items():
            folder.write_figure(name, figure)
        folder.write_text(artifacts.MODEL_CARD_MARKDOWN, card.markdown, role="model_card")
        folder.write_text(artifacts.MODEL_CARD_HTML, card.html, role="model_card")
    return manifest, gate


def _deploy(config: RunConfig, domain: Domain, data: DomainData, folder: artifacts.RunFolder,
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

    device_files = _write_device_files(folder, domain, data, deployments, fits, shown, ship)
    deployment = {"format": "edgeaudit.deployment.v1", "targets": [t.to_json() for t in shown.values()],
                  "named_targets": [t.name for t in named],
                  "flash_note": "flash_bytes is the model's own bytes; each target's reserved_flash_bytes stands for "
                                "the rest of the firmware (interpreter, kernels, application)",
                  "variants": {name: {**entry, "targets": fits[name], "device_files": device_files.get(name, [])}
                               for name, entry in deployments.items()},
                  "decision": decision, "device": device_files.get("_shipped")}
    folder.write_json(artifacts.DEPLOYMENT, deployment, role="deployment")
    return deployment, judged_test, judged_qualities


def _mitigation_column(deployment: dict, ship: str, columns: list[str]) -> tuple[str | None, str]:
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


def _write_device_files(folder: artifacts.RunFolder, domain: Domain, data: DomainData, deployments: dict,
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


def compression_job(config: RunConfig, domain: Domain, data: DomainData, trained, *, model_options: dict,
                    train_x: np.ndarray, validation_x: np.ndarray, batch_size: int, threads: int | None = None,
                    deterministic_ops: bool = False):
    """The CompressionJob of a trained model, with every compression option of the config; `threads` and
    `deterministic_ops`: the run's TensorFlow settings (Runtime), which the compression child repeats."""
    from pipeline.stages.compress import CompressionJob, weights_by_layer_name
    from pipeline.stages.train import sample_weights_for

    return CompressionJob(
        model_builder=domain.model_builder, input_shape=tuple(train_x.shape[1:]), model_options=model_options,
        weights=weights_by_layer_name(trained.model), twin_model_options=domain.twin_model_options(),
        train_features=train_x, train_labels=data.train.labels.astype(np.float32),
        train_sample_weights=sample_weights_for(data.train.labels, trained.class_weights),
        representative_features=train_x[representative_row_ids(data.train.labels, config.representative_rows,
                                                               config.seed)],
        validation_features=validation_x, validation_labels=data.validation.labels, variants=config.variants,
        target_sparsity=config.target_sparsity, fine_tune_epochs=config.fine_tune_epochs,
        pruning_learning_rates=config.pruning_learning_rates(),
        quantization_aware_learning_rate=config.quantization_aware_learning_rate,
        per_channel_dense=config.per_channel_dense, batch_size=batch_size, seed=config.seed,
        threads=threads or None, deterministic_ops=deterministic_ops)


def representative_row_ids(labels: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Training rows for int8 calibration: up to half positives, the rest negatives.

    With rare positives a uniform sample holds almost none (about 4 of 200 at 2 %), so the
    activation ranges of the cases that matter would be calibrated on a handful of rows
    and saturate on device.
    """
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rows = min(rows, len(labels))
    take_positive = min(len(positives), rows // 2)
    chosen = np.concatenate([rng.choice(positives, take_positive, replace=False),
                             rng.choice(negatives, min(len(negatives), rows - take_positive), replace=False)])
    return np.sort(chosen)


def _explain(config, domain, data, folder, predict_float, float_predictions, train_x, test_x, *,
             ship_variant, lite_model) -> dict:
    rng = np.random.default_rng(config.seed)
    background = train_x[rng.choice(len(train_x), size=min(config.background_rows, len(train_x)), replace=False)]
    # Explain every flagged test row we can afford plus a random sample of the rest.
    flagged = np.flatnonzero(float_predictions.decisions == 1)
    flagged = flagged[np.argsort(-float_predictions.scores[flagged])]
    others = rng.permutation(np.setdiff1d(np.arange(len(test_x)), flagged))
    row_ids = np.concatenate([flagged[: config.explain_rows // 2], others])[: config.explain_rows]
    row_ids = np.sort(row_ids)
    local_row_ids = [int(i) for i in flagged[: config.local_examples]]
    predict_functions = {FLOAT_MODEL: predict_float}
    if ship_variant is not None:
        predict_functions[ship_variant] = lite_model(folder.read_bytes(artifacts.model_path(ship_variant))).predict
    return domain.explain(predict_functions=predict_functions, data=data, background=background,
                          rows=test_x[row_ids], row_ids=[int(i) for i in row_ids], local_row_ids=local_row_ids,
                          seed=config.seed, reference=FLOAT_MODEL)


def _add_ratios(evaluations: dict[str, dict], keras_latency: dict) -> None:
    """Size ratios to the float32 .tflite and latency ratio to the Keras model, per variant."""
    base = evaluations.get("float32", {}).get("size")
    for evaluation in evaluations.values():
        if base:
            evaluation["size"]["ratio_to_float32"] = evaluation["size"]["bytes"] / base["bytes"]
            evaluation["size"]["gzip_ratio_to_float32"] = evaluation["size"]["gzip_bytes"] / base["bytes"]
        evaluation["latency"]["ratio_to_keras"] = evaluation["latency"]["median_ms"] / keras_latency["median_ms"]


def _manifest(config, domain, data, runtime, variants, evaluations, gate, *, run_id: str, ship_variant: str,
              distributed: dict | None = None) -> dict:
    entries = []
    for name, result in variants.items():
        entry = {"name": name, "status": result.status, "reason": result.reason}
        if name in evaluations:
            evaluation = evaluations[name]
            entry.update({
                "tflite": artifacts.model_path(name), "preprocessing": artifacts.PREPROCESSING,
                "metrics": f"{artifacts.METRICS}#/variants/{name}",
                "threshold": evaluation["quality"]["threshold"],
                domain.headline_metric: evaluation["quality"][domain.headline_metric],
                "bytes": evaluation["size"]["bytes"], "gzip_bytes": evaluation["size"]["gzip_bytes"],
                "shipped": name == ship_variant,
            })
        entries.append(entry)
    source = dataclasses.asdict(data.source)
    return {
        "format": "edgeaudit.run.v1",
        "run_id": run_id,
        "domain": domain.name,
        "edgeaudit_version": _version("edgeaudit"),
        "status": "complete",
        "domain_title": domain.title,
        "modality": domain.modality,
        "headline_metric": domain.headline_metric,
        "config": config.to_json(),
        "seed": config.seed,
        "runtime": runtime.to_json(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "data": {
            **source,
            "label": data.label_name, "positive_class": data.positive_class,
            "sensitive_columns": list(data.sensitive_columns),
            "splits": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
            "positives": {"train": int(data.train.labels.sum()), "validation": int(data.validation.labels.sum()),
                          "test": int(data.test.labels.sum())},
            "model_inputs": len(data.feature_names),
            # Independent units in the test split (machines, customers, patients), None where every
            # row is its own: the audit's bootstrap draws whole units.
            "test_units": None if data.test.clusters is None else int(len(np.unique(data.test.clusters))),
        },
        "ship_variant": ship_variant,
        "ship_rule": "chosen on the validation split (deployment.json)" if config.ship_variant == "auto"
                     else "named with --ship",
        "targets": list(config.targets),
        "deployment": artifacts.DEPLOYMENT,
        "distributed": distributed,
        "gate": {"verdict": gate["verdict"], "passed": gate["passed"],
                 "inconclusive_counts_as": gate["inconclusive_counts_as"],
                 "failed_checks": [c["name"] for c in gate["checks"] if not c["passed"]]},
        "variants": entries,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _peak_memory_mb() -> float:
    """Peak resident memory of this process and its (finished) children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
