"""The command line: bad input exits 2 with one clear message and leaves nothing behind;
an interrupted run leaves nothing; a real run writes a finished report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import EXIT_BAD_INPUT


def _run_cli(arguments, capsys):
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _finished_runs(output_dir: Path):
    return [p for p in output_dir.rglob("manifest.json")]


def test_domains_lists_fraud(capsys):
    code, out, _ = _run_cli(["domains"], capsys)
    assert code == 0 and out.startswith("fraud")


def test_unknown_domain_names_the_valid_ones(capsys, tmp_path):
    code, _, err = _run_cli(["run", "frud", "--out", str(tmp_path)], capsys)
    assert code == EXIT_BAD_INPUT
    assert "unknown domain 'frud'" in err and "fraud" in err and "Traceback" not in err


@pytest.mark.parametrize("arguments, expected", [
    (["--target-sparsity", "1.5"], "--target-sparsity is 1.5"),
    (["--ship", "pruned_int8", "--variants", "float32", "int8"], "'pruned_int8', is not among the variants built"),
    (["--epochs", "0"], "--epochs is 0"),
    (["--pruning-learning-rate", "2"], "--pruning-learning-rate is 2.0"),
])
def test_bad_options_exit_2_before_any_work(arguments, expected, capsys, tmp_path):
    code, _, err = _run_cli(["run", "fraud", "--out", str(tmp_path), *arguments], capsys)
    assert code == EXIT_BAD_INPUT
    assert expected in err and "How to fix" in err
    assert not list(tmp_path.iterdir())


def test_options_left_open_get_the_domain_rule_and_every_candidate_rate_and_given_ones_win():
    from pipeline.cli import run_config
    from pipeline.config import PRUNING_LEARNING_RATES
    from pipeline.registry import get_domain

    sentiment = get_domain("sentiment")
    left = run_config(["sentiment"]).with_domain_defaults(sentiment)
    assert left.threshold_rule == sentiment.threshold_rule
    assert left.pruning_learning_rates() == PRUNING_LEARNING_RATES and len(PRUNING_LEARNING_RATES) > 1
    given = run_config(["sentiment", "--pruning-learning-rate", "0.0005", "--threshold-rule", "youden"])
    assert given.with_domain_defaults(sentiment).threshold_rule == "youden"
    assert given.pruning_learning_rates() == (0.0005,)


def _csv(tmp_path, text, name="claims.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_INPUTS = {
    "empty file": ("", [], "is empty"),
    "missing label column": ("a,b,sex\n1,2,f\n", ["--label", "fraud", "--sensitive", "sex"], "'fraud'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_files_exit_2_naming_the_file_and_leave_no_run(case, capsys, tmp_path):
    text, arguments, expected = BAD_INPUTS[case]
    data = _csv(tmp_path, text)
    out = tmp_path / "reports"
    code, _, err = _run_cli(["run", "fraud", "--data", str(data), *arguments, "--out", str(out)], capsys)
    assert code == EXIT_BAD_INPUT, err
    assert str(data) in err and expected in err and "How to fix" in err and "Traceback" not in err
    assert not _finished_runs(tmp_path)


def test_an_interrupted_run_leaves_nothing_behind(monkeypatch, tmp_path):
    from pipeline.config import RunConfig
    from pipeline.progress import Silent
    from pipeline.run import run_pipeline
    from pipeline.stages import train

    def interrupted(**_):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(RunConfig(domain="fraud", output_dir=str(tmp_path), max_rows=1000, min_group_size=5),
                     progress=Silent())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_quick_cli_run_writes_a_finished_report(tmp_path):
    """End to end, as a user runs it: the console entry point in a fresh process."""
    command = [sys.executable, "-m", "pipeline", "run", "fraud", "--quick", "--max-rows", "2500",
               "--bootstrap-samples", "20", "--min-group-size", "10", "--threshold-rule", "youden",
               "--out", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert completed.returncode in (0, 3), completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "[7/7] report done" in completed.stdout
    assert ("Gate PASSED" in completed.stdout) == (completed.returncode == 0)
    manifests = _finished_runs(tmp_path)
    assert len(manifests) == 1
    run_dir = manifests[0].parent
    for name in ("model_card.md", "model_card.html", "models/int8.tflite", "models/preprocessing.json",
                 "audit.json", "explanations.json", "metrics.json", "gate.json"):
        assert (run_dir / name).is_file(), name
    assert f"Report: {run_dir}" in completed.stdout
    # --threshold-rule reaches the run: recorded in the manifest, said in the model card.
    assert json.loads(manifests[0].read_text())["config"]["threshold_rule"] == "youden"
    assert "Youden's J" in (run_dir / "model_card.md").read_text()
