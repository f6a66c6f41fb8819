"""The first thing a newcomer runs is the install: it must build without warnings from our metadata,
and `make` must keep pip's chatter in a log rather than on the terminal."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_is_an_spdx_string_that_setuptools_supports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # the table form is deprecated by setuptools
    requires = " ".join(project["build-system"]["requires"])
    minimum = re.search(r"setuptools>=(\d+)", requires)
    assert minimum and int(minimum.group(1)) >= 77, requires  # 77 is the first to read the SPDX form


def test_building_the_package_prints_no_deprecation_of_our_metadata(tmp_path):
    """A real build of the project's metadata, in pip's isolated build environment (from the registry)."""
    source = tmp_path / "source"
    (source / "pipeline").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    (source / "pipeline" / "__init__.py").write_text('__version__ = "0"\n')
    completed = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                                str(tmp_path / "wheels"), str(source)], capture_output=True, text=True, timeout=300)
    output = completed.stdout + completed.stderr
    if completed.returncode != 0 and re.search(r"No matching distribution|connection|Could not fetch", output, re.I):
        pytest.skip(f"the package registry cannot be reached: {output[-300:]}")
    assert completed.returncode == 0, output[-3000:]
    assert "deprecated" not in output.lower() and "license" not in output.lower(), output[-3000:]
    assert list((tmp_path / "wheels").glob("edgeaudit-*.whl"))


def test_make_sends_the_install_chatter_to_a_log():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(BIN)/.installed: pyproject.toml"):makefile.index("demo:")]
    install = [line for line in recipe.splitlines() if "pip install" in line]
    assert install and "> $(VENV)/install.log 2>&1" in recipe and "tail -n" in recipe
