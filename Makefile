# Two commands: `make scan` sets everything up and audits the default model; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
# torch is installed first, from TORCH_INDEX when given: a plain PyPI install on Linux is the CUDA build
# (several GB of nvidia wheels); TORCH_INDEX=https://download.pytorch.org/whl/cpu gives the CPU-only build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
MODEL ?= smollm2-135m
PROFILE ?= standard
OUT ?= runs/$(MODEL)
# `make scan` shows the audit; release gates call `emoaudit scan --fail-on LEVEL` themselves.
FAIL_ON ?= never
BIN := $(VENV)/bin

.PHONY: setup test-setup scan test lint bench clean

# `setup` installs what scanning needs; `test-setup` adds the test extra (pytest, hypothesis, ray, mypy).
setup: $(VENV)/.installed
test-setup: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The preflight pulls and verifies the judge before the model runs, and estimates the scan's duration.
scan: setup
	$(BIN)/emoaudit models pull $(MODEL)
	$(BIN)/emoaudit scan $(MODEL) --profile $(PROFILE) --out $(OUT) --fail-on $(FAIL_ON)

# pytest exits 5 when it collects no test; that is a failure here, not a pass.
test: test-setup
	$(BIN)/mypy
	# the bottom layer and the audit's run stay strictly typed (imports checked, errors reported here only)
	$(BIN)/mypy --strict --follow-imports=silent emoaudit/results emoaudit/pipeline
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: test-setup
	$(BIN)/python -m pip install --quiet "ruff>=0.6"
	$(BIN)/ruff check emoaudit tests bench && $(BIN)/ruff format --check emoaudit tests bench

# steering-vectors pins transformers < 5 but runs on 5: installed without its pins, for comparison only.
bench: test-setup
	$(BIN)/python -m pip install --quiet --no-deps "steering-vectors==0.12.2"
	$(BIN)/python bench/run.py --model $(MODEL) --json bench-$(MODEL).json

clean:
	rm -rf $(VENV) runs .cache
