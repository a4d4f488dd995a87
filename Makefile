# The two set-up commands: `make demo` and `make test`. Both build .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test test-fast lint typecheck pytest demo emulator clean lock

$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cos-scanner needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Pin every dependency (with hashes) after changing pyproject.toml: requirements.lock for the
# image, requirements-dev.lock for make test and CI. Needs the package index.
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip-tools
	.lock-venv/bin/pip-compile --quiet --generate-hashes --strip-extras -o requirements.lock pyproject.toml
	.lock-venv/bin/pip-compile --quiet --generate-hashes --strip-extras --extra dev -o requirements-dev.lock pyproject.toml
	rm -rf .lock-venv

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check scanner tests bench
	$(BIN)/ruff format --check scanner tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# The inner loop: lint, types and every test not marked slow (make test runs them all)
test-fast: lint typecheck
	$(BIN)/pytest -q -m "not slow"

# make demo SERVICE=ims: the same demo through IMS ImageModeration
demo: $(STAMP)
	$(BIN)/cos-scanner demo $(if $(SERVICE),--service $(SERVICE))

emulator: $(STAMP)
	$(BIN)/cos-scanner emulator --objects 10000 --seed 1

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
