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
    (["--min-positives-per-group", "0"], "--min-positives-per-group is 0"),
    (["--cluster-column", "customer"], "'all': each domain reads a different kind of data"),
    (["--cluster-column", "customer"], "--cluster-column is not read by the sentiment domain"),
])
def test_bad_options_exit_2_before_any_work(arguments, expected, capsys, tmp_path):
    domain = "all" if "'all'" in expected else "sentiment" if "sentiment" in expected else "fraud"
    code, _, err = _run_cli(["run", domain, "--out", str(tmp_path), *arguments], capsys)
    assert code == EXIT_BAD_INPUT
    assert expected in err and "How to fix" in err
    assert not list(tmp_path.iterdir())


def test_an_unusable_thread_count_exits_2_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEAUDIT_THREADS", "0")
    code, _, err = _run_cli(["run", "fraud", "--out", str(tmp_path)], capsys)
    assert code == EXIT_BAD_INPUT
    assert "EDGEAUDIT_THREADS is '0'" in err and "How to fix" in err
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
    # the target sparsity is the domain's (the small sensor CNN needs more zeros for the same gzip ratio)
    maintenance = get_domain("maintenance")
    assert left.target_sparsity == sentiment.target_sparsity == 0.75
    assert run_config(["maintenance"]).with_domain_defaults(maintenance).target_sparsity == 0.8
    assert run_config(["maintenance", "--target-sparsity", "0.6"]).with_domain_defaults(
        maintenance).target_sparsity == 0.6


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
    assert "[8/8] report done" in completed.stdout
    for noise in NATIVE_NOISE:  # a quiet run: none of the frameworks' native start-up lines
        assert noise not in completed.stdout + completed.stderr, (noise, completed.stderr[:3000])
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


# ---- hardening (issue 14) -------------------------------------------------------------------

NATIVE_NOISE = ("E0000", "I0000", "W0000", "absl::InitializeLog", "cuInit", "XNNPACK", "oneDNN")


@pytest.mark.parametrize("case", ["a regular file", "a file among its parents", "a folder that cannot be written"])
def test_an_unusable_out_exits_2_naming_it_before_any_work(case, capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "reports.txt"
    blocker.write_text("not a folder")
    if case == "a regular file":
        out, expected = blocker, f"--out {blocker} is a file"
    elif case == "a file among its parents":
        out, expected = blocker / "reports", f"has a file, {blocker}, where a folder is needed"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        out, expected = locked / "reports", f"--out {locked / 'reports'} cannot be written: Permission denied"
        if os.geteuid() == 0:  # root writes anywhere: refuse the probe as the kernel would refuse a user
            from pipeline import artifacts

            def refused(**_):
                raise PermissionError(13, "Permission denied")
            monkeypatch.setattr(artifacts.tempfile, "mkdtemp", refused)
        else:
            locked.chmod(0o555)
    loaded = []
    from pipeline.registry import get_domain

    monkeypatch.setattr(type(get_domain("fraud")), "load", lambda *a, **k: loaded.append(1))
    code, _, err = _run_cli(["run", "fraud", "--out", str(out)], capsys)
    assert code == EXIT_BAD_INPUT, err
    assert expected in err and "How to fix: pass --out a folder you can write to" in err
    assert "Traceback" not in err and not loaded
    code, _, err = _run_cli(["run", "all", "--out", str(out)], capsys)
    assert code == EXIT_BAD_INPUT and expected in err and err.count("edgeaudit: error") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["reports.txt"] + (["locked"] if "locked" in str(out) else []))


@pytest.mark.parametrize("workers, expected", [
    (",,,", "--workers ',,,' names no worker"),
    ("", "--workers '' names no worker"),
    ("10.0.0.1:2222,,10.0.0.2:2222", "has an empty address at position 2 of 3"),
    ("10.0.0.1:2222,", "has an empty address at position 2 of 2"),
])
def test_a_worker_list_with_nothing_or_an_empty_item_exits_2(workers, expected, capsys, tmp_path):
    code, _, err = _run_cli(["run", "fraud", "--out", str(tmp_path), "--workers", workers, "--worker-index", "0"],
                            capsys)
    assert code == EXIT_BAD_INPUT and expected in err and "How to fix" in err
    assert not list(tmp_path.iterdir())


def _outcome(tmp_path, domain, passed):
    from pipeline.run import RunOutcome

    checks = [{"name": "quality", "passed": True, "explanation": "int8 pr_auc drop +0.001 (limit 0.01)"},
              {"name": "eo", "passed": passed, "explanation": f"{domain}: equalized odds difference by age is 0.31"}]
    return RunOutcome(run_dir=tmp_path / domain / "run-1", gate={"passed": passed, "ship_variant": "int8",
                                                                 "checks": checks}, manifest={})


