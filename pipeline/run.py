"""Wires the stages: load → train → compress → evaluate (LiteRT) → fit devices and choose the variant
to ship (on validation) → explain → audit → report → gate.

Stage functions take and return plain values; only this module talks to the run folder
(`pipeline.artifacts.RunFolder`). A run that fails for any reason is discarded, so the
reports folder only ever holds finished runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline import artifacts
from pipeline.config import FLOAT_MODEL, RunConfig
from pipeline.domain import Domain, DomainData
from pipeline.metrics import Predictions, choose_threshold
from pipeline.progress import Progress
from pipeline.registry import get_domain
from pipeline import deploy_step, run_manifest, search_step

STAGES = ["load data", "train", "compress", "evaluate on LiteRT", "fit devices and choose", "explain", "audit",
          "report"]


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
        for warning in data.source.warnings:
            progress(f"  WARNING: {warning}")

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
            "peak_memory_mb": run_manifest.peak_memory_mb(),
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
    config.validate()  # also here for a config built in Python: a domain option the domain does not read, ...
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


@dataclass(frozen=True)
class _Inputs:
    """The model inputs of every split, encoded with the preprocessing file as shipped, and the model's options."""

    shipped_preprocessing: dict
    train_x: np.ndarray
    validation_x: np.ndarray
    test_x: np.ndarray
    input_shape: tuple
    model_options: dict


@dataclass(frozen=True)
class _FloatModel:
    """The trained Keras model, and its decisions: the threshold chosen on validation, the test predictions."""

    trained: Any                     # pipeline.stages.train.TrainedModel
    record: dict                     # what training.json holds (the model search's trials included)
    predict: Callable[[np.ndarray], np.ndarray]
    validation_scores: np.ndarray
    threshold: float
    predictions: Predictions         # on the test split
    model_options: dict              # the builder's options of `trained` (a deep ensemble's members included)


@dataclass(frozen=True)
class _Evaluation:
    """Every built variant in LiteRT: its metrics entry, its test and validation predictions."""

    evaluations: dict[str, dict]
    predictions: dict[str, Predictions]             # FLOAT_MODEL included
    validation_predictions: dict[str, Predictions]  # FLOAT_MODEL included
    float_quality: dict
    metrics: dict                                   # what metrics.json holds


def _run_stages(config: RunConfig, domain: Domain, data: DomainData, runtime, folder: artifacts.RunFolder,
                progress: Progress, cluster=None) -> tuple[dict, dict]:
    """The stages in order, each in its progress stage; the steps below compute, and write what they made."""
    from pipeline.stages.evaluate import LiteRTModel

    with progress.stage("train"):
        recipe = search_step.recipe(config, domain, data, runtime, progress, cluster=cluster)
        data = recipe.data   # the preprocessing the model is trained on (the search may choose its encoding)
        inputs = _encoded_inputs(config, domain, data, folder, recipe)
        float_model = _train_float_model(config, domain, data, runtime, folder, progress, inputs, cluster, recipe)
    with progress.stage("compress"):
        variants = _compress_variants(config, domain, data, runtime, folder, progress, inputs, float_model, recipe)
    with progress.stage("evaluate on LiteRT"):
        evaluated = _evaluate_variants(config, domain, data, folder, progress, inputs, float_model, variants)
    evaluations = evaluated.evaluations
    with progress.stage("fit devices and choose"):
        deployment, predictions, device_qualities = deploy_step.deploy(
            config, domain, data, folder, evaluations, evaluated.predictions, evaluated.validation_predictions,
            validation_x=inputs.validation_x, test_x=inputs.test_x, progress=progress)
        ship = deployment["decision"]["ship_variant"]
        shipping_config = dataclasses.replace(config, ship_variant=ship)  # what the later stages read
    with progress.stage("explain"):
        shipped = ship if ship in evaluations else None
        candidates = _explained_candidates(domain, deployment, evaluated.validation_predictions, ship=shipped)
        explanation = _explain(config, domain, data, folder, float_model.predict, float_model.predictions,
                               inputs.train_x, inputs.test_x, ship_variant=shipped, candidates=candidates,
                               lite_model=LiteRTModel)
        explanation = _write_explanation(config, domain, data, folder, progress, explanation, ship=shipped)
    with progress.stage("audit"):
        audit, mitigation, flips = _audit(config, data, folder, progress, float_model, predictions, deployment,
                                   ship=ship, built=ship in evaluations)
        analyses = _extra_analyses(shipping_config, domain, data, folder, progress, inputs, float_model,
                                   evaluations, predictions)
    with progress.stage("report"):
        qualities = {FLOAT_MODEL: evaluated.float_quality, **{name: e["quality"] for name, e in evaluations.items()},
                     **device_qualities}  # the microcontroller runtime's, where a named target runs it
        gate = _gate(config, domain, folder, qualities, audit, deployment, ship=ship,
                     micro_judged=ship in device_qualities)
        manifest = run_manifest.manifest(config, domain, data, runtime, variants, evaluations, gate, run_id=folder.run_id,
                             distributed=float_model.trained.distributed, ship_variant=ship)
        _write_model_card(folder, manifest=manifest, metrics=evaluated.metrics, variants=variants, audit=audit,
                          mitigation=mitigation, explanation=explanation, gate=gate, analyses=analyses,
                          training=float_model.record, deployment=deployment, flips=flips, ship=ship)
    return manifest, gate


