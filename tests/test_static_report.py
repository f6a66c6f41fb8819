"""The static report: one self-contained HTML file, written beside the run (never inside it),
only for intact runs, with every plot embedded and every run-supplied text escaped."""

import base64
import hashlib
import json
import re

import pytest

from pipeline import reports_index as index
from pipeline import static_report
from pipeline.cli import main
from pipeline.errors import EXIT_BAD_INPUT, InputError
from tests.fixtures import runs as fixtures


def _tree(folder):
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_report_is_written_beside_the_run_and_leaves_the_run_untouched(tmp_path, capsys):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    before = _tree(folder)
    assert main(["report", str(folder)]) == 0
    target = folder.with_name(folder.name + ".html")
    assert target.is_file() and f"Report: {target}" in capsys.readouterr().out
    assert _tree(folder) == before
    assert index.verify_run(folder).ok  # the run folder is still exactly what its manifest lists


def test_report_is_self_contained(tmp_path):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    page = static_report.write_report(folder, tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources), sources
    # the card's plot is the run's own PNG, byte for byte
    embedded = {base64.b64decode(source.split(",", 1)[1]) for source in sources}
    assert (folder / "plots" / "tradeoff.png").read_bytes() in embedded
    assert len(embedded) == len([p for p in (folder / "plots").iterdir()])  # every plot, card or not


def test_report_says_what_an_auditor_needs(tmp_path):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    page = static_report.render(index.verify_run(folder))
    assert "Gate FAILED" in page and "int8: equalized odds difference by Age is 0.357 (limit 0.3)" in page
    assert "<code>int8</code> (shipped)" in page and "not built: converter crashed (exit 139)" in page
    assert "Pareto" in page and "Model card: Fixture fraud" in page
    manifest = json.loads((folder / "manifest.json").read_text())
    for record in manifest["artifacts"]:
        assert record["sha256"] in page


def test_text_from_the_run_is_escaped(tmp_path):
    folder = fixtures.write_run(tmp_path, data_path="<script>alert(1)</script>.csv")
    page = static_report.render(index.verify_run(folder))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.csv" in page


@pytest.mark.parametrize("damage, expected", [
    (lambda f: fixtures.tamper(f, "gate.json"), "is corrupt: gate.json: SHA-256 does not match"),
    (lambda f: fixtures.remove_file(f, "plots/tradeoff.png"),
     "plots/tradeoff.png is listed in the manifest but missing"),
    (lambda f: fixtures.break_json(f, "metrics.json"), "metrics.json is not valid JSON"),
])
def test_a_broken_run_gets_no_report(tmp_path, capsys, damage, expected):
    folder = fixtures.write_run(tmp_path)
    damage(folder)
    assert main(["report", str(folder)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err and "How to fix" in err and "Traceback" not in err
    assert not folder.with_name(folder.name + ".html").exists()


def test_an_unfinished_run_gets_no_report(tmp_path):
    folder = fixtures.make_unfinished(fixtures.write_run(tmp_path))
    with pytest.raises(InputError, match="is unfinished"):
        static_report.write_report(folder)


def test_the_report_is_never_written_inside_the_run(tmp_path):
    folder = fixtures.write_run(tmp_path)
    with pytest.raises(InputError, match="inside the run folder"):
        static_report.write_report(folder, folder / "report.html")
    with pytest.raises(InputError, match="inside the run folder"):
        static_report.write_report(folder, folder / "plots" / "report.html")
    assert index.verify_run(folder).ok


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == EXIT_BAD_INPUT
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == EXIT_BAD_INPUT
    assert "has no manifest.json" in capsys.readouterr().err
