"""The contract every registered domain must pass (scikit-learn's common-checks idea).

For each domain, one small run of the whole pipeline on its default data: it loads,
trains a tiny model, converts every variant to a .tflite that runs in LiteRT, explains
the float and the shipped model, audits every variant, reports and gates. A new domain
added to the registry is tested by this file with no new test code.
"""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pipeline import artifacts
from pipeline.artifacts import sha256_file
from pipeline.config import ALL_VARIANTS, FLOAT_MODEL, PRUNING_LEARNING_RATES, THRESHOLD_RULES, RunConfig
from pipeline.progress import Silent
from pipeline.registry import domain_names, get_domain
from pipeline.run import STAGES, run_pipeline
from pipeline.stages.evaluate import weight_sparsity
from tests.expectations import assert_learning_rate_search

MODEL_CARD_SECTIONS = ["Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                       "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"]


def tiny_config(domain: str, output_dir) -> RunConfig:
    # A named microcontroller target: the variant is chosen to fit it, and the audit judges the
    # microcontroller runtime's decisions. A domain without default data runs on its own sample.
    # A domain with a model search tries two recipes: the fixed and the recommended one, and
    # averages two networks of the one chosen (a deep ensemble; 5 by default on tables this small).
    searches = any(option.name == "search_trials" for option in get_domain(domain).options)
    return RunConfig(domain=domain, output_dir=str(output_dir), max_rows=3000, epochs=2, fine_tune_epochs=1,
                     explain_rows=12, background_rows=16, local_examples=2, bootstrap_samples=30,
                     min_group_size=10, representative_rows=50, targets=("cortex-m4",),
                     options={"search_trials": 2, "ensemble_members": 2} if searches else {},
                     **get_domain(domain).sample_data(output_dir))


@pytest.fixture(scope="module", params=domain_names())
def finished_run(request, tmp_path_factory):
    config = tiny_config(request.param, tmp_path_factory.mktemp(request.param))
    outcome = run_pipeline(config, progress=Silent(STAGES))
    return request.param, config, outcome


@pytest.mark.parametrize("name", domain_names())
def test_load_gives_consistent_splits(name, tmp_path):
    domain = get_domain(name)
    config = dataclasses.replace(tiny_config(name, tmp_path), max_rows=1500)
    data = domain.load(config)
    for split in (data.train, data.validation, data.test):
        assert len(split.labels) == len(split.groups) > 0
        assert set(np.unique(split.labels)) == {0, 1}
        assert list(split.groups.columns) == list(data.sensitive_columns)
        assert isinstance(split.groups.index, pd.RangeIndex)
        encoded = domain.encode(json.loads(json.dumps(data.preprocessing)), split.raw)
        assert encoded.shape[0] == len(split.labels)
        assert np.isfinite(encoded).all()
    assert len(data.feature_names) == encoded.shape[1] if encoded.ndim == 2 else True
    assert data.source.fingerprint and data.source.rows >= len(data.train) + len(data.validation) + len(data.test)
    again = domain.load(config)
    assert again.source.fingerprint == data.source.fingerprint  # seeded, deterministic

    # The model has no random layers, so XLA can compile it on a GPU (Keras turns
    # jit_compile off, with a warning, for a model with a layer that does not support it);
    # any augmentation is the input pipeline's, stateless, and keeps shape and dtype.
    import keras

    from pipeline.runtime import deterministic_ops_enabled, set_deterministic_ops

    # Keras also refuses XLA under TensorFlow's op determinism, which an earlier CPU run in
    # this process switches on (a GPU run leaves it off): judge the model without it.
    was_deterministic = deterministic_ops_enabled()
    set_deterministic_ops(False)
    try:
        model = domain.model_builder(keras, tuple(encoded.shape[1:]), **domain.model_options(data, config))
        model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
        assert model.jit_compile is True
    finally:
        set_deterministic_ops(was_deterministic)
    augmentation = domain.augmentation()
    if augmentation is not None:
        import tensorflow as tf

        augmented = np.asarray(augmentation(tf.constant(encoded[:4]), tf.constant([0, 1], tf.int64)))
        assert augmented.shape == encoded[:4].shape and augmented.dtype == encoded.dtype
        assert np.array_equal(augmented, np.asarray(augmentation(tf.constant(encoded[:4]),
                                                                 tf.constant([0, 1], tf.int64))))


def test_every_variant_is_a_tflite_that_was_evaluated(finished_run):
    name, config, outcome = finished_run
    manifest = json.loads((outcome.run_dir / artifacts.MANIFEST).read_text())
    metrics = json.loads((outcome.run_dir / artifacts.METRICS).read_text())
    assert [v["name"] for v in manifest["variants"]] == list(ALL_VARIANTS)
    for entry in manifest["variants"]:
        if entry["status"] != "ok":
            assert entry["reason"], entry  # a variant not built always says why
            continue
        assert (outcome.run_dir / entry["tflite"]).is_file()
        evaluation = metrics["variants"][entry["name"]]
        assert evaluation["quality"]["rows"] == manifest["data"]["splits"]["test"]
        assert evaluation["latency"]["runs"] >= 200
        assert 0.0 <= evaluation["agreement"]["identical_decisions"] <= 1.0
    built = {v["name"] for v in manifest["variants"] if v["status"] == "ok"}
    assert {"float32", "int8"} <= built
    # The domain's threshold rule is the one in force, and recorded, when the run does not choose one.
    assert manifest["config"]["threshold_rule"] == get_domain(name).threshold_rule in THRESHOLD_RULES
    # Pruning tried every candidate learning rate and kept the best on validation or one provably equivalent to it
    # (validation_choice.py), and says why.
    pruned = json.loads((outcome.run_dir / artifacts.COMPRESSION).read_text())["pruned_int8"]
    if pruned["status"] == "ok":
        assert_learning_rate_search(pruned["details"], [f"{rate:g}" for rate in PRUNING_LEARNING_RATES])
        search = pruned["details"]["learning_rate_search"]
        card = (outcome.run_dir / "model_card.md").read_text()
        assert f"`pruned_int8`: {pruned['details']['fine_tuning']['epochs']} epochs at learning rate " \
               f"{search['chosen']:g}" in card and "learning rate chosen on validation" in card
        assert search["chosen_because"] in card
    assert metrics["variants"]["float32"]["agreement"]["max_score_difference"] < 1e-4
    # Tables carry their gradient-boosting and logistic baselines, on the same split (issue 19).
    baselines = metrics.get("baselines")
    if manifest["modality"] == "tabular":
        assert set(baselines["models"]) == {"hist_gradient_boosting", "logistic_regression"}
        for model in baselines["models"].values():
            assert model["quality"]["rows"] == manifest["data"]["splits"]["test"]
        assert baselines["sentence"] in (outcome.run_dir / "model_card.md").read_text()
    else:
        assert baselines is None
    # A tabular model is chosen by the model search on validation, and the card says what was chosen.
    search = json.loads((outcome.run_dir / artifacts.TRAINING).read_text())["search"]
    if manifest["modality"] == "tabular":
        from pipeline.stages.model_search import default_recipe, recommended_recipe, search_sentence

        assert [trial["values"] for trial in search["trials"]] == [default_recipe(search["space"]),
                                                                   recommended_recipe(search["space"])]
        best = max(search["trials"], key=lambda trial: trial["val_pr_auc"])
        assert search["chosen"] == best["values"]
        assert search_sentence(search) in (outcome.run_dir / "model_card.md").read_text()
    else:
        assert search is None


def test_manifest_lists_every_file_with_its_hash(finished_run):
    _, config, outcome = finished_run
    manifest = json.loads((outcome.run_dir / artifacts.MANIFEST).read_text())
    listed = {item["path"]: item for item in manifest["artifacts"]}
    on_disk = {str(p.relative_to(outcome.run_dir)) for p in outcome.run_dir.rglob("*") if p.is_file()}
    assert on_disk - {artifacts.MANIFEST} == set(listed)
    for path, item in listed.items():
        assert sha256_file(outcome.run_dir / path) == item["sha256"], path
    assert manifest["config"]["seed"] == config.seed
    assert manifest["packages"]["tensorflow"] and manifest["data"]["fingerprint"]
    assert not list(outcome.run_dir.parent.glob(artifacts.INCOMPLETE_PREFIX + "*"))


def test_explanations_cover_the_float_and_the_shipped_model(finished_run):
    name, config, outcome = finished_run
    explanation = json.loads((outcome.run_dir / artifacts.EXPLANATIONS).read_text())
    shipped = json.loads((outcome.run_dir / artifacts.MANIFEST).read_text())["ship_variant"]
    assert set(explanation["models"]) == {FLOAT_MODEL, shipped}
    for result in explanation["models"].values():
        assert result["global_importance"]
        assert result["additivity"]["max_abs_error"] is not None
    assert any(p.name.startswith("shap_global") for p in (outcome.run_dir / "plots").iterdir())
    # every other candidate that could have shipped is compared with the float model's explanation too
    drift = explanation["drift_by_group"]
    if "not_measured" in drift:
        assert get_domain(name).modality == "text", drift
        return
    decision = json.loads((outcome.run_dir / artifacts.DEPLOYMENT).read_text())["decision"]
    metrics = json.loads((outcome.run_dir / artifacts.METRICS).read_text())["variants"]
    candidates = {variant for variant, row in decision["table"].items()
                  if row["fits_named_targets"] and row["validation_verdict"] != "fail"}
    assert set(drift["models"]) <= candidates | {shipped} and shipped in drift["models"]
    assert drift["shipped"] == shipped
    for variant in candidates - set(drift["models"]):  # left out: it scores as the float model does
        assert metrics[variant]["agreement"]["max_score_difference"] < 1e-2, variant


def test_audit_covers_every_variant_and_group(finished_run):
    _, config, outcome = finished_run
    audit = json.loads((outcome.run_dir / artifacts.AUDIT).read_text())
    manifest = json.loads((outcome.run_dir / artifacts.MANIFEST).read_text())
    built = [v["name"] for v in manifest["variants"] if v["status"] == "ok"]
    assert set(audit["by_group"]) == {FLOAT_MODEL, *built}
    assert set(audit["compression"]) == set(built)
    for column in manifest["data"]["sensitive_columns"]:
        assert column in audit["by_group"][FLOAT_MODEL]
    mitigation = json.loads((outcome.run_dir / artifacts.MITIGATION).read_text())
    assert mitigation.get("status") in ("ok", "failed")
    # Correlated rows (a unit's windows, a customer's transactions): the bootstrap draws whole units.
    units = manifest["data"]["test_units"]
    assert audit["settings"]["units"] == units
    card = (outcome.run_dir / artifacts.MODEL_CARD_MARKDOWN).read_text()
    assert (f"drawing whole units ({units:,} in the test split)" in card) if units else ("rows drawn independently" in card)
    # predictions.csv holds every decision the audit judged: each group's TPR recomputes from it.
    table = pd.read_csv(outcome.run_dir / artifacts.PREDICTIONS, dtype={c: str for c in audit["settings"]["columns"]})
    assert len(table) == manifest["data"]["splits"]["test"]
    assert ("unit" in table.columns) == bool(units)
    for model in audit["by_group"]:
        for column in manifest["data"]["sensitive_columns"]:
            for group, cell in audit["by_group"][model][column]["groups"].items():
                if not cell.get("measurable") or cell["metrics"]["tpr"]["value"] is None:
                    continue
                rows = table[(table[column] == group) & (table["label"] == 1)]
                assert rows[f"decision:{model}"].mean() == pytest.approx(cell["metrics"]["tpr"]["value"]), \
                    (model, column, group)


def test_the_flip_ledger_lists_every_changed_decision_and_its_group_rates_recompute(finished_run):
    name, _, outcome = finished_run
    rates = json.loads((outcome.run_dir / artifacts.FLIP_RATES).read_text())
    columns = rates["settings"]["columns"]
    table = pd.read_csv(outcome.run_dir / artifacts.PREDICTIONS, dtype={c: str for c in columns})
    ledger = pd.read_csv(outcome.run_dir / artifacts.FLIPS, dtype={c: str for c in columns})
    built = [v["name"] for v in outcome.manifest["variants"] if v["status"] == "ok"]
    assert set(rates["variants"]) == set(built) and rates["reference"] == FLOAT_MODEL
    for variant in built:
        changed = table.index[table[f"decision:{variant}"] != table[f"decision:{FLOAT_MODEL}"]]
        listed = ledger[ledger["variant"] == variant]
        assert sorted(listed["row"]) == sorted(table.loc[changed, "row"]), variant
        assert rates["variants"][variant]["overall"]["flips"] == len(changed)
        assert (listed["score:variant"].to_numpy() == pytest.approx(
            table.set_index("row").loc[listed["row"], f"score:{variant}"].to_numpy(), abs=1e-6))
        for column in outcome.manifest["data"]["sensitive_columns"]:
            for group, cell in rates["variants"][variant]["by_group"][column].items():
                assert cell["flips"] == int((listed[column] == group).sum()), (variant, column, group)
                assert cell["rows"] == int((table[column] == group).sum())
    # a table or a text is written out for review; images and windows are given by row (and unit)
    modality = outcome.manifest["modality"]
    assert ("example" in ledger.columns) == (modality in ("tabular", "text")), modality
    card = (outcome.run_dir / artifacts.MODEL_CARD_MARKDOWN).read_text()
    if any(rates["variants"][v]["overall"]["flips"] for v in built):
        assert "### Decisions compression flipped" in card and "`flips.csv`" in card


def test_int8_says_where_it_errs_which_rows_calibrated_it_and_what_selective_int8_did(finished_run):
    _, _, outcome = finished_run
    layers = json.loads((outcome.run_dir / artifacts.LAYERS).read_text())["variants"]
    compression = json.loads((outcome.run_dir / artifacts.COMPRESSION).read_text())
    table = layers["int8"]
    assert "error" not in table, table
    # every TFLite op output maps back to a layer of the domain's builder, by name
    assert table["layers"] and all(row["keras_layer"] for row in table["layers"]), table["layers"]
    assert table["summary"]["worst"]["rmse_over_scale"] == max(row["rmse_over_scale"] for row in table["layers"])
    for name in ("qat_int8", "pqat_int8"):
        assert layers[name]["error"].startswith("not measured"), layers[name]
    calibration = compression["int8"]["details"].get("calibration")
    if calibration:  # a first sensitive column with two or more groups large enough to calibrate on
        names = [row["name"] for row in calibration["sets"]]
        assert names[0] == "representative" and len(names) >= 3
        assert calibration["chosen"] in names
        assert compression["int8"]["details"]["converter"]["calibration_set"] == calibration["chosen"]
    selective = compression["selective_int8"]
    assert selective["status"] in ("ok", "skipped"), selective
    if selective["status"] == "skipped":
        assert "no layer to restore" in selective["reason"]
    else:
        assert selective["details"]["selective"]["final"]["bytes"] <= selective["details"]["selective"]["byte_budget"]
    card = (outcome.run_dir / artifacts.MODEL_CARD_MARKDOWN).read_text()
    assert "### Where quantization error comes from" in card and "### Selective int8" in card


def test_pruning_is_spread_over_the_layers_by_a_sensitivity_scan(finished_run):
    name, config, outcome = finished_run
    compression = json.loads((outcome.run_dir / artifacts.COMPRESSION).read_text())
    pruned = compression["pruned_int8"]["details"]
    allocation = pruned["sparsity_allocation"]
    assert allocation["method"] == "sensitivity", allocation
    # every scanned layer got a scanned level, and the pruned weights reach the target overall
    assert set(allocation["sparsity"]) == set(allocation["scan"]) == set(allocation["weights"])
    for layer, level in allocation["sparsity"].items():
        scored_at = allocation["scored_at"][layer]
        assert f"{scored_at:g}" in allocation["scan"][layer] and level <= scored_at, (layer, level)
    weighted = sum(allocation["sparsity"][n] * allocation["weights"][n] for n in allocation["weights"]) / sum(
        allocation["weights"].values())
    target = outcome.manifest["config"]["target_sparsity"]  # the domain's own, as in force
    assert target == get_domain(name).target_sparsity == allocation["target"]
    assert weighted == pytest.approx(allocation["overall"], abs=1e-3) and weighted >= target - 1e-3
    # the pruned model holds the levels given: each layer's kernel sparsity after fine-tuning
    for layer, level in allocation["sparsity"].items():
        assert pruned["layer_sparsity_after_fine_tuning"][layer] == pytest.approx(level, abs=0.02), layer
    assert compression["pqat_int8"]["details"]["pruning"]["sparsity_allocation"] == allocation
    # pruning-preserving QAT keeps the pruned model's zeros in every layer, Conv1D and Embedding included
    # (tfmot's scheme masks Conv2D and Dense only; the pipeline keeps the rest)
    pruned_file, preserved_file = (
        weight_sparsity((outcome.run_dir / artifacts.model_path(variant)).read_bytes())["sparsity"]
        for variant in ("pruned_int8", "pqat_int8"))
    assert preserved_file == pytest.approx(pruned_file, abs=0.02), (pruned_file, preserved_file)
    card = (outcome.run_dir / artifacts.MODEL_CARD_MARKDOWN).read_text()
    assert "### How pruning was spread over the layers" in card
    kept = compression["pqat_int8"]["details"].get("zeros_kept_by_mask") or []
    assert bool(kept) == (name in ("maintenance", "sentiment")), kept  # Conv1D / Embedding: not masked by tfmot
    for layer in kept:
        assert f"`{layer}`" in card.split("keeps its zeros", 1)[1].split("\n", 1)[0], layer
    assert (outcome.run_dir / artifacts.plot_path("pruning_sensitivity")).is_file()


def test_model_card_has_every_section_and_the_gate(finished_run):
    name, config, outcome = finished_run
    card = (outcome.run_dir / artifacts.MODEL_CARD_MARKDOWN).read_text()
    domain = get_domain(name)
    # the domain's optimizer, and the batch size in force: the domain's unless given (scaled up on a GPU)
    assert outcome.manifest["config"]["batch_size"] == config.with_domain_defaults(domain).batch_size == domain.batch_size
    assert (f"at learning rate {domain.learning_rate:g} over batches of {outcome.manifest['runtime']['batch_size']},"
            in card)
    for section in MODEL_CARD_SECTIONS:
        assert f"## {section}" in card, section
    assert "## Gate" in card and "What compression did to each group" in card
    page = (outcome.run_dir / artifacts.MODEL_CARD_HTML).read_text()
    assert page.startswith("<!DOCTYPE html>") and '<h2 id="card-factors">Factors</h2>' in page
    for image in (outcome.run_dir / "plots").iterdir():
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gate = json.loads((outcome.run_dir / artifacts.GATE).read_text())
    assert gate["passed"] == outcome.gate["passed"]
    # The explanation paragraph states how many rows were explained (it once printed nothing there).
    explanation = json.loads((outcome.run_dir / artifacts.EXPLANATIONS).read_text())
    rows = explanation["settings"]["explained_rows"]
    assert 0 < rows <= config.explain_rows and f"; {rows:,} test rows explained." in card
    # ... and says what the SHAP values are: exact, or estimates with their measured error.
    settings = explanation["settings"]
    expected = {"exact": "These are exact Shapley values of that game (no sampling)",
                "permutation": "These are ESTIMATES of the Shapley values, not exact ones",
                "partition": "Owen values over shap's token tree"}[settings["method"]]
    assert expected in card
    if settings["method"] == "permutation":
        error = settings["sampling_error"]
        assert error["rows"] > 0 and f"largest |error| {error['max_abs_error_vs_exact']:.4f}" in card
    # The data source is quoted as recorded: a file name keeps its case ("yesno.csv", not "Yesno.csv").
    assert f"Source: {outcome.manifest['data']['description']}" in card


def test_every_int8_variant_runs_on_the_microcontroller_runtime_or_the_report_says_why_not(finished_run):
    name, config, outcome = finished_run
    deployment = json.loads((outcome.run_dir / artifacts.DEPLOYMENT).read_text())
    card = (outcome.run_dir / "model_card.md").read_text()
    metrics = json.loads((outcome.run_dir / artifacts.METRICS).read_text())
    for variant, entry in deployment["variants"].items():
        micro = entry["microcontroller"]
        assert entry["flash_bytes"] == (outcome.run_dir / artifacts.model_path(variant)).stat().st_size
        if micro["supported"]:
            assert micro["arena_bytes"] > 0 and micro["arena_bytes"] % 16 == 0
            agreement = micro["agreement_with_litert"]
            assert agreement["rows"] == metrics["variants"][variant]["quality"]["rows"]
            # Measured, not assumed. The two runtimes' int8 kernels round differently by a few output
            # steps (1/256 after a sigmoid); a tiny, barely trained model has many scores near its
            # threshold, so some decisions flip, and the card must say so.
            assert agreement["max_output_difference"] <= 8 / 256 + 1e-6, (variant, agreement)
            if agreement["changed_decisions"]:
                assert "The two runtimes disagree on some test decisions" in card and f"`{variant}` " \
                    f"{agreement['changed_decisions']} of" in card
            assert entry["audited_runtime"] == "tflite-micro"  # a named microcontroller target runs it
        else:
            assert micro["first_unsupported"] and micro["first_unsupported"] in card
    assert deployment["variants"]["int8"]["microcontroller"]["supported"], \
        deployment["variants"]["int8"]["microcontroller"]["first_unsupported"]
    audit = json.loads((outcome.run_dir / artifacts.AUDIT).read_text())
    assert audit["settings"]["decisions_from"]["int8"] == "tflite-micro"


def test_the_choice_is_made_on_validation_and_written_down(finished_run):
    name, config, outcome = finished_run
    deployment = json.loads((outcome.run_dir / artifacts.DEPLOYMENT).read_text())
    manifest = json.loads((outcome.run_dir / artifacts.MANIFEST).read_text())
    gate = json.loads((outcome.run_dir / artifacts.GATE).read_text())
    decision = deployment["decision"]
    assert decision["requested"] == "auto" and decision["chosen_on"] == "validation split"
    assert manifest["ship_variant"] == decision["ship_variant"] == gate["ship_variant"]
    assert decision["named_targets"] == ["cortex-m4"]
    assert set(decision["table"]) == set(deployment["variants"])  # every variant has a row
    for variant, row in decision["table"].items():
        assert (row["why_not_chosen"] is None) == (variant == decision["ship_variant"])
    metrics = json.loads((outcome.run_dir / artifacts.METRICS).read_text())
    assert decision["threshold"] == metrics["variants"][decision["ship_variant"]]["quality"]["threshold"]
    assert [c["name"] for c in gate["checks"]][-2:] == ["fits the named targets", "variant chosen on validation"]
    card = (outcome.run_dir / "model_card.md").read_text()
    assert "## Deployment" in card and f"**`{decision['ship_variant']}` ships**" in card
    assert "[Deployment](#deployment)" in card  # the contents line links every section
    assert '<a href="#card-deployment">Deployment</a>' in (outcome.run_dir / "model_card.html").read_text()
    # A table's float model: two networks averaged when that beat them on validation, else one; the card says which.
    training = json.loads((outcome.run_dir / artifacts.TRAINING).read_text())
    ensemble = training["ensemble"]
    if training["search"] is None:   # not a table's MLP: no search, no ensemble
        assert ensemble is None and "Deep ensemble" not in card
    elif ensemble["kept"]:
        assert ensemble["members"] == training["model_options"]["members"] == 2
        assert "Deep ensemble: 2 networks" in card
    else:
        assert "members" not in training["model_options"] and "Deep ensemble of 2 tried and not kept" in card


def test_the_device_snippet_in_the_card_runs_as_written(finished_run):
    import subprocess
    import sys

    name, config, outcome = finished_run
    deployment = json.loads((outcome.run_dir / artifacts.DEPLOYMENT).read_text())
    snippet = deployment["device"]["python_snippet"]
    assert snippet in (outcome.run_dir / "model_card.md").read_text()
    completed = subprocess.run([sys.executable, "-c", snippet], cwd=outcome.run_dir, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    printed = completed.stdout.strip().splitlines()[-1]
    assert printed.startswith("score ") and f"(threshold {deployment['decision']['threshold']:.4f})" in printed
    for path in deployment["device"]["sources"]:
        text = (outcome.run_dir / path).read_text()
        assert "alignas(16)" in text or "ArenaBytes" in text