def _encoded_inputs(config: RunConfig, domain: Domain, data: DomainData, folder: artifacts.RunFolder,
                    recipe: search_step.Recipe) -> _Inputs:
    """Writes the preprocessing file and encodes every split with it as read back."""
    # What ships beside every .tflite is written first and read back: every later stage
    # encodes with the file a device will get, not with an in-memory copy.
    folder.write_json(artifacts.PREPROCESSING, data.preprocessing, role="preprocessing")
    shipped_preprocessing = folder.read_json(artifacts.PREPROCESSING)
    train_x = domain.encode(shipped_preprocessing, data.train.raw)
    validation_x = domain.encode(shipped_preprocessing, data.validation.raw)
    test_x = domain.encode(shipped_preprocessing, data.test.raw)
    return _Inputs(shipped_preprocessing=shipped_preprocessing, train_x=train_x, validation_x=validation_x,
                   test_x=test_x, input_shape=tuple(train_x.shape[1:]), model_options=recipe.model_options)


def _train_float_model(config: RunConfig, domain: Domain, data: DomainData, runtime, folder: artifacts.RunFolder,
                       progress: Progress, inputs: _Inputs, cluster, recipe: search_step.Recipe) -> _FloatModel:
    """Trains the Keras model, chooses its threshold on validation, predicts the test split; writes training.json."""
    from pipeline.stages.train import batched_predict_function

    if recipe.trained is not None:   # the search trained this recipe on every train row: its model is the one
        trained = recipe.trained
        progress("  the float model is the chosen trial's (trained on every train row, early-stopped on validation)")
    else:
        trained = _train_recipe(config, domain, data, runtime, inputs, recipe, progress=progress, cluster=cluster)
    progress(f"  best epoch {trained.best_epoch} of {trained.epochs_run}, {trained.seconds:.1f} s")
    model_options, ensemble = inputs.model_options, None
    members = search_step.ensemble_members_in_force(config, domain, data, cluster=cluster)
    if members > 1:
        outcome = _deep_ensemble(config, domain, data, runtime, progress, inputs, recipe, trained, members)
        trained, model_options, ensemble = outcome.trained, outcome.model_options, outcome.record
    predict_float = batched_predict_function(trained.model)
    validation_scores = predict_float(inputs.validation_x)
    threshold = choose_threshold(data.validation.labels, validation_scores, config.threshold_rule)
    predictions = Predictions(predict_float(inputs.test_x), threshold)
    record = {**trained.summary(), "runtime": runtime.to_json(), "model_options": model_options,
              "input_shape": inputs.input_shape, "search": recipe.search, "ensemble": ensemble}
    folder.write_json(artifacts.TRAINING, record, role="training")
    return _FloatModel(trained=trained, record=record, predict=predict_float, validation_scores=validation_scores,
                       threshold=threshold, predictions=predictions, model_options=model_options)


