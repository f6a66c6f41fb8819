"""Every page of the dashboard, run by Streamlit's AppTest on fixture reports: good runs of
four modalities and one run of each breakage (bad JSON, bad manifest, a listed file gone,
a SHA-256 mismatch, an unfinished folder). No page may raise; broken runs are named with
their reason and never offered for display; the other runs stay usable."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures import runs as fixtures

APP = Path(__file__).resolve().parent.parent / "apps" / "dashboard.py"
PAGES = ["views/runs.py", "views/compare.py", "views/tradeoffs.py", "views/fairness.py", "views/explanations.py",
         "views/model_card.py"]
RUN_PAGES = PAGES[2:]
FRAUD_NEW = "fraud/20261121-070000-seed1-aaaaaa"
FRAUD_OLD = "fraud/20261120-060000-seed0-bbbbbb"
BY_MODALITY = {"tabular": FRAUD_NEW, "text": "sentiment/20261121-080000-seed0-cccccc",
               "image": "imaging/20261121-090000-seed0-dddddd", "window": "maintenance/20261121-100000-seed0-eeeeee"}
BROKEN = {"fraud/20261119-000000-seed0-badjsn": "audit.json is not valid JSON",
          "fraud/20261119-000001-seed0-gone00": "models/int8.tflite is listed in the manifest but missing",
          "fraud/20261119-000002-seed0-sha000": "gate.json: SHA-256 does not match the manifest",
          "fraud/20261119-000003-seed0-manfst": "manifest.json is not valid JSON",
          "fraud/.incomplete-20261119-000004-seed0-unfin0": "unfinished: the folder still has the .incomplete- prefix"}


@pytest.fixture(scope="module")
def standard_reports(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    fixtures.write_standard_reports(reports)
    return reports


@pytest.fixture
def open_page(standard_reports, monkeypatch):
    """open_page(page, run=None, reports=None) -> AppTest, after checking nothing raised."""
    def open_(page="views/runs.py", *, run=None, reports=None, query=None):
        monkeypatch.setenv("EDGEAUDIT_REPORTS", str(reports or standard_reports))
        at = AppTest.from_file(str(APP), default_timeout=60)
        if query:
            at.query_params.update(query)
        at.run()
        if page != "views/runs.py":
            at.switch_page(page).run()
        if run:
            at.sidebar.selectbox(key="run_picker").set_value(run).run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_


def _text(at) -> str:
    """Everything a reader sees as text: headings, markdown, captions, alerts, metrics and tables."""
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "error", "warning", "info", "success")
             for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [table.value.to_string() for table in at.table]
    parts += [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(str(p) for p in parts)


def _charts(at) -> int:
    return len(at.get("vega_lite_chart"))


def test_the_runs_page_lists_finished_runs_and_names_every_broken_one(open_page):
    at = open_page()
    assert [t.value for t in at.title] == ["Runs"]
    assert {m.label: m.value for m in at.metric} == {"Finished runs": "5", "Gate passed": "4", "Gate failed": "1",
                                                    "Unfinished or corrupt": "5"}
    table = at.dataframe[0].value
    assert list(table["domain"]) == ["maintenance", "imaging", "sentiment", "fraud", "fraud"]
    assert {"created (UTC)", "data source", "gate", "why"} <= set(table.columns)
    fraud_new = table[table["folder"] == FRAUD_NEW].iloc[0]
    assert fraud_new["gate"] == "FAILED" and "equalized odds difference by Age is 0.357" in fraud_new["why"]
    assert table[table["folder"] == FRAUD_OLD].iloc[0]["data source"] == "embedded default data (generated)"
    broken = at.table[0].value
    assert set(broken["folder"]) == set(BROKEN)
    for key, reason in BROKEN.items():
        assert reason in broken[broken["folder"] == key].iloc[0]["reason"]
    assert "5 run(s) cannot be shown. The other runs are not affected." in [e.value for e in at.error]


def test_the_runs_table_filters_by_domain(open_page):
    at = open_page()
    at.multiselect(key="runs_domains").set_value(["sentiment", "imaging"]).run()
    assert sorted(at.dataframe[0].value["domain"]) == ["imaging", "sentiment"]
    assert "2 of 5 finished runs" in _text(at)


def test_broken_runs_are_never_offered_on_the_run_pages(open_page):
    for page in RUN_PAGES:
        at = open_page(page)
        options = at.sidebar.selectbox(key="run_picker").options
        assert len(options) == 5 and not any(key.split("/")[-1] in " ".join(options) for key in BROKEN)
        assert "5 run(s) not shown: unfinished or corrupt (see Runs)." in [c.value for c in at.sidebar.caption]


def test_the_picked_run_is_kept_across_pages(open_page):
    at = open_page("views/tradeoffs.py", run=FRAUD_OLD)
    for page in RUN_PAGES:
        at.switch_page(page).run()
        assert not at.exception
        assert at.sidebar.selectbox(key="run_picker").value == FRAUD_OLD
        assert "20261120-060000-seed0-bbbbbb" in at.caption[0].value


def test_compare_two_runs_of_a_domain(open_page):
    at = open_page("views/compare.py")
    at.selectbox(key="compare_domain").set_value("fraud").run()
    assert at.selectbox(key="compare_a").value == FRAUD_NEW and at.selectbox(key="compare_b").value == FRAUD_OLD
    text = _text(at)
    assert "Run A: Gate FAILED for `int8`" in text and "Run B: Gate PASSED for `int8`" in text
    variants = at.table[0].value
    assert "int8 (shipped in A) (shipped in B)" in list(variants["variant"])
    assert list(variants[variants["variant"] == "float32"]["Δ (B − A)"]) == ["+0.0100"]
    settings = at.table[-1].value
    assert {"seed", "data_path"} <= set(settings["setting"])
    assert "Different data: the fingerprints differ." in text


def test_the_domains_probes_are_on_the_fairness_page(open_page):
    at = open_page("views/fairness.py", run=BY_MODALITY["image"])
    text = _text(at)
    assert "Shortcut probe: the site marker stamped and erased" in text and "raises the mean score by 0.21" in text
    assert "Probes and analyses of this domain" in [s.value for s in at.subheader]


def test_a_quick_run_is_marked_and_not_called_the_same_data_as_a_full_run(open_page, tmp_path):
    full = fixtures.write_run(tmp_path, run_id="run-full", created_utc="2026-11-21T01:00:00+00:00")
    quick = fixtures.write_run(tmp_path, run_id="run-quick", created_utc="2026-11-21T02:00:00+00:00", quick=True)
    at = open_page("views/tradeoffs.py", reports=tmp_path)
    assert f"fraud · {quick.name} · quick · gate passed" in at.sidebar.selectbox(key="run_picker").options
    assert f"fraud · {full.name} · gate passed" in at.sidebar.selectbox(key="run_picker").options
    at = open_page("views/compare.py", reports=tmp_path)
    at.selectbox(key="compare_domain").set_value("fraud").run()
    text = _text(at)
    assert "Same data (identical fingerprint" not in text
    assert "Same source data (identical fingerprint), but not the same rows" in text and "test 800 (--quick)" in text


def test_a_run_in_progress_is_not_an_error(open_page, tmp_path):
    fixtures.write_run(tmp_path, run_id="run-good")
    fixtures.make_unfinished(fixtures.write_run(tmp_path, run_id="run-going"))
    at = open_page(reports=tmp_path)
    assert not at.error and "still running, or interrupted before they finished" in _text(at)


def test_compare_with_a_single_run_of_a_domain(open_page):
    at = open_page("views/compare.py")
    at.selectbox(key="compare_domain").set_value("sentiment").run()
    assert "Only one finished run of `sentiment`" in _text(at)


def test_edge_tradeoffs(open_page):
    at = open_page("views/tradeoffs.py", run=FRAUD_NEW)
    text = _text(at)
    assert "The gate judged **`int8`**, the variant chosen to ship: **FAILED**." in text
    assert "Variant `qat_int8` was not built: converter crashed (exit 139)" in text
    # Which variant ships and why: every variant on every target, from deployment.json.
    assert "**`int8` ships**" in text and "Targets named for this run: `cortex-m4`" in text
    assert "**0.4766**" in text  # the threshold a device must use
    decision = at.dataframe[0].value.set_index("variant")
    assert list(decision.index) == ["int8 (ships)", "pruned_int8", "float32"]
    assert decision.loc["int8 (ships)", "★ cortex-m4"] == "✔ fits"
    assert decision.loc["float32", "★ cortex-m4"].startswith("✘ does not run on tflite-micro: DEQUANTIZE")
    assert decision.loc["float32", "linux-cpu"] == "✔ fits"
    assert decision.loc["pruned_int8", "why not chosen"].startswith("on validation: ")
    table = at.dataframe[1].value.set_index("variant")
    assert table.loc["int8", "shipped"] and not table.loc["float32", "shipped"]
    assert table.loc["pruned_int8", "Pareto (size, quality)"] and not table.loc["int8", "Pareto (size, quality)"]
    assert table.loc["pruned_int8", "sparsity"] == pytest.approx(0.75)
    assert table.loc["int8", "same decisions as float"] == pytest.approx(0.9981)
    # trade-off with the Pareto front, latency, agreement, quantization error by layer, pruning sensitivity
    assert _charts(at) == 5
    for axis in at.radio(key="tradeoff_axis").options:
        at.radio(key="tradeoff_axis").set_value(axis).run()
        assert not at.exception and _charts(at) == 5
    # Where quantization errs: the shipped int8's layers by Keras name, the one over the warning level marked.
    assert at.selectbox(key="layers_variant").value == "int8"
    layers = [frame.value for frame in at.dataframe if "RMSE / scale" in frame.value.columns][0]
    assert list(layers["keras layer"]) == ["dense_0", "dense_1", "probability", "probability"]
    assert list(layers["over the warning level"]) == [False, True, False, False]
    # int8's calibration-set audit: every set's group changes, the one used named.
    assert "Calibration set of int8" in _text(at)
    calibration = [frame.value for frame in at.dataframe if "calibration set" in frame.value.columns][0]
    assert list(calibration["calibration set"]) == ["representative (used)", "Sex = Female", "Sex = Male"]
    # pruned_int8's sparsity per layer, from the sensitivity scan: the small output layer kept densest.
    pruning = [frame.value for frame in at.dataframe if "sparsity given" in frame.value.columns][0]
    assert dict(zip(pruning["layer"], pruning["sparsity given"])) == {"dense_0": 0.8, "dense_1": 0.6,
                                                                      "probability": 0.3}
    assert "76.4% of the pruned weights are zero (target 75%)" in _text(at)
    assert len(at.get("image")) == 2  # the run's own trade-off and latency PNGs


def test_fairness(open_page, standard_reports):
    at = open_page("views/fairness.py", run=FRAUD_NEW)
    # The gate failed on Age: the page opens there, under the answer to its question.
    assert [s.value for s in at.subheader] == ["Did compression hurt a group?", "Metrics by Age", "Disparities",
                                              "What compression did to each group", "Which decisions flipped",
                                              "Move the threshold: the shipped variant against the float model",
                                              "Mitigation: before and after"]
    # The flip ledger: the shipped variant's flipped examples, as many as flips.json counts, with a download.
    flips = json.loads((standard_reports / FRAUD_NEW / "flips.json").read_text())["variants"]["int8"]
    assert at.selectbox(key="flips_variant").value == "int8"
    ledger = [frame.value for frame in at.dataframe if "margin:reference" in frame.value.columns][0]
    assert len(ledger) == flips["overall"]["flips"] > 0 and "example" in ledger.columns
    assert (ledger["margin:reference"].abs().diff().dropna() >= 0).all()  # closest to the threshold first
    assert f"{flips['overall']['flips']:,} of {flips['overall']['rows']:,}" in [m.value for m in at.metric]
    summary = at.dataframe[0].value.set_index("column")
    assert list(summary.index) == ["Sex", "Age"] and summary.loc["Age", "gate"] == "fail"
    assert at.selectbox(key="fairness_column").value == "Age"
    assert at.selectbox(key="fairness_metric").value == "tpr"
    assert at.multiselect(key="fairness_models").value == ["keras_float", "int8"]
    # The threshold slider recomputes every group's rates from predictions.csv.
    rates = [frame.value for frame in at.dataframe if "decisions flipped" in frame.value.columns][0]
    assert set(rates["group"]) == {"16-35", "36+", "unknown"} and rates["rows"].sum() == 120
    flips_at_default = rates["decisions flipped"].sum()
    at.slider(key="fairness_threshold").set_value(0.9).run()
    rates = [frame.value for frame in at.dataframe if "decisions flipped" in frame.value.columns][0]
    assert rates["TPR int8"].max() < 0.5 and rates["decisions flipped"].sum() != flips_at_default
    at.selectbox(key="fairness_column").set_value("Age").run()
    text = _text(at)
    assert "8 rows, fewer than min_group_size=20" in text  # the unmeasurable group, with its reason
    assert "int8 (shipped)" in text and "equalized odds difference" in text
    assert "0.120 [0.070, 0.170]" in text  # an estimate with its interval
    assert "equalized odds difference by Age is 0.1200, within the gate's limit 0.3" in text
    assert "1 cell(s) here" in text  # the flagged cell of pruned_int8
    assert "balanced_accuracy" in text and "0.7800" in text  # mitigation after
    assert _charts(at) == 4  # error bars, heatmap, flip rates, mitigation
    at.selectbox(key="fairness_column").set_value("Sex").run()
    assert "Metrics by Sex" in [s.value for s in at.subheader]
    for metric in at.radio(key="fairness_change_metric").options:
        at.radio(key="fairness_change_metric").set_value(metric).run()
        assert not at.exception and not at.warning


@pytest.mark.parametrize("modality", list(BY_MODALITY))
def test_explanations_for_every_modality(open_page, modality):
    at = open_page("views/explanations.py", run=BY_MODALITY[modality])
    assert not at.warning, [w.value for w in at.warning]
    text = _text(at)
    assert "Global importance (mean |SHAP|)" in text and "Local explanations" in text
    assert "**keras_float** (reference)" in text and "**int8** (shipped)" in text
    assert "Spearman rank correlation" in text
    # Agreement by group: the fixture's Age = 36+ explains itself otherwise; a text has no shared players.
    if modality == "text":
        assert "Explanation agreement by group: not measured" in text
    else:
        assert "Does the shipped model decide for the same reasons in every group?" in text
        assert "is red: Age = 36+." in text
        # every candidate summarised; the shipped one shown by group unless another is picked
        summary = [frame.value for frame in at.dataframe if "lowest group" in frame.value.columns][0]
        assert list(summary["variant"]) == ["int8 (shipped)", "pruned_int8"]
        assert list(summary["flagged groups"]) == [1, 0] and summary["lowest group"][0] == "Age = 36+"
        assert at.selectbox(key="drift_variant").value == "int8"
        at.selectbox(key="drift_variant").set_value("pruned_int8").run()
        assert not at.exception and "; none is." in _text(at)
    # what the values are: exact, estimates with their measured error, or Owen values
    assert {"tabular": "These are exact Shapley values of that game (no sampling)", "text": "Owen values",
            "window": "largest |error| 0.0254, mean |error| 0.00250",
            "image": "These are ESTIMATES of the Shapley values"}[modality] in text
    # Each example is named by its label and each model's decision (predictions.csv), not a bare row id.
    assert all(option.startswith(f"row {row} · label ") and "keras_float " in option and "int8 " in option
               for row, option in zip(fixtures.LOCAL_ROWS, at.selectbox(key="explain_row").options))
    for row in fixtures.LOCAL_ROWS:
        at.selectbox(key="explain_row").set_value(row).run()
        assert not at.exception and not at.warning
    if modality == "text":
        spans = [m.value for m in at.markdown if "<span" in m.value]
        assert len(spans) == 2  # float and int8 side by side
        assert "&lt;b&gt;again&lt;/b&gt;" in spans[0] and "<b>" not in spans[0]  # text from data is escaped
        assert "Tokens that push the score" in _text(at)
    elif modality == "window":
        assert "Where in the window: mean |SHAP| per sensor and time block" in _text(at)
        assert _charts(at) == 1 + 1 + 2 + 2  # global bars, agreement by group, two global and two local heatmaps
    elif modality == "image":
        assert "Where in the image the attribution lies" in _text(at)
        assert _charts(at) == 4  # global bars, agreement by group, the two images with their SHAP grid
    else:
        assert _charts(at) == 4  # global bars, agreement by group, two local bar charts


def test_model_card_and_downloads(open_page):
    at = open_page("views/model_card.py", run=FRAUD_NEW)
    labels = [button.label for button in at.get("download_button")]
    assert labels[:3] == ["Report (HTML, self-contained)", "Whole run (zip)", "Model card (Markdown)"]
    for variant in fixtures.VARIANTS:
        assert f"{variant}.tflite" in labels and f"{variant} + preprocessing.json (zip)" in labels
    text = _text(at)
    assert "## Model card: Fixture fraud (20261121-070000-seed1-aaaaaa)" in text  # one level below the page title
    assert "**Gate FAILED** for the shipped variant `int8`." in text
    assert len(at.get("image")) == 1  # the card's plot, from the run's PNG


def test_an_empty_and_an_absent_reports_folder(open_page, tmp_path):
    at = open_page(reports=tmp_path)
    assert "No runs yet under" in _text(at)
    at = open_page("views/fairness.py", reports=tmp_path)
    assert "No runs yet under" in _text(at)
    at = open_page("views/compare.py", reports=tmp_path / "absent")
    assert "There is no reports folder at" in _text(at)


def test_only_broken_runs(open_page, tmp_path):
    fixtures.tamper(fixtures.write_run(tmp_path), "metrics.json")
    at = open_page("views/tradeoffs.py", reports=tmp_path)
    assert "No finished, intact run under" in _text(at)
    at = open_page(reports=tmp_path)
    assert "1 run(s) cannot be shown" in _text(at)


def test_a_run_damaged_while_the_dashboard_runs_is_shown_as_corrupt(open_page, tmp_path):
    good = fixtures.write_run(tmp_path, run_id="run-good", created_utc="2026-11-21T01:00:00+00:00")
    other = fixtures.write_run(tmp_path, run_id="run-other")
    at = open_page("views/tradeoffs.py", reports=tmp_path)
    assert len(at.sidebar.selectbox(key="run_picker").options) == 2
    fixtures.tamper(good, "models/int8.tflite")
    at.run()  # the next page load sees the change: the cache is keyed on the files' sizes and times
    assert not at.exception
    assert at.sidebar.selectbox(key="run_picker").options == [f"fraud · {other.name} · gate passed"]
    at = open_page(reports=tmp_path)
    assert "models/int8.tflite: SHA-256 does not match the manifest" in at.table[0].value.to_string()


def test_unknown_shapes_do_not_break_a_page(open_page, tmp_path):
    def as_json(value):
        import json
        return (json.dumps(value).encode(), "x")
    odd_audit = {
        "by_group": {"keras_float": {"Sex": {"groups": {"A": {"measurable": True, "metrics": {"tpr": "high"}}}}}},
        "disparities": {"int8": {"Sex": "n/a"}}, "settings": {"columns": ["Sex"]},
        "compression": {"int8": {"Sex": {"groups": {"A": {"changes": {"tpr": {"change": "x"}}}}}}},
        "something_new": [1, 2],
    }
    odd_explanations = {"explainer": "from the future", "models": {
        "keras_float": {"global_importance": {"a": "x"}, "local": [{"row_id": 1, "novel": {"x": 1}}]},
        "int8": {"local": "not a list"}}}
    odd = {
        "audit.json": as_json(odd_audit),
        "explanations.json": as_json(odd_explanations),
        "mitigation.json": as_json({"status": "failed", "reason": "one group only"}),
        "metrics.json": as_json({"headline_metric": "pr_auc", "variants": {"int8": {"quality": [1, 2]}, "odd": 3}}),
    }
    fixtures.write_run(tmp_path, extra_files=odd)
    for page in PAGES:
        at = open_page(page, reports=tmp_path)
        assert at.title, page
    at = open_page("views/fairness.py", reports=tmp_path)
    assert "Mitigation did not run: one group only" in _text(at)


def test_the_address_cannot_pick_a_path(open_page, standard_reports):
    at = open_page("views/tradeoffs.py", query={"run": FRAUD_OLD})
    assert at.sidebar.selectbox(key="run_picker").value == FRAUD_OLD
    for attempt in ("../../../etc", str(standard_reports / FRAUD_OLD),
                    "fraud/.incomplete-20261119-000004-seed0-unfin0"):
        at = open_page("views/tradeoffs.py", query={"run": attempt})
        assert at.sidebar.selectbox(key="run_picker").value == "maintenance/20261121-100000-seed0-eeeeee"


def test_the_dashboard_imports_no_tensorflow(standard_reports):
    """Every page, in a fresh process: neither TensorFlow nor Keras nor shap gets imported."""
    code = f"""
