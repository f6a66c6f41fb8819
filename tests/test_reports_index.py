"""Reading run folders back: good runs verify, every kind of broken run is named with its
reason, nothing outside a run folder or outside its manifest is read."""

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from pipeline import artifacts
from pipeline import reports_index as index
from tests.fixtures import runs as fixtures


@pytest.fixture
def reports(tmp_path):
    fixtures.write_standard_reports(tmp_path)
    return tmp_path


def _by_id(entries):
    return {entry.run_id: entry for entry in entries}


def test_a_good_run_verifies_and_summarises_itself(tmp_path):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    entry = index.verify_run(folder, key="fraud/x")
    assert entry.ok and entry.status == "ok" and entry.reason is None
    assert entry.domain == "fraud" and entry.run_id == folder.name and entry.key == "fraud/x"
    assert entry.gate_passed is False and entry.ship_variant == "int8"
    assert entry.gate_reasons == ["int8: equalized odds difference by Age is 0.357 (limit 0.3)"]
    assert entry.headline_metric == "pr_auc" and entry.headline_value == pytest.approx(0.806)
    assert entry.data_source == "claims.csv" and entry.created.startswith("2026-11-21")
    assert "models/int8.tflite" in entry.artifacts


def test_a_run_written_by_the_real_run_folder_verifies(tmp_path):
    folder = artifacts.RunFolder(tmp_path, "fraud", "run-1")
    folder.write_json(artifacts.METRICS, {"headline_metric": "pr_auc", "variants": {}}, role="metrics")
    folder.write_json(artifacts.GATE, {"passed": True, "ship_variant": "int8", "checks": []}, role="gate")
    folder.write_bytes(artifacts.model_path("int8"), b"\x00tflite", role="tflite", variant="int8")
    final = folder.finish({"status": "complete", "created_utc": "2026-11-21T00:00:00+00:00"})
    entry = index.verify_run(final)
    assert entry.ok, entry.problems
    assert entry.gate_passed is True


def test_listing_puts_good_runs_newest_first_and_names_every_broken_run(reports):
    entries = index.list_runs(reports)
    good = [entry for entry in entries if entry.ok]
    assert [entry.domain for entry in good] == ["maintenance", "imaging", "sentiment", "fraud", "fraud"]
    assert entries[:len(good)] == good
    broken = {entry.run_id: entry for entry in entries if not entry.ok}
    assert broken["20261119-000000-seed0-badjsn"].status == "corrupt"
    assert broken["20261119-000000-seed0-badjsn"].reason.startswith("audit.json is not valid JSON")
    assert broken["20261119-000001-seed0-gone00"].reason == \
        "models/int8.tflite is listed in the manifest but missing"
    assert broken["20261119-000002-seed0-sha000"].reason == \
        "gate.json: SHA-256 does not match the manifest: changed after the run finished"
    assert broken["20261119-000003-seed0-manfst"].reason.startswith("manifest.json is not valid JSON")
    unfinished = broken["20261119-000004-seed0-unfin0"]
    assert unfinished.status == "unfinished" and ".incomplete-" in unfinished.reason
    assert unfinished.key == "fraud/.incomplete-20261119-000004-seed0-unfin0"


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda f: (f / "manifest.json").write_text("[1, 2]"), "not an EdgeAudit run manifest"),
    (lambda f: (f / "models" / "int8.tflite").write_bytes(b"short"), "has 5 bytes, the manifest lists 72"),
    (lambda f: _edit_manifest(f, lambda m: m["artifacts"].append(
        {"path": "../../etc/passwd", "role": "x", "bytes": 1, "sha256": "0"})), "a path outside the run folder"),
    (lambda f: _edit_manifest(f, lambda m: m["artifacts"].append(
        {"path": "/etc/passwd", "role": "x", "bytes": 1, "sha256": "0"})), "a path outside the run folder"),
    (lambda f: _edit_manifest(f, lambda m: m.update(artifacts=[a for a in m["artifacts"] if a["path"] != "gate.json"])),
     "does not list gate.json"),
    (lambda f: _edit_manifest(f, lambda m: m.update(status="running")), "status is 'running'"),
])
def test_each_kind_of_damage_is_reported(tmp_path, damage, expected):
    folder = fixtures.write_run(tmp_path)
    damage(folder)
    entry = index.verify_run(folder)
    assert entry.status == "corrupt"
    assert any(expected in problem for problem in entry.problems), entry.problems