def _train_recipe(config: RunConfig, domain: Domain, data: DomainData, runtime, inputs: _Inputs,
                  recipe: search_step.Recipe, *, progress, cluster=None):
    """One network of the recipe on every train row, early-stopped on validation (`train.train_model`)."""
    from pipeline.stages.train import train_model

    return train_model(
        model_builder=domain.model_builder, input_shape=inputs.input_shape,
        train_features=inputs.train_x, train_labels=data.train.labels,
        validation_features=inputs.validation_x, validation_labels=data.validation.labels,
        runtime=runtime, epochs=config.epochs, optimizer=domain.optimizer,
        progress=progress, cluster=cluster, augmentation=domain.augmentation(), **recipe.training_options())


def _deep_ensemble(config: RunConfig, domain: Domain, data: DomainData, runtime, progress: Progress, inputs: _Inputs,
                   recipe: search_step.Recipe, first, members: int):
    """Members 2..`members` of the recipe with their own seeds, averaged with `first` (stages/ensemble.py)."""
    import keras

    from pipeline.domains.tabular import member_layer_name
    from pipeline.stages.ensemble import train_deep_ensemble

    def train_member(member: int):
        seed = runtime.seed + member - 1   # member 1 is `first`, trained with the run's seed
        keras.utils.set_random_seed(seed)
        return _train_recipe(config, domain, data, dataclasses.replace(runtime, seed=seed), inputs, recipe,
                             progress=lambda line: None)

    return train_deep_ensemble(
        first, members=members, model_builder=domain.model_builder, input_shape=inputs.input_shape,
        model_options=inputs.model_options, layer_name=member_layer_name, train_member=train_member,
        validation_features=inputs.validation_x, validation_labels=data.validation.labels, progress=progress)


def _compress_variants(config: RunConfig, domain: Domain, data: DomainData, runtime, folder: artifacts.RunFolder,
                       progress: Progress, inputs: _Inputs, float_model: "_FloatModel",
                       recipe: search_step.Recipe) -> dict:
    """Builds every variant; writes each .tflite built and compression.json. Returns name -> VariantResult."""
    from pipeline.stages.compress import compress

    job = compression_job(config, domain, data, float_model.trained, model_options=float_model.model_options,
                          train_x=inputs.train_x, validation_x=inputs.validation_x, batch_size=runtime.batch_size,
                          threads=runtime.intra_op_threads, deterministic_ops=runtime.deterministic_ops,
                          reference=Predictions(float_model.validation_scores, float_model.threshold), recipe=recipe)
    variants = compress(job, progress=progress)
    for result in variants.values():
        if result.tflite is not None:
            folder.write_bytes(artifacts.model_path(result.name), result.tflite, role="tflite",
                               variant=result.name)
    folder.write_json(artifacts.COMPRESSION, {name: v.summary() for name, v in variants.items()},
                      role="compression")
    _write_layer_errors(folder, progress, variants)
    _write_pruning_sensitivity(folder, progress, variants)
    return variants


def _write_pruning_sensitivity(folder: artifacts.RunFolder, progress: Progress, variants: dict) -> None:
    """The figure of pruned_int8's sensitivity scan, and a line on how its sparsity was spread over layers."""
    from pipeline.stages import pruning_sensitivity

    result = variants.get("pruned_int8")
    allocation = (result.details.get("sparsity_allocation") if result is not None and result.status == "ok"
                  else None)
    if not allocation:
        return
    if allocation["method"] == "sensitivity":
        progress("  pruned_int8: sparsity per layer by sensitivity: " + ", ".join(
            f"{name} {level:.0%}" for name, level in allocation["sparsity"].items())
            + f" ({allocation['overall']:.1%} of the pruned weights)")
    figure = pruning_sensitivity.sensitivity_figure(allocation)
    if figure is not None:
        folder.write_figure("pruning_sensitivity", figure)