def test_run_all_ends_with_a_summary_and_exits_0_when_every_run_finished(capsys, tmp_path, monkeypatch):
    from pipeline import run as run_module
    from pipeline.registry import default_data_domain_names

    verdicts = {name: index % 2 == 0 for index, name in enumerate(default_data_domain_names())}
    monkeypatch.setattr(run_module, "run_pipeline", lambda config: _outcome(tmp_path, config.domain,
                                                                            verdicts[config.domain]))
    code, out, _ = _run_cli(["run", "all", "--out", str(tmp_path)], capsys)
    assert code == 0, out  # failed gates are findings, written into each report
    assert [line for line in out.splitlines() if line.startswith("== ")] == [f"== {name} ==" for name in verdicts]
    summary = out[out.index("Summary:"):]
    assert f"Summary: {len(verdicts)} of {len(verdicts)} runs finished" in summary
    for name, passed in verdicts.items():
        line = next(line for line in summary.splitlines() if line.strip().startswith(name + " "))
        assert ("PASSED" if passed else "FAILED") in line and str(tmp_path / name / "run-1") in line
        assert (f"{name}: equalized odds difference by age is 0.31" in line) != passed
        assert ("all 2 checks passed" in line) == passed
    # a single domain keeps exit 3 for pipelines
    failing = next(name for name, passed in verdicts.items() if not passed)
    code, out, _ = _run_cli(["run", failing, "--out", str(tmp_path)], capsys)
    assert code == 3 and "Summary:" not in out and "Gate FAILED" in out


def test_run_all_goes_on_after_a_crashed_domain_and_says_so(capsys, tmp_path, monkeypatch):
    from pipeline import run as run_module
    from pipeline.registry import default_data_domain_names

    names = default_data_domain_names()

    def run_pipeline(config):
        if config.domain == names[0]:
            raise RuntimeError("the converter ran out of memory")
        return _outcome(tmp_path, config.domain, True)
    monkeypatch.setattr(run_module, "run_pipeline", run_pipeline)
    code, out, err = _run_cli(["run", "all", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert "RuntimeError: the converter ran out of memory" in err  # the traceback, for whoever debugs it
    line = next(line for line in out.splitlines() if line.strip().startswith(names[0] + " "))
    assert "CRASHED" in line and "RuntimeError: the converter ran out of memory" in line
    assert f"Summary: {len(names) - 1} of {len(names)} runs finished" in out


def test_native_output_is_silenced_unless_verbose(tmp_path):
    """File descriptor 2 written by native code (as TensorFlow's C++ logging is) is hidden, and shown
    again with EDGEAUDIT_VERBOSE=1 / --verbose; a failure inside replays what was hidden."""
    script = ("import os, sys\n"
              "from pipeline.console import native_output_silenced\n"
              "with native_output_silenced():\n"
              "    os.write(2, b'E0000 failed call to cuInit\\n')\n"
              "print('done', flush=True)\n"
              "try:\n"
              "    with native_output_silenced():\n"
              "        os.write(2, b'the reason it failed\\n')\n"
              "        raise SystemExit(5)\n"
              "finally:\n"
              "    print('after', flush=True)\n")
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "EDGEAUDIT_VERBOSE": ""})
    assert quiet.stdout == "done\nafter\n" and quiet.returncode == 5
    assert "cuInit" not in quiet.stderr and "the reason it failed" in quiet.stderr
    loud = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "EDGEAUDIT_VERBOSE": "1"})
    assert "E0000 failed call to cuInit" in loud.stderr
    from pipeline.cli import _parser

    assert _parser().parse_args(["run", "fraud", "--verbose"]).verbose


@pytest.mark.parametrize("moment, marker, delay", [
    ("while the compression child starts", "[3/8] compress ...", 0.1),  # it is still importing
    ("while the compression child converts", "float32: TFLite float32", 0.0),  # sent by the child
])
def test_ctrl_c_during_compression_is_one_clean_message_and_leaves_nothing(moment, marker, delay, tmp_path):
    """As a terminal sends it: SIGINT to the whole process group, the compression child included."""
    import signal
    import time

    out = tmp_path / "reports"
    command = [sys.executable, "-m", "pipeline", "run", "fraud", "--quick", "--max-rows", "2500",
               "--min-group-size", "10", "--out", str(out)]
    # As from a terminal: SIGINT at its default, even when this test runs under a launcher that ignores it
    # (a background job of a non-interactive shell does; Python then keeps ignoring it in the child).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                break
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    text = "".join(seen) + rest
    assert any(marker in line for line in seen), text[-3000:]
    assert process.returncode == 130, text[-3000:]
    assert "edgeaudit: interrupted; the unfinished run was removed" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    for noise in NATIVE_NOISE:  # and the start-up before it was quiet
        assert noise not in text, (noise, text[:3000])
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