def _edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_every_problem_is_kept_not_only_the_first(tmp_path):
    folder = fixtures.write_run(tmp_path)
    fixtures.remove_file(folder, "models/int8.tflite")
    fixtures.tamper(folder, "gate.json")
    entry = index.verify_run(folder)
    assert len(entry.problems) == 2


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_links_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    fixtures.write_run(outside, run_id="run-outside")
    reports = tmp_path / "reports"
    fixtures.write_run(reports, run_id="run-inside")
    (reports / "linked").symlink_to(outside / "fraud", target_is_directory=True)
    assert [key for key, _ in index.find_run_folders(reports)] == ["fraud/run-inside"]

    folder = reports / "fraud" / "run-inside"
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (folder / "gate.json").unlink()
    (folder / "gate.json").symlink_to(secret)
    assert "gate.json is a link" in index.verify_run(folder).reason


def test_a_vanished_folder_is_missing(tmp_path):
    entry = index.verify_run(tmp_path / "fraud" / "gone")
    assert entry.status == "missing" and "gone" in entry.reason


def test_deeper_layouts_and_an_absent_folder(tmp_path):
    fixtures.write_run(tmp_path / "benchmarks" / "fraud-default", run_id="run-a")
    assert [key for key, _ in index.find_run_folders(tmp_path)] == ["benchmarks/fraud-default/fraud/run-a"]
    assert index.find_run_folders(tmp_path / "nothing-here") == []
    assert index.list_runs(tmp_path / "nothing-here") == []


def test_the_signature_changes_when_a_file_changes(tmp_path):
    folder = fixtures.write_run(tmp_path)
    before = index.run_signature(folder)
    assert before == index.run_signature(folder)
    (folder / "gate.json").write_text((folder / "gate.json").read_text() + " ")
    assert index.run_signature(folder) != before


def test_reading_only_listed_artifacts_and_only_unchanged_ones(tmp_path):
    folder = fixtures.write_run(tmp_path)
    entry = index.verify_run(folder)
    assert index.read_json(entry, "gate.json")["ship_variant"] == "int8"
    assert index.read_json(entry, "analyses/none.json") is None
    with pytest.raises(index.RunReadError, match="not an artifact of this run"):
        index.read_bytes(entry, "manifest.json")
    with pytest.raises(index.RunReadError, match="not an artifact of this run"):
        index.read_bytes(entry, "../../../etc/passwd")
    fixtures.tamper(folder, "gate.json")  # changed after the listing
    with pytest.raises(index.RunReadError, match="SHA-256 does not match"):
        index.read_json(entry, "gate.json")
    broken = index.verify_run(folder)
    with pytest.raises(index.RunReadError, match="corrupt"):
        index.read_bytes(broken, "metrics.json")


def test_zips_hold_the_whole_run_and_each_variant_with_its_preprocessing(tmp_path):
    entry = index.verify_run(fixtures.write_run(tmp_path))
    with zipfile.ZipFile(io.BytesIO(index.run_zip(entry))) as archive:
        names = set(archive.namelist())
        assert {f"{entry.run_id}/{path}" for path in entry.artifacts} | {f"{entry.run_id}/manifest.json"} == names
        assert archive.read(f"{entry.run_id}/models/int8.tflite") == \
            (tmp_path / "fraud" / entry.run_id / "models" / "int8.tflite").read_bytes()
    models = index.model_files(entry)
    assert [m["variant"] for m in models] == ["float32", "int8", "pruned_int8"]
    assert all(m["companions"] == ["models/preprocessing.json"] for m in models)
    assert [m["shipped"] for m in models] == [False, True, False]
    with zipfile.ZipFile(io.BytesIO(index.variant_bundle(entry, "int8"))) as archive:
        assert sorted(archive.namelist()) == [f"{entry.run_id}-int8/README.txt",
                                              f"{entry.run_id}-int8/models/int8.tflite",
                                              f"{entry.run_id}-int8/models/preprocessing.json"]
        readme = archive.read(f"{entry.run_id}-int8/README.txt").decode()
    # What a device needs travels with the file: the threshold, the tensors, the arena, how to run it.
    threshold = index.read_json(entry, "metrics.json")["variants"]["int8"]["quality"]["threshold"]
    assert f"flag a case when the model's output reaches {threshold:.4f}" in readme
    assert "Input: shape [1, 164], float32" in readme and "arena of 24,832 bytes" in readme
    assert "This is the variant the run ships" in readme
    with pytest.raises(index.RunReadError):
        index.variant_bundle(entry, "qat_int8")


def test_pareto_flags():
    points = [(10.0, 0.90), (5.0, 0.89), (5.0, 0.80), (20.0, 0.95), (25.0, 0.94)]
    assert index.pareto_flags(points, (False, True)) == [True, True, False, True, False]
    # three axes: the slow small model stays on the front only if nothing beats it everywhere
    assert index.pareto_flags([(1, 5, 0.9), (1, 1, 0.9), (2, 1, 0.95)], (False, False, True)) == [False, True, True]