def _write_layer_errors(folder: artifacts.RunFolder, progress: Progress, variants: dict) -> None:
    """Writes layers.json (every full-integer variant's per-layer quantization error) and its figure."""
    from pipeline.stages import layer_errors

    measured = {name: result.layers for name, result in variants.items() if result.layers is not None}
    if not measured:
        return
    document = layer_errors.layers_document(measured)
    folder.write_json(artifacts.LAYERS, document, role="layers")
    figure = layer_errors.layer_error_figure(document)
    if figure is not None:
        folder.write_figure("layer_errors", figure)
    for name, table in measured.items():
        if "error" in table:
            progress(f"  {name}: per-layer error {table['error']}")
        elif table["summary"]["worst"] is not None:
            worst = table["summary"]["worst"]
            marked = table["summary"]["over_warning_level"]
            progress(f"  {name}: worst layer {worst['keras_layer'] or worst['tensor_name']} "
                     f"(RMSE/scale {worst['rmse_over_scale']:.2f}); "
                     + (f"over {layer_errors.WARNING_LEVEL}: {', '.join(marked)}" if marked else
                        f"none over {layer_errors.WARNING_LEVEL}"))


def _evaluate_variants(config: RunConfig, domain: Domain, data: DomainData, folder: artifacts.RunFolder,
                       progress: Progress, inputs: _Inputs, float_model: _FloatModel, variants: dict) -> _Evaluation:
    """Every built variant's file, as written, in LiteRT on validation and test; writes metrics.json."""
    from pipeline.stages.evaluate import evaluate_variant, measure_keras_latency

    evaluations: dict[str, dict] = {}
    predictions: dict[str, Predictions] = {FLOAT_MODEL: float_model.predictions}
    validation_predictions: dict[str, Predictions] = {
        FLOAT_MODEL: Predictions(float_model.validation_scores, float_model.threshold)}
    trained = float_model.trained
    keras_latency = measure_keras_latency(trained.model.predict_on_batch, inputs.test_x[0], runs=config.latency_runs)
    for name, result in variants.items():
        if result.status != "ok":
            continue
        shipped_bytes = folder.read_bytes(artifacts.model_path(name))  # the file, as written
        evaluations[name], predictions[name], validation_predictions[name] = evaluate_variant(
            shipped_bytes, validation_features=inputs.validation_x, validation_labels=data.validation.labels,
            test_features=inputs.test_x, test_labels=data.test.labels, reference=float_model.predictions,
            latency_runs=config.latency_runs, quality=domain.quality, threshold_rule=config.threshold_rule)
        evaluation = evaluations[name]
        progress(f"  {name:14s} {domain.headline_metric} {_fmt(evaluation['quality'][domain.headline_metric])}"
                 f"  {evaluation['size']['bytes']:>9,} B  gzip {evaluation['size']['gzip_bytes']:>9,} B"
                 f"  {evaluation['latency']['median_ms']:.3f} ms"
                 f"  agreement {evaluation['agreement']['identical_decisions']:.4f}")
    float_quality = domain.quality(data.test.labels, float_model.predictions.scores, float_model.threshold)
    _add_ratios(evaluations, keras_latency)
    metrics = {
        "headline_metric": domain.headline_metric,
        "keras_float": {"quality": float_quality, "latency": keras_latency,
                        "latency_call": "model.predict_on_batch on one example",
                        "parameters": int(trained.model.count_params())},
        "variants": evaluations,
    }
    if domain.modality_of(data) == "tabular":  # would a team ship this model? (pipeline/stages/baselines.py)
        from pipeline.stages.baselines import fit_baselines

        metrics["baselines"] = fit_baselines(
            train_x=inputs.train_x, train_labels=data.train.labels, validation_x=inputs.validation_x,
            validation_labels=data.validation.labels, test_x=inputs.test_x, test_labels=data.test.labels,
            quality=domain.quality, threshold_rule=config.threshold_rule, seed=config.seed,
            headline_metric=domain.headline_metric, keras_quality=float_quality)
        progress(f"  baselines: {metrics['baselines']['sentence']}")
    folder.write_json(artifacts.METRICS, metrics, role="metrics")
    return _Evaluation(evaluations=evaluations, predictions=predictions,
                       validation_predictions=validation_predictions, float_quality=float_quality, metrics=metrics)


