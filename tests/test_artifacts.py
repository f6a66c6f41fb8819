"""The run folder: nothing looks finished until finish(); the manifest hashes every file."""

import hashlib
import json

import numpy as np
import pytest

from pipeline import artifacts


def test_a_run_is_invisible_until_finished_and_its_manifest_hashes_every_file(tmp_path):
    folder = artifacts.RunFolder(tmp_path, "fraud", "run-1")
    folder.write_bytes(artifacts.model_path("int8"), b"\x00tflite", role="tflite", variant="int8")
    folder.write_json(artifacts.METRICS, {"value": np.float32(0.5), "nan": float("nan")}, role="metrics")
    assert not (tmp_path / "fraud" / "run-1").exists()
    assert (tmp_path / "fraud" / ".incomplete-run-1").is_dir()
    final = folder.finish({"status": "complete"})
    assert final == tmp_path / "fraud" / "run-1"
    assert not (tmp_path / "fraud" / ".incomplete-run-1").exists()
    manifest = json.loads((final / artifacts.MANIFEST).read_text())
    listed = {item["path"]: item for item in manifest["artifacts"]}
    assert set(listed) == {"models/int8.tflite", "metrics.json"}
    for path, item in listed.items():
        assert item["sha256"] == hashlib.sha256((final / path).read_bytes()).hexdigest()
    assert listed["models/int8.tflite"]["role"] == "tflite"
    assert json.loads((final / "metrics.json").read_text()) == {"value": 0.5, "nan": None}


def test_discard_removes_everything(tmp_path):
    folder = artifacts.RunFolder(tmp_path, "fraud", "run-2")
    folder.write_text("model_card.md", "half", role="model_card")
    folder.discard()
    assert list(tmp_path.iterdir()) == []  # the domain's folder it created goes too


def test_discard_keeps_folders_it_did_not_create_or_that_hold_other_runs(tmp_path):
    reports = tmp_path / "reports"
    first = artifacts.RunFolder(reports, "fraud", "run-1")
    first.write_text("model_card.md", "done", role="model_card")
    first.finish({"status": "complete"})
    second = artifacts.RunFolder(reports, "fraud", "run-2")
    second.discard()
    assert [p.name for p in (reports / "fraud").iterdir()] == ["run-1"]
    third = artifacts.RunFolder(tmp_path / "new" / "reports", "imaging", "run-3")
    third.discard()
    assert list(tmp_path.iterdir()) == [reports]  # new/reports/imaging were made by it, and went with it


def test_json_refuses_nothing_numpy_makes():
    text = artifacts.dumps({"a": np.arange(3), "b": np.bool_(True), "c": (np.int64(2), float("inf"))})
    assert json.loads(text) == {"a": [0, 1, 2], "b": True, "c": [2, None]}


def test_run_ids_are_unique_and_sortable():
    ids = {artifacts.new_run_id(0) for _ in range(50)}
    assert len(ids) == 50
    assert all(i.split("-")[2] == "seed0" for i in ids)
