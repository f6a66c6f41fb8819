# The two set-up commands of the README: `make demo` and `make test`.
# Each creates the virtual environment on first use (about a minute, 3 GB).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test benchmark clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# Every registered domain on its embedded default data, into reports/.
demo: $(BIN)/.installed
	$(BIN)/edgeaudit run all

test: $(BIN)/.installed
	$(BIN)/python -m pytest

benchmark: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