import os, sys
os.environ["EDGEAUDIT_REPORTS"] = {str(standard_reports)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=60)
at.run()
for page in {PAGES!r}:
    at.switch_page(page).run()
    assert not at.exception, page
heavy = [m for m in ("tensorflow", "keras", "tf_keras", "shap", "fairlearn") if m in sys.modules]
assert not heavy, heavy
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)


def test_the_dashboard_command_checks_its_options_before_starting(tmp_path, capsys):
    from pipeline.cli import main
    from pipeline.errors import EXIT_BAD_INPUT

    assert main(["dashboard", "--reports", str(tmp_path / "absent")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "there is no reports folder at" in err and "How to fix" in err
    assert main(["dashboard", "--reports", str(tmp_path), "--port", "70000"]) == EXIT_BAD_INPUT
    assert "--port is 70000" in capsys.readouterr().err


def test_a_copied_run_and_an_unlisted_file_are_told_apart_and_shown(open_page, tmp_path):
    import shutil

    original = fixtures.write_run(tmp_path, run_id="20261121-061653-seed0-39d029")
    shutil.copytree(original, original.with_name("copy-of-the-run"))
    at = open_page("views/tradeoffs.py", reports=tmp_path, run="fraud/copy-of-the-run")
    labels = list(at.sidebar.selectbox(key="run_picker").options)  # as shown: the formatted labels
    assert len(labels) == 2 and len(set(labels)) == 2, labels
    assert any("folder fraud/copy-of-the-run" in label for label in labels)
    assert not any("unlisted" in warning.value for warning in at.warning)
    (original / "notes.html").write_text("<script>alert(1)</script>")
    at = open_page("views/tradeoffs.py", reports=tmp_path, run=f"fraud/{original.name}")
    assert any("1 file(s) that its manifest does not list (notes.html)" in warning.value for warning in at.warning)
    runs = open_page("views/runs.py", reports=tmp_path)
    assert f"fraud/{original.name}" in _text(runs) and "Files the manifest does not list" in _text(runs)