def test_label_heights_keep_crowded_names_a_line_apart():
    # sentiment's demo run: three int8-family variants within 0.0006 of each other at ~103 KB, and
    # float32 far to the right; the axis spans 0.004 over 287 px
    xs = [103.0, 103.2, 103.1, 362.0]
    ys = [0.9163, 0.9161, 0.9157, 0.9133]
    heights = index.label_heights(xs, ys, plot_height_px=287, y_span=0.004)
    per_px = 0.004 / 287
    column = sorted(heights[:3], reverse=True)
    assert all(above - below >= 13 * per_px - 1e-12 for above, below in zip(column, column[1:]))
    assert heights[0] == ys[0] + 8 * per_px  # the top name sits just above its point
    assert heights[3] == ys[3] + 8 * per_px  # a point alone in its column is not moved
    # points far apart keep their names just above them
    assert index.label_heights([0.0, 1.0], [0.5, 0.5], plot_height_px=100) == [0.5 + 8 / 100 * 1.0] * 2
    assert index.label_heights([], [], plot_height_px=100) == []


def test_tradeoff_rows_mark_the_front_the_shipped_and_the_failed_variants(tmp_path):
    folder = fixtures.write_run(tmp_path)
    entry = index.verify_run(folder)
    rows = {row["variant"]: row for row in index.tradeoff_rows(
        entry.manifest, index.read_json(entry, "metrics.json"), index.read_json(entry, "compression.json"),
        entry.gate)}
    assert rows["int8"]["shipped"] and not rows["float32"]["shipped"]
    # pruned_int8: same bytes as int8, better pr_auc -> int8 is dominated
    assert rows["pruned_int8"]["pareto_size"] and not rows["int8"]["pareto_size"]
    assert not rows["float32"]["pareto_size"]
    assert rows["qat_int8"]["status"] == "failed" and "exit 139" in rows["qat_int8"]["reason"]
    assert index.tradeoff_rows({}, {"variants": {"x": {"quality": "odd"}, "y": 3}}) == [
        {"variant": "x", "status": "ok", "reason": None, "shipped": False, "headline": None, "threshold": None, "bytes": None,
         "gzip_bytes": None, "ratio_to_float32": None, "sparsity": None, "latency_ms": None,
         "identical_decisions": None, "changed_decisions": None, "max_score_difference": None,
         "pareto_size": False, "pareto_all": False}]


def test_config_differences():
    a = {"config": {"seed": 0, "gate": {"max_quality_drop": 0.01}, "variants": ["int8"]}}
    b = {"config": {"seed": 1, "gate": {"max_quality_drop": 0.01}, "variants": ["int8"], "quick": True}}
    assert index.config_differences(a, b) == [{"setting": "quick", "a": None, "b": True},
                                              {"setting": "seed", "a": 0, "b": 1}]


def test_reading_runs_imports_neither_tensorflow_nor_streamlit(reports):
    code = ("import sys; from pipeline import reports_index, static_report; "
            f"entries = reports_index.list_runs({str(reports)!r}); "
            "static_report.render([e for e in entries if e.ok][0]); "
            "heavy = [m for m in ('tensorflow', 'keras', 'tf_keras', 'streamlit', 'shap') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_files_the_manifest_does_not_list_are_reported_and_never_read(tmp_path):
    folder = fixtures.write_run(tmp_path)
    assert index.verify_run(folder).unlisted == ()
    (folder / "notes.txt").write_text("added later")
    (folder / "plots" / "extra.png").write_bytes(fixtures.tiny_png())
    entry = index.verify_run(folder, key="fraud/x")
    assert entry.ok  # every listed artifact still verifies
    assert entry.unlisted == ("notes.txt", "plots/extra.png")
    assert "2 file(s) that its manifest does not list (notes.txt, plots/extra.png)" in entry.unlisted_warning
    assert "2 unlisted file(s)" in entry.label
    with pytest.raises(index.RunReadError):
        index.read_bytes(entry, "notes.txt")
    assert "plots/extra.png" not in index.plots(entry)


def test_copies_of_one_run_get_labels_that_tell_them_apart(tmp_path):
    import shutil

    original = fixtures.write_run(tmp_path, run_id="20261121-061653-seed0-39d029")
    shutil.copytree(original, original.with_name("copy-of-the-run"))
    shutil.copytree(original, tmp_path / "archive" / "fraud" / original.name)
    entries = index.list_runs(tmp_path)
    assert len(entries) == 3 and len({entry.label for entry in entries}) == 1  # same manifest, same label
    labels = index.picker_labels(entries)
    assert len(set(labels.values())) == 3
    for entry in entries:
        assert labels[entry.key].startswith(entry.label) and entry.key in labels[entry.key]
    single = index.picker_labels(entries[:1])
    assert single == {entries[0].key: entries[0].label}  # no folder where the label is already unique