def _write_explanation(config: RunConfig, domain: Domain, data: DomainData, folder: artifacts.RunFolder,
                       progress: Progress, explanation: dict, *, ship: str | None = None) -> dict:
    """Writes an explanation (explanations.json, without its arrays, with its drift by group) and its figures;
    returns what was written. The drift covers every explained model; the rest (figures, per-model results)
    only the float model and the shipped variant."""
    from pipeline.stages import explain as explain_stage
    from pipeline.stages.explanation_drift import explanation_drift

    drift = explanation_drift(explanation, data.test.groups, min_agreement=config.min_explanation_agreement)
    if "models" in drift:
        drift["shipped"] = ship
    explanation = explain_stage.only_models(explanation, [explanation["reference"], *([ship] if ship else [])])
    explanation["drift_by_group"] = drift
    for name, drift in explanation["drift_by_group"].get("models", {}).items():
        flagged = ", ".join(f"{item['column']} = {item['group']}" if item["column"] else item["group"]
                            for item in drift["flagged"])
        progress(f"  {name}: explanation agreement with the float model by group"
                 + (f"; under {config.min_explanation_agreement}: {flagged}" if flagged else
                    f": every group over {config.min_explanation_agreement}"))
    figures = domain.explanation_figures(explanation, data)
    explanation = explain_stage.without_arrays(explanation)
    folder.write_json(artifacts.EXPLANATIONS, explanation, role="explanations")
    for name, figure in figures.items():
        folder.write_figure(name, figure)
    for name, model_result in explanation["models"].items():
        progress(f"  {name}: {model_result['seconds']:.1f} s, additivity error "
                 f"{model_result['additivity']['max_abs_error']:.2e}")
    return explanation


def _audit(config: RunConfig, data: DomainData, folder: artifacts.RunFolder, progress: Progress,
           float_model: _FloatModel, predictions: dict[str, Predictions], deployment: dict, *, ship: str,
           built: bool) -> tuple[dict, dict, dict]:
    """The fairness audit of every model's test decisions, the flip ledger, and the mitigation fitted for the
    shipped variant; writes audit.json, predictions.csv, flips.csv, flips.json, mitigation.json and their figures.
    Returns (audit, mitigation, flip rates)."""
    from pipeline.stages import audit as audit_stage

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
    flips = _write_flip_ledger(config, data, folder, progress, predictions, ship=ship if built else None)
    mitigation_column, mitigation_reason = deploy_step.mitigation_column(deployment, ship, list(data.sensitive_columns))
    mitigation = audit_stage.mitigate_with_threshold_optimizer(
        validation_labels=data.validation.labels, validation_scores=float_model.validation_scores,
        validation_groups=data.validation.groups, test_labels=data.test.labels,
        test_scores=float_model.predictions.scores, test_groups=data.test.groups, threshold=float_model.threshold,
        seed=config.seed, sensitive_column=mitigation_column)
    mitigation.setdefault("notes", []).insert(0, mitigation_reason)
    folder.write_json(artifacts.MITIGATION, mitigation, role="mitigation")
    shipped = ship if built else None  # None: not built
    for name, figure in audit_stage.audit_figures(audit, mitigation, ship_variant=shipped).items():
        folder.write_figure(name, figure)
    for name, summary in audit["summary"].items():
        progress(f"  {name:14s} equalized odds difference "
                 + ", ".join(f"{column} {_fmt(value)}" for column, value in
                             summary["equalized_odds_difference"].items())
                 + f"; flagged cells {summary.get('flagged_cells', 0)}")
    return audit, mitigation, flips


