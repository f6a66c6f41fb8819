# The two set-up commands of the README: `make demo` and `make test`.
# Each creates the virtual environment on first use (about a minute, 3 GB).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test benchmark clean

# pip's and setuptools' own chatter goes to $(VENV)/install.log; its tail is shown if the install fails.
$(BIN)/.installed: pyproject.toml
	@echo "Installing EdgeAudit and its dependencies into $(VENV) (about a minute; log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e ".[test]"; } \
		> $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "The install failed; the whole log is $(VENV)/install.log"; exit 1; }
	@touch $@

# Every registered domain on its embedded default data, into reports/. Ends with one summary
# table; exits 0 when every run finished, failed gates included (they are findings, in each report).
demo: $(BIN)/.installed
	$(BIN)/edgeaudit run all

# Two workers on the two cores CI has (pytest-xdist). --dist loadscope keeps each module on one worker, so a
# module-scoped fixture (a finished run per domain, a dashboard in a browser) is made once.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --dist loadscope

benchmark: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
