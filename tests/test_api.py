"""The Python API: the README's example runs as written; options and errors are the CLI's."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.api import command_line, run_config_for
from pipeline.cli import run_config
from pipeline.errors import InputError

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- api-example:[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its api-example block"
    return match.group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md (api-example)", "exec"), namespace)
    result = namespace["result"]
    out = capsys.readouterr().out
    assert result.run_dir.is_dir() and result.run_dir.resolve().is_relative_to(tmp_path.resolve())
    assert result.ship_variant in ("float32", "int8") and result.verdict in out
    assert result.metrics["headline_metric"] == "pr_auc" and {"sex", "age"} <= set(result.audit["by_group"]["int8"])
    # the DataFrame was kept once as CSV, and the manifest names that file
    kept = list((tmp_path / "reports" / "inputs").glob("*.csv"))
    assert len(kept) == 1 and result.manifest["config"]["data_path"] == str(Path("reports") / "inputs" / kept[0].name)
    assert len(pd.read_csv(kept[0])) == 3000
    # Jupyter's view names the verdict and the folder, and escapes what it shows
    view = result._repr_html_()
    assert "<table>" in view and str(result.run_dir) in view and result.verdict in view
    # the printed command repeats the run from the command line: same config
    repeated = run_config(result.command.split()[2:])
    assert repeated == result.config
    assert json.loads((result.run_dir / "manifest.json").read_text())["run_id"] == result.manifest["run_id"]


def test_options_are_the_command_lines_as_python_names():
    config = run_config_for("maintenance", window=12, epochs=3, max_quality_drop=0.05, target="cortex-m4",
                            ship="int8", variants=["float32", "int8"])
    assert config == run_config(["maintenance", "--window", "12", "--epochs", "3", "--max-quality-drop", "0.05",
                                 "--target", "cortex-m4", "--ship", "int8", "--variants", "float32", "int8"])
    assert command_line(config) == ("edgeaudit run maintenance --epochs 3 --variants float32 int8 --ship int8 "
                                    "--target cortex-m4 --max-quality-drop 0.05 --window 12")


def test_bad_input_is_the_clis_error_before_any_work(tmp_path):
    with pytest.raises(InputError, match="unknown option.*'windw'") as error:
        run_config_for("maintenance", windw=3)
    assert "window" in error.value.fix
    with pytest.raises(InputError, match="--window is not read by the fraud domain"):
        run_config_for("fraud", window=3)
    with pytest.raises(InputError, match="unknown domain 'frud'"):
        run_config_for("frud")
    with pytest.raises(InputError, match="reads files, not a table"):
        run_config_for("imaging", pd.DataFrame({"a": [1]}))
    with pytest.raises(InputError, match="data is a list"):
        run_config_for("fraud", [1, 2])
    with pytest.raises(InputError, match="--epochs is 0"):
        run_config_for("fraud", epochs=0)
    assert not list(tmp_path.iterdir())  # nothing written by a config that was refused


def test_values_given_as_text_are_read_as_the_command_line_would():
    config = run_config_for("maintenance", window="12", epochs="3", max_quality_drop="0.05")
    assert config.option("window") == 12 and config.epochs == 3 and config.gate.max_quality_drop == 0.05
    with pytest.raises(InputError, match="epochs='three', expected a whole number"):
        run_config_for("fraud", epochs="three")
    # every option that can be set in Python prints as a flag the command line takes
    config = run_config_for("fraud", latency_runs=300, representative_rows=64, background_rows=40,
                            local_examples=2, positive_label="1", drop=["amount"], merge_small_groups=True)
    assert run_config(command_line(config).split()[2:]) == config