def _write_flip_ledger(config: RunConfig, data: DomainData, folder: artifacts.RunFolder, progress: Progress,
                       predictions: dict[str, Predictions], *, ship: str | None) -> dict:
    """The decisions each variant flipped against the float model: writes flips.csv, flips.json and their
    figures (per-group flip rates; the shipped variant's flipped images). Returns flips.json's content."""
    from pipeline.stages.audit import flips as flip_stage

    ledger = flip_stage.flip_ledger(labels=data.test.labels, groups=data.test.groups, predictions=predictions,
                                    reference=FLOAT_MODEL, clusters=data.test.clusters,
                                    examples=flip_stage.example_texts(data.test.raw))
    rates = flip_stage.flip_rates(labels=data.test.labels, groups=data.test.groups, predictions=predictions,
                                  reference=FLOAT_MODEL, clusters=data.test.clusters,
                                  bootstrap_samples=config.bootstrap_samples, seed=config.seed,
                                  min_group_size=config.min_group_size)
    folder.write_text(artifacts.FLIPS, ledger.to_csv(index=False, float_format="%.8g"), role="flips")
    folder.write_json(artifacts.FLIP_RATES, rates, role="flips")
    if rates["variants"]:
        for column in rates["settings"]["columns"]:
            folder.write_figure(f"flip_rates_{artifacts.safe_name(column)}", flip_stage.flip_rate_figure(rates, column))
    raw = data.test.raw
    if ship is not None and isinstance(raw, np.ndarray) and raw.ndim == 4:  # images: (rows, height, width, channels)
        figure = flip_stage.flipped_images_figure(raw, ledger, ship)
        if figure is not None:
            folder.write_figure(f"flipped_images_{ship}", figure)
    for name, summary in rates["variants"].items():
        overall = summary["overall"]
        progress(f"  {name:14s} flipped {overall['flips']:,} of {overall['rows']:,} test decisions "
                 f"({overall['now_wrong']:,} now wrong, {overall['now_right']:,} now right)")
    return rates


def _extra_analyses(shipping_config: RunConfig, domain: Domain, data: DomainData, folder: artifacts.RunFolder,
                    progress: Progress, inputs: _Inputs, float_model: _FloatModel, evaluations: dict[str, dict],
                    predictions: dict[str, Predictions]) -> dict:
    """The domain's own analyses of every model (the variants' files, as written); writes them and their figures."""
    from pipeline.stages.evaluate import LiteRTModel

    predict_functions = {FLOAT_MODEL: float_model.predict, **{
        name: LiteRTModel(folder.read_bytes(artifacts.model_path(name))).predict for name in evaluations}}
    analyses = domain.extra_analyses(predict_functions=predict_functions,
                                     thresholds={name: p.threshold for name, p in predictions.items()},
                                     preprocessing=inputs.shipped_preprocessing, data=data, config=shipping_config)
    for name, analysis in analyses.items():
        folder.write_json(artifacts.analysis_path(name), analysis, role="analysis")
        if analysis.get("summary"):
            progress(f"  {analysis.get('title', name)}: {analysis['summary']}")
    for name, figure in domain.extra_figures(analyses).items():
        folder.write_figure(name, figure)
    return analyses


def _gate(config: RunConfig, domain: Domain, folder: artifacts.RunFolder, qualities: dict, audit: dict,
          deployment: dict, *, ship: str, micro_judged: bool) -> dict:
    """The release gate of the shipped variant, on the test split; writes gate.json."""
    from pipeline.stages.deploy import choice_checks
    from pipeline.stages.gate import apply_gate

    gate = apply_gate(thresholds=config.gate, ship_variant=ship,
                      headline_metric=domain.headline_metric, qualities=qualities,
                      audit=audit, extra_checks=choice_checks(deployment["decision"], ship_variant=ship),
                      runtime="tflite-micro" if micro_judged else None)
    folder.write_json(artifacts.GATE, gate, role="gate")
    return gate


