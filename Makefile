# Two commands: `make scan` sets everything up and audits the default model; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
# A CPU build of torch unless told otherwise (e.g. TORCH=torch on a CUDA machine).
TORCH ?= torch==2.13.0
MODEL ?= smollm2-135m
PROFILE ?= standard
OUT ?= runs/$(MODEL)
# `make scan` shows the audit; release gates call `emoaudit scan --fail-on LEVEL` themselves.
FAIL_ON ?= never
BIN := $(VENV)/bin

.PHONY: setup scan test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

scan: setup
	$(BIN)/emoaudit models pull $(MODEL)
	$(BIN)/emoaudit scan $(MODEL) --profile $(PROFILE) --out $(OUT) --fail-on $(FAIL_ON)

# pytest exits 5 when it collects no test; that is a failure here, not a pass.
test: setup
	$(BIN)/mypy
	# the bottom layer and the audit's run stay strictly typed (imports checked, errors reported here only)
	$(BIN)/mypy --strict --follow-imports=silent emoaudit/results emoaudit/pipeline
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/python -m pip install --quiet "ruff>=0.6"
	$(BIN)/ruff check emoaudit tests bench && $(BIN)/ruff format --check emoaudit tests bench

# steering-vectors pins transformers < 5 but runs on 5: installed without its pins, for comparison only.
bench: setup
	$(BIN)/python -m pip install --quiet --no-deps "steering-vectors==0.12.2"
	$(BIN)/python bench/run.py --model $(MODEL) --json bench-$(MODEL).json

clean:
	rm -rf $(VENV) runs .cache