def _write_model_card(folder: artifacts.RunFolder, *, manifest: dict, metrics: dict, variants: dict, audit: dict,
                      mitigation: dict, explanation: dict, gate: dict, analyses: dict, training: dict,
                      deployment: dict, flips: dict, ship: str) -> None:
    """Writes the evaluation figures and the model card (Markdown and HTML)."""
    from pipeline.stages import report as report_stage

    card = report_stage.model_card(
        manifest=manifest, metrics=metrics, compression={n: v.summary() for n, v in variants.items()},
        audit=audit, mitigation=mitigation, explanation=explanation, gate=gate, analyses=analyses,
        training=training, plots=sorted(p for p in folder.artifacts if artifacts.is_plot(p)),
        deployment=deployment, flips=flips,
        layers={name: v.layers for name, v in variants.items() if v.layers is not None})
    for name, figure in report_stage.evaluation_figures(metrics, ship_variant=ship).items():
        folder.write_figure(name, figure)
    folder.write_text(artifacts.MODEL_CARD_MARKDOWN, card.markdown, role="model_card")
    folder.write_text(artifacts.MODEL_CARD_HTML, card.html, role="model_card")


def compression_job(config: RunConfig, domain: Domain, data: DomainData, trained, *, model_options: dict,
                    train_x: np.ndarray, validation_x: np.ndarray, batch_size: int, threads: int | None = None,
                    deterministic_ops: bool = False, reference: Predictions | None = None,
                    recipe: search_step.Recipe | None = None):
    """The CompressionJob of a trained model, with every compression option of the config; `threads` and
    `deterministic_ops`: the run's TensorFlow settings (Runtime), which the compression child repeats;
    `reference`: the float model's validation predictions, which selective_int8 is judged against; `recipe`: how the
    float model was trained, which fine-tuning repeats (--fine-tune-targets training; None: the default recipe)."""
    from pipeline.stages import calibration_audit
    from pipeline.stages.compress import CompressionJob, weights_by_layer_name
    from pipeline.stages.group_harm import HarmTarget

    # The calibration-set audit's candidates: rows of one group of the first sensitive column each.
    column = str(data.train.groups.columns[0]) if reference is not None and data.train.groups.shape[1] else None
    group_ids = {} if column is None else calibration_audit.group_row_ids(
        data.train.labels, data.train.groups[column].to_numpy(), rows=config.representative_rows, seed=config.seed,
        min_rows=config.min_group_size, draw=representative_row_ids)
    calibration_sets = {calibration_audit.group_set_name(column, group): train_x[ids]
                        for group, ids in group_ids.items()} if len(group_ids) >= 2 else {}

    return CompressionJob(
        model_builder=domain.model_builder, input_shape=tuple(train_x.shape[1:]), model_options=model_options,
        weights=weights_by_layer_name(trained.model), twin_model_options=domain.twin_model_options(data),
        **fine_tuning_rows(config.fine_tune_targets, train_x, data.train.labels, trained.class_weights, recipe),
        representative_features=train_x[representative_row_ids(data.train.labels, config.representative_rows,
                                                               config.seed)],
        validation_features=validation_x, validation_labels=data.validation.labels, variants=config.variants,
        target_sparsity=config.target_sparsity, fine_tune_epochs=config.fine_tune_epochs,
        fine_tune_steps=config.fine_tune_steps, fine_tune_targets=config.fine_tune_targets,
        sparsity_allocation=config.sparsity_allocation,
        pruning_learning_rates=config.pruning_learning_rates(),
        quantization_aware_learning_rate=config.quantization_aware_learning_rate,
        per_channel_dense=config.per_channel_dense, batch_size=batch_size, seed=config.seed,
        threads=threads or None, deterministic_ops=deterministic_ops,
        harm_target=None if reference is None else HarmTarget(
            groups={str(column): data.validation.groups[column].astype(str).to_numpy()
                    for column in data.validation.groups.columns},
            reference_decisions=reference.decisions, max_change=config.gate.max_gap_widening,
            threshold_rule=config.threshold_rule, min_group_size=config.min_group_size,
            min_positives=config.gate.min_positives_per_group),
        calibration_sets=calibration_sets, calibration_column=column if calibration_sets else None)


def fine_tuning_rows(what: str, train_x: np.ndarray, labels: np.ndarray, class_weights: dict[int, float],
                     recipe: search_step.Recipe | None) -> dict:
    """The CompressionJob fields of what fine-tuning fits (config.FINE_TUNE_TARGETS). "training": what the float
    model was trained on (the recipe's synthetic rows after the train rows, its teacher's mix as targets, the same
    weights and loss), since fine-tuning on another objective or fewer rows moves the model away from the one it
    replaces; otherwise the train rows' labels, class-weighted, with binary cross-entropy ("float_model" replaces
    the targets in the compression child)."""
    from pipeline.stages.fitting import sample_weights_for, training_rows

    features, targets, weights, loss = train_x, labels, None, "binary_crossentropy"
    if what == "training" and recipe is not None:
        features, _, soft, weights = training_rows(train_x, labels, class_weights, targets=recipe.train_targets,
                                                   extra_rows=recipe.extra_rows)
        targets, loss = (labels if soft is None else soft), recipe.loss
    return {"train_features": features, "train_labels": np.asarray(targets, dtype=np.float32),
            "train_sample_weights": sample_weights_for(labels, class_weights) if weights is None else weights,
            "fine_tune_loss": loss}


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


# A candidate whose validation scores all lie this close to the float model's has the float model's explanation.
SAME_SCORES = 1e-3


def _explained_candidates(domain: Domain, deployment: dict, validation: dict[str, Predictions], *,
                          ship: str | None) -> list[str]:
    """The other variants that could have shipped (fit every named target, no failed check on validation), in the
    deployment order: their explanations are compared with the float model's too (explanation drift). Left out:
    a variant that scores every validation row as the float model does (float32, within SAME_SCORES), whose
    explanation is the float model's, and every variant where a domain's explanations share no players across
    rows (text), so that nothing could be compared."""
    if ship is None or domain.modality == "text":
        return []
    decision = deployment["decision"]
    reference = np.asarray(validation[FLOAT_MODEL].scores)
    return [name for name in decision.get("order") or [] if name != ship
            and decision["table"][name]["fits_named_targets"] and decision["table"][name]["validation_verdict"] != "fail"
            and float(np.max(np.abs(np.asarray(validation[name].scores) - reference))) >= SAME_SCORES]


def _explain(config, domain, data, folder, predict_float, float_predictions, train_x, test_x, *,
             ship_variant, lite_model, candidates: list[str] = ()) -> dict:
    """The float model's, the shipped variant's and the other candidates' (each .tflite as written) explanation,
    on the rows the explain stage picks (pipeline/stages/explain.py), by the domain's explainer."""
    from pipeline.stages.explain import explain_models, explanation_rows

    chosen = explanation_rows(train_x=train_x, test_x=test_x, float_predictions=float_predictions,
                              seed=config.seed, background_rows=config.background_rows,
                              explain_rows=config.explain_rows, local_examples=config.local_examples)
    predict_functions = {FLOAT_MODEL: predict_float}
    if ship_variant is not None:
        predict_functions[ship_variant] = lite_model(folder.read_bytes(artifacts.model_path(ship_variant))).predict
    for name in candidates:
        predict_functions[name] = lite_model(folder.read_bytes(artifacts.model_path(name))).predict
    return explain_models(domain, data, predict_functions, chosen, test_x=test_x, seed=config.seed,
                          reference=FLOAT_MODEL)


def _add_ratios(evaluations: dict[str, dict], keras_latency: dict) -> None:
    """Size ratios to the float32 .tflite and latency ratio to the Keras model, per variant."""
    base = evaluations.get("float32", {}).get("size")
    for evaluation in evaluations.values():
        if base:
            evaluation["size"]["ratio_to_float32"] = evaluation["size"]["bytes"] / base["bytes"]
            evaluation["size"]["gzip_ratio_to_float32"] = evaluation["size"]["gzip_bytes"] / base["bytes"]
        evaluation["latency"]["ratio_to_keras"] = evaluation["latency"]["median_ms"] / keras_latency["median_ms"]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
